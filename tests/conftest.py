"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import DATA, require


@pytest.fixture
def shared_data() -> Path:
    """tests/data: real receiver logs, seed configs, ntpd's mode 6 answers (tests/data/README.md)."""
    require(DATA.is_dir(), f"{DATA} is missing")
    return DATA


# -- figures for the end of the run (CI's log shows them: pytest -q -ra prints no passing test's output) --

FIGURES = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[FIGURES] = []


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record one line (a score, a count) that the terminal summary prints under "stratum1 figures"."""
    return request.config.stash[FIGURES].append


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(FIGURES, [])
    if lines:
        terminalreporter.section("stratum1 figures")
        for line in lines:
            terminalreporter.write_line(line)
