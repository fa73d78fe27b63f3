"""Fuzzing the lexer and parser: whatever the text, the only exception is ConfigError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.config import ConfigError, parse_config
from appliance.config.parser import directives

KNOWN = directives()
DIRECTIVES = sorted(KNOWN.parsed | KNOWN.ignored | KNOWN.refused)
WORDS = [
    *DIRECTIVES,
    "default",
    "source",
    "mask",
    "-4",
    "-6",
    "iburst",
    "prefer",
    "minpoll",
    "maxpoll",
    "mode",
    "unit",
    "time1",
    "time2",
    "stratum",
    "refid",
    "flag1",
    "flag4",
    "nomodify",
    "noquery",
    "kod",
    "limited",
    "ippeerlimit",
    "serverresponse",
    "fuzz",
    "average",
    "burst",
    "listen",
    "ignore",
    "all",
    "nmea",
    "local",
    "pps",
    "127.127.1.0",
    "127.127.20.0",
    "127.127.29.9",
    "192.168.0.0",
    "255.255.255.0",
    "192.168.0.0/24",
    "2001:db8::/32",
    "::1",
    "0",
    "1",
    "17",
    "-1",
    "0.0042",
    "1e999",
    '"x y"',
    "#",
    '"',
    "a.example",
]


def check(text: str) -> None:
    try:
        parse_config(text, "fuzz.conf", include_loader=lambda path: text[: len(text) // 2])
    except ConfigError as e:
        assert e.location is not None, "every error in text has a line"
        assert str(e) == f"{e.location.file}:{e.location.line}: {e.message}"


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=300))
def test_random_printable_text_raises_only_config_error(text: str) -> None:
    check(text)


line_of_words = st.lists(st.sampled_from(WORDS) | st.text(max_size=8), min_size=1, max_size=8).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(st.lists(line_of_words, max_size=12).map("\n".join))
def test_random_lines_of_config_words_raise_only_config_error(text: str) -> None:
    check(text)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(DIRECTIVES), st.lists(st.sampled_from(WORDS), max_size=10))
def test_every_directive_with_random_arguments(directive: str, args: list[str]) -> None:
    check(" ".join([directive, *args]) + "\n")
