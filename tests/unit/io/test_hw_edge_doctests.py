"""The examples in the docstrings of the hardware-edge modules run (those that need hardware are skipped).

Every module listed must have examples: one that has none (or loses them) fails, rather than passing
with nothing run.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "appliance.refclock.pps",
    "appliance.refclock.profiles",
    "appliance.refclock.driver",
    "appliance.refclock.source",
    "appliance.refclock.shm",
    "appliance.refclock.gpsd_json",
    "appliance.io.pps",
    "appliance.io.gpio",
    "appliance.io.serial",
    "appliance.fakes.pps",
    "appliance.fakes.gps",
    "appliance.fakes.pacing",
    "appliance.fakes.shm",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no docstring examples to run"
    assert result.failed == 0
