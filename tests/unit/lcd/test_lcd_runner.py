"""The display process against a running appliance on loopback: its view over NTP, and a display unplugged meanwhile."""

from __future__ import annotations

import threading

from harness import LOCAL_CLOCK_CONF, serving

from appliance.fakes.i2c import FakeHd44780, FakeI2cBus
from appliance.lcd.pages import LCD_20X4
from appliance.lcd.runner import NtpViewSource, Panel, connector, run

S = 1_000_000_000


def test_view_over_ntp_and_a_display_unplugged_and_back() -> None:
    bus = FakeI2cBus()
    glass = FakeHd44780(20, 4)
    bus.attach(0x3F, glass)
    panel = Panel(connector(bus, "20x4"), LCD_20X4, page_s=5, retry_s=1)
    with serving(LOCAL_CLOCK_CONF) as app:
        source = NtpViewSource(("127.0.0.1", app.settings.port))
        view = source()
        assert (view.stratum, view.refid, view.basis) == (10, "LOCL", "local")
        assert view.alarms == ("Local clock, S10",)
        panel.update(0, view)  # the alarm page first
        assert [line.rstrip() for line in glass.lines()] == ["ALARM", "Local clock, S10", "", ""]
        panel.update(5 * S, source())
        assert panel.page == "time" and glass.lines()[1:3] == ["Stratum 10 LOCL     ", "Local clock only    "]
        bus.unplug(0x3F)
        for t in range(6, 9):
            panel.update(t * S, source())  # the appliance keeps answering, the panel keeps going
        assert source().stratum == 10 and panel.display is None
        bus.replug(0x3F)
        panel.update(9 * S, source())
        assert panel.display is not None and glass.lines() == list(panel.shown)
        assert glass.lines()[1:3] == ["Stratum 10 LOCL     ", "Local clock only    "]
        # and the loop itself: a jitter once two offsets are in, pages on the glass
        stop = threading.Event()
        t = threading.Thread(target=run, args=(panel, source), kwargs={"refresh_s": 0.1, "stop": stop})
        t.start()
        stop.wait(0.5)
        stop.set()
        t.join(5)
        assert not t.is_alive() and source().jitter_ns is not None
    view = source()  # the appliance is gone
    assert view.stratum is None and view.alarms == ("NTP: no answer",)


def test_module_and_subcommand_take_the_same_options() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "appliance.lcd", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--display {16x2,20x4,oled}" in out.stdout and "--button GPIO" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "lcd", "--address", "0x80"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not an I2C address" in bad.stderr
