"""Hardware profiles: the built-in TOML files parse and agree with themselves; bad files say where."""

from __future__ import annotations

import pytest

from appliance.fakes.gps import MODELS
from appliance.refclock.profiles import (
    ProfileError,
    builtin_names,
    builtin_profiles,
    load_builtin,
    parse_profile,
)

MINIMAL = """
name = "x"
title = "X"
[serial]
bus = "uart"
device = "/dev/serial0"
baud = 9600
[pps]
source = "kernel"
device = "/dev/pps0"
gpio = 4
[nmea]
offset_s = 0.25
[hat]
match = ["ACME", "gps"]
"""


def test_the_built_in_profiles() -> None:
    assert builtin_names() == [
        "adafruit-ultimate-gps-hat",
        "uputronics-gps-hat",
        "usb-receiver",
        "waveshare-l76x-gps-hat",
    ]
    ada = load_builtin("adafruit-ultimate-gps-hat")
    assert (ada.serial_device, ada.baud, ada.pps_source, ada.pps_device, ada.pps_gpio) == (
        "/dev/serial0",
        9600,
        "kernel",
        "/dev/pps0",
        4,
    )
    assert ada.nmea_offset_ns == 500_000_000 and ada.nmea_labels == "current"
    assert ada.serial_bus == "uart" and ada.hat_match == ("adafruit", "gps")
    assert load_builtin("uputronics-gps-hat").pps_gpio == 18
    usb = load_builtin("usb-receiver")
    assert usb.pps_source == "none" and usb.pps_gpio is None and usb.serial_bus == "usb" and usb.hat_match == ()
    assert "pps.gpio" in load_builtin("waveshare-l76x-gps-hat").unverified


@pytest.mark.parametrize("name", builtin_names())
def test_every_built_in_profile_is_consistent(name: str) -> None:
    p = builtin_profiles()[name]
    assert p.name == name and p.title and p.timing_notes
    assert p.fake_model in MODELS
    if p.pps_source != "none":
        assert p.serial_bus == "uart" and p.pps_gpio is not None
    if p.hat_match:
        assert "hat.match" in p.unverified, "no HAT's EEPROM strings have been read off a board yet"
    assert 0 < p.nmea_offset_ns < 1_000_000_000


def test_minimal_profile_and_defaults() -> None:
    p = parse_profile(MINIMAL, "mine.toml")
    assert p.nmea_offset_ns == 250_000_000
    assert p.hat_match == ("acme", "gps")
    assert (p.autobaud, p.pps_edge, p.nmea_labels, p.sentences, p.fake_model, p.unverified) == (
        False,
        "assert",
        "current",
        (),
        None,
        (),
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("baud = 9600", "baud = '9600'"), "mine.toml: serial.baud: expected an integer, got str"),
        (("baud = 9600", "baud = true"), "serial.baud: expected an integer, got a boolean"),
        (("baud = 9600", "baud = 0"), "serial.baud: must be positive"),
        (('device = "/dev/serial0"\n', ""), "serial.device: missing"),
        (('source = "kernel"', 'source = "usb"'), "pps.source: expected one of kernel, gpio, none"),
        (('device = "/dev/pps0"\n', ""), "pps.device: required when pps.source is 'kernel'"),
        (("gpio = 4", "gpio = 99"), "pps.gpio: not a Raspberry Pi GPIO number"),
        (("gpio = 4\n", ""), "pps.gpio: required when pps.source is 'kernel'"),
        (('bus = "uart"', 'bus = "spi"'), "serial.bus: expected one of uart, usb"),
        (('bus = "uart"', 'bus = "usb"'), "hat.match: only a HAT (serial.bus = 'uart') has an ID EEPROM"),
        (("offset_s = 0.25", "offset_s = 1.5"), "nmea.offset_s: must be within"),
        (("[nmea]", "[nmea]\nlabel = 'next'"), "nmea.label: unknown key"),
        (('title = "X"', 'title = "X"\n[extra]'), "extra: unknown key"),
        (("[hat]", "[hat]\nunverified = []"), "hat.unverified: unknown key"),  # a top-level key misplaced
        (("[hat]", "[hat"), "mine.toml: "),
        (("[hat]", "[boot]\nconfig_txt = []\n[hat]"), "boot: unknown key"),  # derived now: appliance.hw.boot
    ],
)
def test_errors_name_the_file_and_key(change: tuple[str, str], message: str) -> None:
    text = MINIMAL.replace(*change)
    assert text != MINIMAL
    with pytest.raises(ProfileError) as e:
        parse_profile(text, "mine.toml")
    assert message in str(e.value)


def test_gpio_source_needs_a_pin() -> None:
    text = MINIMAL.replace('source = "kernel"', 'source = "gpio"').replace("gpio = 4\n", "")
    with pytest.raises(ProfileError, match="pps.gpio: required"):
        parse_profile(text)


def test_unknown_built_in() -> None:
    with pytest.raises(ProfileError, match="no built-in hardware profile 'nope'.*adafruit-ultimate-gps-hat"):
        load_builtin("nope")
