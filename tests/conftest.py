"""Fixtures shared by every test directory."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import DATA, require


def _children_import_this_appliance() -> None:
    """Child Pythons the tests start (``python -m appliance.cli ...``) import the appliance this run imports.

    Under tox that is the installed package, with its compiled data plane; the source tree in the working
    directory has none. ``-m`` and ``-c`` put the working directory first on ``sys.path``, so the children
    would quietly run the tree's pure-Python copy. PYTHONSAFEPATH drops that entry and PYTHONPATH names the
    directory the package was imported from (the tree itself when the tests run from it).
    """
    import appliance

    home = str(Path(appliance.__file__).resolve().parent.parent)
    os.environ["PYTHONSAFEPATH"] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (home, os.environ.get("PYTHONPATH")) if p)


_children_import_this_appliance()


@pytest.fixture
def shared_data() -> Path:
    """tests/data: real receiver logs, seed configs, ntpd's mode 6 answers (tests/data/README.md)."""
    require(DATA.is_dir(), f"{DATA} is missing")
    return DATA


# -- figures for the end of the run (CI's log shows them: pytest -q -ra prints no passing test's output) --

#: The name of a figure among a test's ``user_properties``, which reach the report (from a pytest-xdist worker too).
FIGURE = "stratum1 figure"


class _Figures:
    """Collects the figures from the tests' reports and prints them at the end, under "stratum1 figures"."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":  # every phase's report carries all the test's properties: take them once
            self.lines += [value for name, value in report.user_properties if name == FIGURE]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.lines:
            terminalreporter.section("stratum1 figures")
            for line in self.lines:
                terminalreporter.write_line(line)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_Figures(), "stratum1-figures")


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record one line (a score, a count) that the terminal summary prints under "stratum1 figures"."""
    return lambda line: request.node.user_properties.append((FIGURE, line))
