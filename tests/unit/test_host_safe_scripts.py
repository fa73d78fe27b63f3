"""The set-up scripts and the tests never remove, stop, disable or end anything on the host (issue 8, part 1).

``./run-tests`` runs as root on a user's machine: the scripts it calls may
unpack programs privately (``apt-get download`` + ``dpkg-deb -x``) and install
plain tools, but never install a time or GPS daemon (that would replace an
installed chrony), remove a package, stop or disable a service, or end a
process by name. A cheap scan of the scripts, so a regression fails in a
second; ``tests/interop/test_host_safe.py`` runs the set-up for real next to a
running chronyd.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from support import ROOT

DAEMONS = r"(ntpsec|ntp|chrony|gpsd|openntpd|ntpstat|ntpsec-ntpdate|ntpsec-ntpdig|ntpdate)"
APT = r"(?<![\w.-])(apt-get|apt|aptitude)\s"  # the command, not a word like apt-install-safe
FORBIDDEN = {
    "ends processes by name": r"\b(pkill|killall|killall5)\b",
    "stops, disables or masks a unit": r"\bsystemctl\b[^\n]*\b(stop|disable|mask|kill|--now)\b",
    "stops a service": r"\b(service|invoke-rc\.d)\s+\S+\s+(stop|restart|force-stop)\b|/etc/init\.d/\S+\s+stop",
    "removes packages": rf"{APT}[^\n]*\b(remove|purge|autoremove)\b|\bdpkg\s(?:[^\n]*\s)?(-r|-P|--remove|--purge)\b",
    "installs a daemon": rf"{APT}[^\n]*\binstall\b[^\n]*\s{DAEMONS}(\s|$|=)",
    "installs packages behind apt's back": r"\bdpkg\s(?:[^\n]*\s)?(-i|--install|--unpack|--configure)\b",
    "plays with service start policy": r"policy-rc\.d",
}


def _code(text: str) -> str:
    """The script without its comments (a comment may name what is forbidden)."""
    lines = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        lines.append(re.sub(r"\s#\s.*$", "", line))
    return "\n".join(lines)


def violations(text: str) -> list[str]:
    code = _code(text)
    return [f"{why}: {m.group(0).strip()!r}" for why, rx in FORBIDDEN.items() for m in re.finditer(rx, code)]


def _scripts() -> list[Path]:
    return [ROOT / "run-tests", *sorted(p for p in (ROOT / ".ci").iterdir() if p.is_file())]


@pytest.mark.parametrize("script", _scripts(), ids=lambda p: str(p.relative_to(ROOT)))
def test_set_up_script_uses_no_forbidden_command(script: Path) -> None:
    assert violations(script.read_text()) == []


@pytest.mark.parametrize(
    "line",
    [
        "pkill -x ntpd >/dev/null 2>&1 || true",
        "killall chronyd",
        "systemctl disable --now chrony",
        "systemctl stop ntpsec.service",
        'service "$unit" stop',
        "invoke-rc.d chrony stop",
        "apt-get install -y -qq --no-install-recommends ntpsec ntpsec-ntpdate iproute2",
        "apt-get install -y chrony",
        "apt install gpsd",
        "apt-get -y purge chrony",
        "apt-get remove --purge ntp",
        "dpkg -i chrony_4.3_amd64.deb",
        "printf '#!/bin/sh\\nexit 101\\n' >/usr/sbin/policy-rc.d",
    ],
)
def test_the_scan_catches_what_the_old_set_up_did(line: str) -> None:
    assert violations(f"#!/bin/sh\nset -e\n{line}\n")


@pytest.mark.parametrize(
    "line",
    [
        "# never pkill: end our own processes by PID",
        "apt-get download -qq chrony",
        'dpkg-deb -x "$deb" "$tree"',
        "bash .ci/apt-install-safe gcc libc6-dev python3-dev",
        "apt-get install -y -qq --no-install-recommends --no-upgrade iproute2",
        'kill "$pid"',
    ],
)
def test_the_scan_lets_private_unpacking_and_plain_tools_through(line: str) -> None:
    assert violations(f"#!/bin/sh\n{line}\n") == []


def test_no_test_or_benchmark_ends_processes_by_name() -> None:
    """Tests end what they started by PID (Popen.terminate/kill); never pkill/killall."""
    here = Path(__file__).resolve()
    hits = [
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p in sorted([*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")])
        if p != here
        for m in re.finditer(
            # advice printed for a person starts with "sudo " (stratum1 doctor's fixes); the tests run as root
            # and never call sudo, so a systemctl behind sudo is text, not something a test runs
            r"[\"'](pkill|killall|killall5)[\"']|(?<!sudo )\bsystemctl\b[^\n]*\b(stop|disable|mask|kill)\b",
            p.read_text(),
        )
    ]
    assert hits == []


def test_every_test_chronyd_keeps_off_the_hosts_command_socket() -> None:
    """A chronyd config with ``cmdport 0`` alone still binds /run/chrony/chronyd.sock (the host chrony's)."""
    missing = [
        str(p.relative_to(ROOT))
        for p in sorted([*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")])
        if "cmdport" in (text := p.read_text()) and "bindcmdaddress /" not in text
    ]
    assert missing == []


def test_apt_install_safe_refuses_daemons_before_asking_apt() -> None:
    for pkg in ("chrony", "ntpsec", "gpsd", "ntpsec-ntpdig"):
        r = subprocess.run(
            ["bash", str(ROOT / ".ci/apt-install-safe"), "--dry-run", "iproute2", pkg],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 1, r
        assert f"refusing to install {pkg}" in r.stderr
