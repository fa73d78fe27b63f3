"""The pure core stays pure: no sockets, serial ports, ioctls, event loops, threads or wall-clock reads.

DESIGN.md: ``ntp/``, ``nmea/``, ``sources/``, ``config/`` and the discipline
maths take the time as an argument. The modules checked are those the layer
table of docs/architecture.md calls the pure core (read from the table, so the
doc and the test cannot disagree). This test reads their source (it imports
nothing) and fails on any forbidden import or clock read.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "appliance"
ARCHITECTURE = PKG.parent / "docs" / "architecture.md"
_ITEM = re.compile(r"`([^`]+)`(?:\s*\(([^)]*)\))?")


def documented_pure() -> list[str]:
    """The pure core as docs/architecture.md's layer table names it: paths under appliance/, "dir/" for a package.

    ``dir/`` (`a`, `b`) names the modules a.py and b.py of dir/; a parenthesis without module names
    ("bar its file reading and writing") is a remark.
    """
    rows = [line for line in ARCHITECTURE.read_text().splitlines() if line.startswith("| pure core |")]
    assert len(rows) == 1, "docs/architecture.md: no (or more than one) 'pure core' row in the layer table"
    cell = rows[0].split("|")[2]
    paths = []
    for name, inner in _ITEM.findall(cell):
        members = re.findall(r"`([^`]+)`", inner or "")
        if name.endswith("/") and members:
            paths += [f"{name}{m}.py" for m in members]
        else:
            paths.append(name)
    return paths


def pure_modules() -> list[Path]:
    files: list[Path] = []
    for rel in documented_pure():
        path = PKG / rel
        files += sorted(path.rglob("*.py")) if rel.endswith("/") else [path]
    return files


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


def test_every_module_the_doc_calls_pure_exists() -> None:
    """The table names real files (a renamed module must not drop out of this test unnoticed)."""
    listed = documented_pure()
    missing = [rel for rel in listed if not (PKG / rel).exists()]
    assert not missing, f"docs/architecture.md calls these pure, but there are no such files: {missing}"
    # the core named in DESIGN.md is in the table
    for core in ("config/", "ntp/", "nmea/", "sources/", "timebase.py", "leap.py", "clock/discipline.py"):
        assert core in listed, f"docs/architecture.md's pure core lacks {core}"


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


def test_ntp_does_not_import_sources() -> None:
    """The system state lives in appliance/state.py, below both: ``ntp/`` never imports ``sources/``."""
    hits = []
    for path in sorted((PKG / "ntp").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            hits += [f"{path.name}: {n}" for n in names if n.startswith("appliance.sources")]
    assert hits == []
