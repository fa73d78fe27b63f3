"""docs/configuration.md stays true: the default config as shipped, every directive and flag described."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import default_config_text
from appliance.config.model import REFCLOCK_TYPES, RESTRICT_FLAGS
from appliance.config.parser import directives

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def test_the_default_config_is_quoted_in_full(doc: str) -> None:
    assert f"```\n{default_config_text()}```" in doc


def test_every_directive_is_described(doc: str) -> None:
    d = directives()
    for name in sorted(d.parsed | d.ignored | d.refused):
        assert f"`{name}" in doc, name


def test_every_restrict_flag_is_in_the_table(doc: str) -> None:
    for flag in sorted(RESTRICT_FLAGS):
        assert f"| `{flag}` |" in doc, flag


def test_every_refclock_driver_is_in_the_table(doc: str) -> None:
    for number, name in REFCLOCK_TYPES.items():
        assert f"| {number} | `{name}` |" in doc, name


def test_names_the_config_path_and_the_check_command(doc: str) -> None:
    assert "/etc/stratum1/ntp.conf" in doc and "stratum1 check-config FILE" in doc
