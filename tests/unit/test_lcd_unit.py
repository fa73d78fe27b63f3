"""systemd/stratum1-lcd.service: its own user with the i2c and gpio groups and nothing else; exposure.

It does not join group stratum1, so it cannot open the status socket (mode 0660, group stratum1: issue 10's
rule, unchanged): it reads the appliance's mode 6 variables on loopback instead (tests/unit/lcd/test_lcd_mode6.py
holds that the pages are the same).

The unit cannot be started here (systemd is not PID 1); ``systemd-analyze
security --offline=true`` scores the file, and the settings that make
"nothing else" true are read from it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable

from support import ROOT, require, unit_service_settings

UNIT = ROOT / "systemd" / "stratum1-lcd.service"
TARGET = 1.5  # stratum1.service is held under 2.5; a reader with no capability should do better


def service_settings() -> list[tuple[str, str]]:
    return unit_service_settings(UNIT)


def test_lcd_unit_runs_as_its_own_user_with_i2c_and_gpio_alone() -> None:
    settings = service_settings()
    one = dict(settings)  # the last of each key
    assert one["DynamicUser"] == "yes" and one["User"] == "stratum1-lcd"
    assert [v for k, v in settings if k in ("SupplementaryGroups", "Group")] == ["i2c gpio"]
    assert one["CapabilityBoundingSet"] == "" and one["AmbientCapabilities"] == ""
    assert one["NoNewPrivileges"] == "yes" and one["DevicePolicy"] == "closed"
    assert sorted(v for k, v in settings if k == "DeviceAllow") == ["char-gpiochip rw", "char-i2c rw"]
    assert one["IPAddressAllow"] == "localhost" and one["IPAddressDeny"] == "any"
    assert one["ExecStart"].startswith("/usr/bin/stratum1 lcd")


def test_lcd_unit_exposure(figure: Callable[[str], None]) -> None:
    tool = shutil.which("systemd-analyze")
    require(tool is not None, "systemd-analyze is missing (Debian: apt-get install systemd)")
    assert tool is not None
    out = subprocess.run([tool, "security", "--offline=true", str(UNIT)], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert m, out.stdout + out.stderr
    score = float(m.group(1))
    figure(f"systemd-analyze security --offline=true systemd/stratum1-lcd.service: {score} (target <= {TARGET})")
    assert score <= TARGET
