"""Fixtures for tests against real NTP programs and in private network namespaces."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import nsutil
import pytest
from harness import CHRONYD, INTEROP_BIN
from support import require


@pytest.fixture
def chronyd() -> Path:
    require(os.access(CHRONYD, os.X_OK), f"chronyd not unpacked at {CHRONYD} (run .ci/install-interop as root)")
    require(os.geteuid() == 0, "chronyd -Q here runs as root (-u root); run the tests as root")
    return CHRONYD


def interop_tools(*names: str) -> dict[str, str]:
    """The private copies of ``names`` (wrappers in $STRATUM1_INTEROP_ROOT/bin), never the host's programs."""
    tools = {}
    for name in names:
        path = INTEROP_BIN / name
        require(os.access(path, os.X_OK), f"{name} not unpacked at {path} (run .ci/install-interop as root)")
        tools[name] = str(path)
    return tools


@pytest.fixture
def ntpsec_tools() -> dict[str, str]:
    """NTPsec's ntpdig, ntpdate and ntpq, and Debian's ntpstat."""
    return interop_tools("ntpdig", "ntpdate", "ntpq", "ntpstat")


@pytest.fixture
def chrony_tools() -> dict[str, str]:
    """chronyd and chronyc."""
    return interop_tools("chronyd", "chronyc")


@pytest.fixture
def gpsd_tools() -> dict[str, str]:
    """gpsd and its clients gpspipe, ntpshmmon and gpsfake."""
    return interop_tools("gpsd", "gpspipe", "ntpshmmon", "gpsfake")


@pytest.fixture
def netns() -> Iterator[Callable[[str], nsutil.NetNs]]:
    require(nsutil.available(), "network namespaces need root and iproute2")
    made: list[nsutil.NetNs] = []

    def make(tag: str) -> nsutil.NetNs:
        ns = nsutil.NetNs(tag)
        made.append(ns)
        return ns

    yield make
    for ns in made:
        ns.delete()
