"""The entry point: status, peers, exporter and plot start without the daemon's modules, and --help lists them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_status_loads_neither_cli_nor_the_daemon() -> None:
    code = (
        "import sys\nfrom appliance.command import main\n"
        "rc = main(['status', '--socket', '/nonexistent/status.sock'])\n"
        "big = ('appliance.cli', 'appliance.daemon', 'appliance.config.parser')\n"
        "heavy = sorted(m for m in sys.modules if m in big)\n"
        "print(rc, heavy)\n"
    )
    out = run("-c", code)
    assert out.stdout.strip() == "2 []", out.stdout + out.stderr
    assert "no status socket" in out.stderr


def test_help_lists_the_status_commands() -> None:
    out = run("-m", "appliance", "--help")
    for name in ("status", "peers", "exporter", "plot"):
        assert f"    {name} " in out.stdout
    assert "usage: stratum1 plot" in run("-m", "appliance.cli", "plot", "--help").stdout
