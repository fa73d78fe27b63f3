"""docs/gps.md stays true: its config.txt lines, ntp.conf lines, figures and log lines match the code.

The board profiles (appliance/hw_profiles/*.toml) are the source of truth; the
page quotes them. When a profile or a constant changes, this test names the
paragraph of the page to update.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest

from appliance.config import parse_config
from appliance.daemon import BUILD_DATE_NS
from appliance.hw.boot import cmdline_remove, gps_config_txt, strip_cmdline
from appliance.io.pps import DEFAULT_POLL_S
from appliance.io.serial import DEFAULT_HUNT_S, DEFAULT_RETRY_S, open_error_hint
from appliance.nmea.rollover import DEFAULT_MARGIN_NS
from appliance.nmea.sentence import USED_TYPES
from appliance.refclock import gps
from appliance.refclock.profiles import builtin_profiles
from appliance.refclock.setup import _MODE_BAUDS, gps_setup
from appliance.sources.timekeeper import DEFAULT_HOLDOVER_BOUND_NS
from appliance.timebase import NS_PER_S, ns_from_seconds

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "gps.md").read_text(encoding="utf-8")
HW_README = (ROOT / "hw" / "README.md").read_text(encoding="utf-8")
SVG = (ROOT / "docs" / "images" / "gps-wiring.svg").read_text(encoding="utf-8")
PROFILES = builtin_profiles()
#: The page with its line breaks folded into spaces, for phrases that a reflow may wrap.
FLAT = " ".join(PAGE.split())


def _code_block_after(marker: str) -> list[str]:
    """The lines of the first fenced code block after ``marker`` in the page."""
    start = PAGE.index(marker)
    m = re.compile(r"```\n(.*?)```", re.S).search(PAGE, start)
    assert m is not None, f"no code block after {marker!r}"
    return [line for line in m.group(1).splitlines() if line.strip()]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_config_txt_lines_are_the_profiles(name: str) -> None:
    p = PROFILES[name]
    lines = gps_config_txt(p, "raspios")  # the page is for Raspberry Pi OS; the image's lines are derived alike
    if not lines:
        assert "**USB receiver**: nothing" in PAGE
        return
    assert _code_block_after(f"**{p.title}**") == list(lines)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_facts_in_the_table(name: str) -> None:
    p = PROFILES[name]
    row = next(line for line in PAGE.splitlines() if f"(`{name}`)" in line)
    assert f"`{p.serial_device}`" in row
    assert f"{p.baud}" in row
    if p.pps_gpio is not None:
        assert f"GPIO {p.pps_gpio}" in row
    else:
        assert "**none**" in row
    assert f"{p.nmea_offset_ns / NS_PER_S:g} s" in row
    for key in p.unverified:
        assert f"`{key}`" in row, f"{name}: unverified {key} not said in the table"
    if not p.unverified:
        assert "nothing listed" in row


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_cmdline_words_are_named(name: str) -> None:
    said = "console=serial0,115200"
    assert f"`{said}`" in PAGE
    kept = strip_cmdline(f"console=tty1 {said} root=/dev/mmcblk0p2", cmdline_remove(PROFILES[name]))
    assert (said in kept) == (PROFILES[name].serial_bus == "usb")


def _ntp_conf_for(title: str) -> str:
    lines = _code_block_after("Per board, in stratum1's form")
    i = lines.index(f"# {title}")
    return lines[i + 1]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_per_board_ntp_conf_matches_the_profile(name: str) -> None:
    p = PROFILES[name]
    title = "USB receiver, no PPS: time2 is the whole accuracy here; calibrate it against a good NTP server"
    line = _ntp_conf_for(p.title if p.pps_source != "none" else title)
    setup = gps_setup(parse_config(line + "\n", "<docs/gps.md>"))
    assert setup is not None
    assert setup.serial_path == p.serial_device
    assert setup.baud == p.baud
    assert setup.nmea_delay_ns == p.nmea_offset_ns
    assert setup.pps_path == (p.pps_device if p.pps_source == "kernel" else None)


def test_the_three_spellings_parse_to_one_receiver() -> None:
    ours = gps_setup(parse_config("\n".join(_code_block_after("**stratum1's own form**")) + "\n", "ours"))
    ntpsec = gps_setup(parse_config("\n".join(_code_block_after("**NTPsec's form**")) + "\n", "ntpsec"))
    ntpd = gps_setup(parse_config("\n".join(_code_block_after("**ntpd's form**")) + "\n", "ntpd"))
    assert ours is not None and ntpsec is not None and ntpd is not None
    assert ours.serial_path == ntpsec.serial_path == "/dev/serial0"
    assert ntpd.serial_path == "/dev/gps0" and ntpd.pps_path == "/dev/gpspps0"
    assert ours.pps_path == ntpsec.pps_path == "/dev/pps0"
    assert ours.baud == ntpsec.baud == ntpd.baud == 9600
    assert ours.nmea_delay_ns == ntpsec.nmea_delay_ns == ntpd.nmea_delay_ns == ns_from_seconds(0.5)


def test_mode_baud_table() -> None:
    said = {0: 4800, 16: 9600, 32: 19200, 48: 38400, 64: 57600, 80: 115200}
    assert {k << 4: v for k, v in _MODE_BAUDS.items()} == said
    for mode, baud in said.items():
        if mode:
            assert f"`{mode}` {baud}" in PAGE or f"`{mode}`-`{mode + 15}` is {baud}" in PAGE


def test_figures_are_the_codes() -> None:
    assert gps.CALIBRATION_WINDOW == 64 and "the last **64**" in FLAT
    assert gps.RELOCK_EPOCHS == 3 and "**3 consecutive epochs**" in FLAT
    assert gps.JUMP_RELOCK_EPOCHS == 600 and "600 epochs (10 minutes)" in FLAT
    assert gps.PULSE_TOLERANCE_NS == 200_000_000 and "within 200 ms" in FLAT
    assert gps.PULSE_TIMEOUT_NS == 1_500_000_000 and 'recent" for 1.5 s' in FLAT
    assert gps.FIX_TIMEOUT_NS == 3 * NS_PER_S
    assert gps.MAX_NMEA_DELAY_NS == 950_000_000 and "0.95 s" in FLAT
    assert gps.NMEA_MIN_DISPERSION_NS == 5_000_000 and "never under 5 ms" in FLAT
    assert DEFAULT_POLL_S == 0.15 and "every 150 ms" in FLAT
    assert DEFAULT_MARGIN_NS == 365 * 86_400 * NS_PER_S and "365 days" in FLAT
    assert BUILD_DATE_NS == 1_795_392_000 * NS_PER_S and "2026-11-23 in this release" in FLAT
    assert DEFAULT_HOLDOVER_BOUND_NS == 1_000_000 and "under 1 ms" in FLAT
    assert DEFAULT_RETRY_S == 3.0
    for kind in USED_TYPES:
        assert f"`{kind}`" in FLAT


@pytest.mark.parametrize("code", [errno.ENOENT, errno.EACCES, errno.EBUSY])
def test_serial_log_lines_are_the_drivers(code: int) -> None:
    line = f"GPS {open_error_hint('/dev/serial0', OSError(code, 'x'))}; retrying every {DEFAULT_RETRY_S:g} s"
    assert f"`{line}`" in PAGE


def test_svg_names_the_pins() -> None:
    assert "GPIO4" in SVG and "GPIO18" in SVG and "GPIO15 RXD" in SVG and "GPIO14 TXD" in SVG
    assert PROFILES["adafruit-ultimate-gps-hat"].pps_gpio == 4
    assert PROFILES["uputronics-gps-hat"].pps_gpio == 18
    assert "images/gps-wiring.svg" in PAGE


def test_hw_readme_links_and_agrees() -> None:
    assert "../docs/gps.md" in HW_README
    for name in PROFILES:
        assert f"`{name}`" in HW_README


def test_baud_search_again_line_is_the_drivers() -> None:
    assert DEFAULT_HUNT_S == 10.0
    line = f"GPS /dev/serial0: no NMEA at 115200 baud for {DEFAULT_HUNT_S:.0f} s: searching again"
    assert f"`{line}`" in FLAT


def test_steps_paragraph_is_what_a_step_does() -> None:
    """A clock step restates the pairing and keeps the lock and the NMEA offset (GpsClock.clock_stepped; shown by
    tests/unit/refclock/test_gps_clock.py): the page said everything was forgotten."""
    steps = FLAT[FLAT.index("**Steps.**") :].split(" ## ")[0]
    assert "forgotten" not in steps
    assert "the lock, the numbering of the pulses and the NMEA offset measured carry on" in steps
    assert "carry on" in (gps.GpsClock.clock_stepped.__doc__ or "")


def test_no_setting_makes_checksums_optional() -> None:
    """No configuration reaches NmeaStream(checksum_optional=...): the page and the decoder's docstring say so."""
    from appliance import build
    from appliance.config import parser
    from appliance.nmea import sentence

    for module in (build, parser):
        assert "checksum_optional" not in Path(module.__file__ or "").read_text(encoding="utf-8")
    assert "no setting changes it" in FLAT
    assert "no configuration line turns ``checksum_optional`` on" in " ".join((sentence.__doc__ or "").split())
