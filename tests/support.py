"""Shared test helpers: where ../shared/data is, and whether missing tools skip or fail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("STRATUM1_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, why: str) -> None:
    """Skip the test when ``condition`` is false, or fail it under CI, where every tool must be present."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {why}")
    pytest.skip(why)
