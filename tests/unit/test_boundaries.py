"""The pure core stays pure: no sockets, serial ports, ioctls, event loops, threads or wall-clock reads.

DESIGN.md: ``ntp/``, ``nmea/``, ``sources/``, ``config/`` and the discipline
maths take the time as an argument. This test reads their source (it imports
nothing) and fails on any forbidden import or clock read.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "appliance"
PURE_DIRS = ["ntp", "nmea", "sources", "config", "status"]
PURE_FILES = [
    "timebase.py",
    "refclock/sample.py",
    "refclock/local.py",
    "refclock/gps.py",
    "refclock/pps.py",
    "refclock/profiles.py",
    "clock/discipline.py",
    "refclock/setup.py",
    "refclock/driver.py",
    "refclock/source.py",
    "refclock/shm.py",
    "refclock/gpsd_json.py",
    "leap.py",
    "hw/boot.py",
    "hw/detect.py",
    "hw/doctor.py",
    "hw/kernel.py",
]
FORBIDDEN_MODULES = {
    "socket",
    "serial",
    "fcntl",
    "select",
    "selectors",
    "asyncio",
    "threading",
    "subprocess",
    "ctypes",
    "time",
    "smbus2",
    "gpiozero",
    "gpiod",
    "appliance.io",
}
#: Pure address conversions that happen to live in the socket module.
ALLOWED_FROM_SOCKET = {"inet_pton", "inet_ntop", "AF_INET", "AF_INET6"}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "time_ns", "monotonic", "perf_counter", "clock_gettime"}


def pure_modules() -> list[Path]:
    files = [p for d in PURE_DIRS for p in sorted((PKG / d).rglob("*.py"))]
    files += [PKG / f for f in PURE_FILES if (PKG / f).exists()]
    return files


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_pure_module_has_no_io_and_reads_no_clock(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    problems = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "socket" and all(a.name in ALLOWED_FROM_SOCKET for a in node.names):
                continue
            names = [node.module]
        for name in names:
            if name in FORBIDDEN_MODULES or name.split(".")[0] in FORBIDDEN_MODULES or name.startswith("appliance.io"):
                problems.append(f"line {node.lineno}: imports {name}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FORBIDDEN_CALLS:
            problems.append(f"line {node.lineno}: calls .{node.func.attr}()")
    assert not problems, f"{path.relative_to(PKG)} is meant to be pure: " + "; ".join(problems)
