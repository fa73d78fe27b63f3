"""A config that tells the truth: every field of the config model has a reader outside config/, or a warning.

A field that nothing outside ``appliance/config/`` reads is a promise the parser makes and the appliance
breaks: it must be in :data:`WARNED_IGNORED`, with a line that sets it, and the parser must warn (file:line)
when that line is given.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from appliance.config import model, parse_config

ROOT = Path(__file__).resolve().parents[3] / "appliance"

#: Fields nothing acts on: a config line that sets each, and a word of the warning it must give.
WARNED_IGNORED = {
    ("Discard", "monitor"): ("discard monitor 3000\n", "monitor"),
    ("ServerLine", "true"): ("server 192.0.2.1 true\n", "true"),
    ("Config", "logfile"): ("logfile /var/log/ntp.log\n", "logfile"),
}
#: Fields read through a method or property of the model, by that name.
READ_THROUGH = {("Config", "fudges"): "fudge_for", ("LocalClockOptions", "public"): "public_unsync"}
#: Bookkeeping fields: where a value came from, the warnings themselves, the file's name.
BOOKKEEPING = {"location", "warnings", "path", "options"}


def _model_fields() -> list[tuple[str, str]]:
    out = []
    for name in dir(model):
        cls = getattr(model, name)
        if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == model.__name__:
            if cls.__name__ in ("ConfigWarning", "Location"):
                continue
            out += [(cls.__name__, f.name) for f in dataclasses.fields(cls)]
    return sorted(out)


def _readers_outside_config() -> str:
    return "\n".join(p.read_text() for p in ROOT.rglob("*.py") if "config" not in p.relative_to(ROOT).parts[:1])


SOURCE = _readers_outside_config()


@pytest.mark.parametrize(("cls", "field"), _model_fields())
def test_every_field_has_a_reader_or_a_warning(cls: str, field: str) -> None:
    if field in BOOKKEEPING:
        return
    name = READ_THROUGH.get((cls, field), field)
    read = re.search(rf"\.{name}\b", SOURCE) is not None
    if (cls, field) in WARNED_IGNORED:
        line, word = WARNED_IGNORED[(cls, field)]
        warnings = [str(w) for w in parse_config(line, "t.conf").warnings]
        assert any(w.startswith("t.conf:1: warning:") and word in w for w in warnings), warnings
        return
    assert read, f"{cls}.{field}: nothing outside appliance/config/ reads it and no warning says it is ignored"
