"""Fixtures shared by every test directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import DATA, require


@pytest.fixture
def shared_data() -> Path:
    """tests/data: real receiver logs, seed configs, ntpd's mode 6 answers (tests/data/README.md)."""
    require(DATA.is_dir(), f"{DATA} is missing")
    return DATA
