"""systemd/stratum1-web.service: its own user in group stratum1 alone, no capability, no device; its exposure."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable

from support import ROOT, require, unit_service_settings

UNIT = ROOT / "systemd" / "stratum1-web.service"
TARGET = 1.5  # as stratum1-lcd.service; the exporter's unit scores 2.2


def service_settings() -> list[tuple[str, str]]:
    return unit_service_settings(UNIT)


def test_web_unit_runs_as_its_own_user_with_the_status_group_alone() -> None:
    settings = service_settings()
    one = dict(settings)
    assert one["DynamicUser"] == "yes" and one["User"] == "stratum1-web"
    assert one["SupplementaryGroups"].split() == ["stratum1"]
    assert one["CapabilityBoundingSet"] == "" and one["AmbientCapabilities"] == ""
    assert one["NoNewPrivileges"] == "yes" and one["PrivateDevices"] == "yes" and one["DevicePolicy"] == "closed"
    assert one["ProtectSystem"] == "strict" and one["MemoryDenyWriteExecute"] == "yes"
    assert not any(k in ("ReadWritePaths", "StateDirectory", "LogsDirectory", "DeviceAllow") for k, _ in settings)
    # no address of its own choosing: the admin's --listen, empty (and so refused) until set
    assert one["ExecStart"] == "/usr/bin/stratum1 web $WEB_ARGS" and one["Environment"] == "WEB_ARGS="
    assert "WantedBy=multi-user.target" in UNIT.read_text()


def test_web_unit_exposure(figure: Callable[[str], None]) -> None:
    tool = shutil.which("systemd-analyze")
    require(tool is not None, "systemd-analyze is missing (Debian: apt-get install systemd)")
    assert tool is not None
    out = subprocess.run([tool, "security", "--offline=true", str(UNIT)], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert m, out.stdout + out.stderr
    score = float(m.group(1))
    figure(f"systemd-analyze security --offline=true systemd/stratum1-web.service: {score} (target <= {TARGET})")
    assert score <= TARGET
