"""The pages on a fake HD44780 (through the PCF8574's pins) and a fake SSD1306, for three appliances.

What is asserted is what the fake controller holds after decoding the bytes
the driver sent: the characters on the glass.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import replace

import pytest

from appliance.fakes.i2c import FakeHd44780, FakeI2cBus, FakeSsd1306
from appliance.io.lcd import Hd44780, Ssd1306, framebuffer, probe
from appliance.lcd.pages import LCD_16X2, LCD_20X4, OLED_128X64, LcdView, format_ns, pages, render
from appliance.lcd.runner import Panel, attach_button, connector

T = 1_796_212_496 * 1_000_000_000  # 2026-12-02 11:54:56 UTC

HEALTHY = LcdView(
    utc_ns=T, stratum=1, refid="PPS", basis="gps", offset_ns=12_345, jitter_ns=3_456, fix="3D", satellites=9,
    satellites_seen=12, ip_address="192.168.1.40", load=0.15,
)  # fmt: skip
HOLDOVER = LcdView(
    utc_ns=T, stratum=1, refid="GPS", basis="holdover", offset_ns=-210_000, jitter_ns=45_000, fix="none",
    satellites=0, satellites_seen=2, ip_address="192.168.1.40", load=0.2, alarms=("Holdover: no GPS",),
)  # fmt: skip
UNSYNC = LcdView(
    utc_ns=T, stratum=16, refid="INIT", basis="unsynchronised", ip_address=None, load=1.5,
    alarms=("Not synchronised", "No GPS fix"),
)  # fmt: skip


def hd44780(columns: int, rows: int, address: int = 0x27) -> tuple[FakeI2cBus, FakeHd44780, Hd44780]:
    bus = FakeI2cBus()
    glass = FakeHd44780(columns, rows)
    bus.attach(address, glass)
    lcd = Hd44780(bus, address, columns, rows, sleep=lambda s: None)
    lcd.init()
    return bus, glass, lcd


def shown(view: LcdView, columns: int, rows: int) -> dict[str, list[str]]:
    _, glass, lcd = hd44780(columns, rows)
    out = {}
    for name in pages(view):
        lcd.show(render(name, view, LCD_16X2 if columns == 16 else LCD_20X4))
        out[name] = [line.rstrip() for line in glass.lines()]
    return out


def test_healthy_16x2() -> None:
    assert shown(HEALTHY, 16, 2) == {
        "time": ["11:54:56 UTC", "S1 PPS  locked"],
        "offset": ["Offset +0.012ms", "Jitter  0.003ms"],
        "gps": ["GPS fix 3D", "Satellites 9/12"],  # used / in view
        "net": ["192.168.1.40", "Load 0.15"],
    }


def test_holdover_16x2_alarm_first() -> None:
    got = shown(HOLDOVER, 16, 2)
    assert list(got) == ["alarm", "time", "offset", "gps", "net"]
    assert got["alarm"] == ["ALARM", "Holdover: no GPS"]  # whole: every alarm's words fit 16 columns
    assert got["time"] == ["11:54:56 UTC", "S1 GPS  holdover"]
    assert got["offset"] == ["Offset -0.210ms", "Jitter  0.045ms"]
    assert got["gps"] == ["GPS fix none", "Satellites 0/2"]


def test_unsynchronised_16x2() -> None:
    got = shown(UNSYNC, 16, 2)
    assert got["alarm"] == ["2 ALARMS", "Not synchronised"]
    assert got["time"] == ["11:54:56 UTC", "S16 INIT unsync"]
    assert got["offset"] == ["Offset --", "Jitter  --"]
    assert got["gps"] == ["GPS fix --", "Satellites --/--"]
    assert got["net"] == ["no address", "Load 1.50"]


def test_three_appliances_20x4() -> None:
    assert shown(HEALTHY, 20, 4)["time"] == [
        "2026-12-02 11:54:56",
        "Stratum 1  refid PPS",
        "Locked to GPS",
        "No alarms",
    ]
    assert shown(HEALTHY, 20, 4)["gps"] == ["GPS fix 3D", "Satellites used 9", "Satellites seen 12", "Locked to GPS"]
    hold = shown(HOLDOVER, 20, 4)
    assert hold["alarm"] == ["ALARM", "Holdover: no GPS", "", ""]
    assert hold["time"] == ["2026-12-02 11:54:56", "Stratum 1  refid GPS", "Holdover: no GPS", "1 alarm"]
    unsync = shown(UNSYNC, 20, 4)
    assert unsync["alarm"] == ["2 ALARMS", "Not synchronised", "No GPS fix", ""]
    assert unsync["time"] == ["2026-12-02 11:54:56", "Stratum 16 INIT", "Not synchronised", "2 alarms"]
    assert unsync["net"] == ["IP address", "no address", "Load 1.50", ""]


def test_oled_shows_the_page_in_pixels() -> None:
    bus = FakeI2cBus()
    panel = bus.attach(0x3C, FakeSsd1306())
    assert isinstance(panel, FakeSsd1306)
    oled = Ssd1306(bus, 0x3C)
    oled.init()
    lines = render("time", HEALTHY, OLED_128X64)
    assert lines[1] == "2026-12-02 11:54:56  "
    oled.show(lines)
    # the panel's pixels are the frame buffer of the text, upright
    ram = framebuffer(lines)
    for x, y in [(1, 12), (7, 9), (50, 30), (100, 50), (127, 63)]:
        assert panel.pixel(x, y) == bool(ram[(y // 8) * 128 + x] >> (y % 8) & 1)
    assert sum(panel.pixel(x, y) for x in range(128) for y in range(64)) == sum(bin(b).count("1") for b in ram) > 200
    assert panel.unknown_commands == 0
    png = panel.png()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and zlib.crc32(png) != 0


def test_oled_dark_without_charge_pump_or_display_on() -> None:
    bus = FakeI2cBus()
    panel = FakeSsd1306()
    bus.attach(0x3C, panel)
    Ssd1306(bus).show(render("time", HEALTHY, OLED_128X64))  # never initialised
    assert not any(panel.pixel(x, y) for x in range(128) for y in range(64))


def test_fake_decodes_nibbles_entry_mode_and_backlight() -> None:
    bus, glass, lcd = hd44780(16, 2)
    assert glass.backlight and not glass.eight_bit and glass.two_lines and glass.display_on
    lcd.command(0x04)  # entry mode: decrement
    lcd.command(0x80 | 0x45)
    for c in b"CBA":
        lcd._byte(c, 1)
    assert glass.lines()[1] == "   ABC          "
    assert glass.cursor_position() == (1, 2)  # decrementing: left of the A
    lcd.command(0x0E)  # display on, cursor on
    assert glass.cursor and glass.png() != FakeHd44780(16, 2).png()
    lcd.set_backlight(False)
    assert not glass.backlight
    # a stray nibble (a restart half-way through a byte) is undone by init()
    lcd._nibble(0x4, 0)
    lcd.init()
    lcd.show(["hello", "world"])
    assert glass.lines() == ["hello           ", "world           "]


def test_rows_of_a_20x4_are_the_interleaved_ddram_lines() -> None:
    _, glass, lcd = hd44780(20, 4, 0x3F)
    lcd.show(["row one", "row two", "row three", "row four"])
    assert [line.rstrip() for line in glass.lines()] == ["row one", "row two", "row three", "row four"]
    assert glass.ddram[0x14:0x1D] == b"row three"


def test_probe_finds_the_pcf8574a() -> None:
    bus = FakeI2cBus()
    bus.attach(0x3F, FakeHd44780())
    assert probe(bus, (0x27, 0x3F)) == 0x3F
    assert probe(bus, (0x27,)) is None


def test_non_rom_characters_show_as_question_marks() -> None:
    _, glass, lcd = hd44780(16, 2)
    lcd.show(["a\\b~°", ""])
    assert glass.lines()[0].rstrip() == "a?b??"


@pytest.mark.parametrize(("ns", "text"), [(0, "+0.000ms"), (-50_100_000, "-50.100ms"), (123_456_789, "+123.5ms"),
                                          (2_500_000_000, "+2.50s"), (None, "--")])  # fmt: skip
def test_format_ns(ns: int | None, text: str) -> None:
    assert format_ns(ns) == text


def test_pages_turn_by_themselves_and_with_the_button() -> None:
    from gpiozero.pins.mock import MockFactory  # type: ignore[import-untyped,unused-ignore]

    bus = FakeI2cBus()
    glass = FakeHd44780()
    bus.attach(0x27, glass)
    panel = Panel(connector(bus, "16x2"), LCD_16X2, page_s=5)
    s = 1_000_000_000
    panel.update(0, HEALTHY)
    assert glass.lines()[0].startswith("11:54:56 UTC")
    panel.update(4 * s, HEALTHY)
    assert panel.page == "time"
    panel.update(5 * s, HEALTHY)
    assert panel.page == "offset" and glass.lines()[0].startswith("Offset")
    factory = MockFactory()
    button = attach_button(panel, 17, pin_factory=factory)
    try:
        pin = factory.pin(17)
        pin.drive_low()  # pressed: to GND against the pull-up
        pin.drive_high()
        panel.update(6 * s, HEALTHY)
        assert panel.page == "gps" and glass.lines()[0].startswith("GPS fix")
        panel.update(10 * s, HEALTHY)  # a press restarts the count: 4 s later, still there
        assert panel.page == "gps"
        panel.update(11 * s, HEALTHY)
        assert panel.page == "net"
        # an alarm comes on: its page at once, and it stays in the cycle first
        panel.update(12 * s, HOLDOVER)
        assert panel.page == "alarm" and glass.lines()[0].startswith("ALARM")
        pin.drive_low()
        pin.drive_high()
        panel.update(13 * s, HOLDOVER)
        assert panel.page == "time"
    finally:
        button.close()


def test_unplugged_display_logged_once_retried_and_back(caplog: pytest.LogCaptureFixture) -> None:
    bus = FakeI2cBus()
    glass = FakeHd44780()
    bus.attach(0x27, glass)
    panel = Panel(connector(bus, "16x2"), LCD_16X2, page_s=60, retry_s=5)
    s = 1_000_000_000
    caplog.set_level(logging.WARNING)
    panel.update(0, HEALTHY)
    assert glass.lines()[0].startswith("11:54:56")
    bus.unplug(0x27)
    for t in range(1, 12):
        panel.update(t * s, HEALTHY)  # keeps going: no exception
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "display not answering" in warnings[0]
    tries = bus.failures
    assert 2 <= tries <= 5  # the failed write, then a probe every 5 s, not every second
    bus.replug(0x27)
    assert glass.lines() == [" " * 16] * 2  # powered up afresh: display off, nothing shown
    panel.update(12 * s, HEALTHY)
    panel.update(17 * s, HEALTHY)
    assert glass.lines()[0].startswith("11:54:56 UTC") and glass.lines()[1].startswith("S1 PPS")
    assert [r.getMessage() for r in caplog.records][-1] == "display is back"


def test_a_missing_bus_is_not_an_empty_one() -> None:
    class NoBus(FakeI2cBus):
        def read_byte(self, address: int) -> int:
            raise FileNotFoundError(2, "No such file or directory", "/dev/i2c-1")

    with pytest.raises(FileNotFoundError):
        probe(NoBus(), (0x27, 0x3F))


def test_view_from_ntp_shows_the_appliances_time_and_its_alarms() -> None:
    from appliance.lcd.view import jitter_ns, view_from_ntp
    from appliance.ntp.exchange import Measurement

    m = Measurement(250_000_000, 100_000, 1, 0, b"PPS\0", 4, 6, -20, 0, 1000)
    v = view_from_ntp(T, m, [0, 1000, -1000], ip_address="10.0.0.2", load=0.5)
    assert (v.utc_ns, v.stratum, v.refid, v.basis, v.alarms) == (T + 250_000_000, 1, "PPS", "gps", ())
    assert v.jitter_ns == jitter_ns([0, 1000, -1000]) == round(((1000**2 + 2000**2) / 2) ** 0.5)
    unsync = view_from_ntp(T, Measurement(0, 0, 16, 3, b"INIT", 4, 6, -20, 0, 0), [], ip_address=None, load=None)
    assert unsync.basis == "unsynchronised" and unsync.alarms == ("Not synchronised",) and unsync.jitter_ns is None
    leap = view_from_ntp(
        T, Measurement(0, 0, 2, 1, bytes([192, 0, 2, 1]), 4, 6, -20, 0, 0), [], ip_address=None, load=None
    )
    assert (leap.basis, leap.refid, leap.alarms) == ("upstream", "192.0.2.1", ("Leap second due",))


def test_an_upstream_address_is_never_cut_into_another_address() -> None:
    """127.100.200.201 cut to '127.100.2' or '127.' reads as a different server: shorten the rest instead."""
    up = replace(HOLDOVER, stratum=2, refid="127.100.200.201", basis="upstream", alarms=())
    assert shown(up, 20, 4)["time"][1] == "S2 127.100.200.201"
    assert shown(up, 16, 2)["time"][1] == "S2 NTP"
    near = replace(up, refid="192.168.0.1")
    assert shown(near, 20, 4)["time"][1] == "S2 192.168.0.1"
    assert shown(replace(up, refid="10.0.0.1"), 20, 4)["time"][1] == "Stratum 2  10.0.0.1"
    assert shown(near, 16, 2)["time"][1] == "S2 192.168.0.1"
    assert shown(replace(up, stratum=None, basis=None, refid=None), 16, 2)["time"][1] == "NTP: no answer"


def test_every_alarm_word_fits_a_16x2() -> None:
    from appliance.lcd.view import _ALARM_WORDS, ntp_alarms

    words = [*_ALARM_WORDS.values(), *ntp_alarms(None), "Leap second due", "Local clock, S10"]
    assert all(len(w) <= 16 for w in words), [w for w in words if len(w) > 16]
