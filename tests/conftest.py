"""Fixtures shared by every test directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import DATA, require


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (real receiver logs, seed configs); fails in CI when missing, skips elsewhere."""
    require(DATA.is_dir(), f"{DATA} (../shared/data) is missing")
    return DATA
