"""Fixtures for tests against real NTP programs and in private network namespaces."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import nsutil
import pytest
from harness import CHRONYD
from support import require


@pytest.fixture
def chronyd() -> Path:
    require(CHRONYD.exists(), f"chronyd not unpacked at {CHRONYD} (run .ci/install-interop as root)")
    require(os.geteuid() == 0, "chronyd -Q here runs as root (-u root); run the tests as root")
    return CHRONYD


@pytest.fixture
def ntpsec_tools() -> dict[str, str]:
    tools = {}
    for name in ("ntpdig", "ntpdate", "ntpq", "ntpstat"):
        path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
        require(path is not None, f"{name} is not installed (run .ci/install-interop as root)")
        tools[name] = str(path)
    return tools


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
