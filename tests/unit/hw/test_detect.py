"""appliance.hw.detect and ``python3 -m appliance.hw detect``: the HAT's EEPROM strings to a profile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

from appliance.hw.detect import HatId, hat_strings, match_hat
from appliance.refclock.profiles import builtin_profiles

PROFILES = builtin_profiles()


def _detect(root: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "appliance.hw", "detect", "--root", str(root)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


def _fake_root(tmp: Path, vendor: bytes | None, product: bytes | None) -> Path:
    hat = tmp / "proc" / "device-tree" / "hat"
    hat.mkdir(parents=True)
    if vendor is not None:
        (hat / "vendor").write_bytes(vendor)
    if product is not None:
        (hat / "product").write_bytes(product)
    return tmp


def test_strings_lose_their_nul() -> None:
    assert hat_strings(b"Uputronics\0", b"GPS Expansion Board\0") == HatId("Uputronics", "GPS Expansion Board")
    assert hat_strings(None, b"Thing\0junk") == HatId("", "Thing")
    assert hat_strings(b"ACME\0", None) is None


@pytest.mark.parametrize(
    ("vendor", "product", "names"),
    [
        ("Adafruit Industries", "Ultimate GPS HAT", ["adafruit-ultimate-gps-hat"]),
        ("UPUTRONICS", "GPS/RTC Expansion Board", ["uputronics-gps-hat"]),
        ("Waveshare", "L76X GPS HAT", ["waveshare-l76x-gps-hat"]),
        ("Uputronics", "LoRa Expansion Board", []),  # another of the vendor's HATs
        ("ACME", "Dunce HAT", []),
    ],
)
def test_match(vendor: str, product: str, names: list[str]) -> None:
    assert match_hat(HatId(vendor, product), PROFILES) == names


def test_detect_names_the_profile(tmp_path: Path) -> None:
    out = _detect(_fake_root(tmp_path, b"Adafruit Industries\0", b"Ultimate GPS HAT\0"))
    assert (out.returncode, out.stdout, out.stderr) == (0, "adafruit-ultimate-gps-hat\n", "")


def test_detect_without_an_eeprom(tmp_path: Path) -> None:
    out = _detect(tmp_path)
    assert out.returncode == 1 and out.stdout == ""
    assert (
        out.stderr == f"stratum1 hw: no HAT ID EEPROM ({tmp_path}/proc/device-tree/hat/product is missing): "
        "choose the profile\n"
    )


def test_detect_an_unknown_hat(tmp_path: Path) -> None:
    out = _detect(_fake_root(tmp_path, b"ACME\0", b"Dunce HAT\0"))
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr == "stratum1 hw: HAT 'ACME' 'Dunce HAT': no profile matches: choose the profile\n"


def test_detect_an_ambiguous_hat(tmp_path: Path) -> None:
    out = _detect(_fake_root(tmp_path, b"Adafruit\0", b"Uputronics GPS clone\0"))
    assert out.returncode == 1
    assert "several profiles match (adafruit-ultimate-gps-hat, uputronics-gps-hat)" in out.stderr
