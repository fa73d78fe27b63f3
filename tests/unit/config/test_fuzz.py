"""Fuzzing the lexer and parser: whatever the text, the only exception is ConfigError.

Text, bytes on disk (NULs, bad UTF-8), huge and odd numbers, odd Unicode and
trees of ``includefile`` lines read through a fake file reader (loops, chains
deeper than the limit, missing and unreadable files) all end in a
:class:`~appliance.config.Config` or in a ConfigError that names a file and a
line that exists in it; never in another exception.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import event, given, settings
from hypothesis import strategies as st

from appliance.config import Config, ConfigError, load_config, parse_config
from appliance.config.parser import MAX_INCLUDE_DEPTH, directives

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
    # huge, signed, exotic and non-ASCII numbers
    "9" * 25,
    "-" + "9" * 25,
    "1e9999",
    "-1e-9999",
    "9" * 40 + "." + "9" * 40 + "e9999",
    "0x10",
    "1_000",
    "+0",
    "nan",
    "inf",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: int() would take it
    "\uff11\uff12",  # FULLWIDTH 1 2
    "\u00b2",  # SUPERSCRIPT TWO
    # odd Unicode: spaces Python's split() knows and ntpd does not, line separators, BOM, combining marks
    "\u00a0",
    "\u2028",
    "\u0085",
    "\ufeff",
    "se\u0301rver",
    "\u0130",
    "\U0001f600",
    "\x00",
]


def assert_names_a_line(e: ConfigError, texts: dict[str, str]) -> None:
    """Each error is "FILE:LINE: message", about a file that was read, at a line that file has; one a line."""
    for one in (e, *e.more):
        assert one.location is not None, "every error in text has a line"
        assert one.first() == f"{one.location.file}:{one.location.line}: {one.message}"
        assert "\n" not in one.message, "one line"
        assert one.location.file in texts, one.location.file
        text = texts[one.location.file]
        assert 1 <= one.location.line <= max(text.count("\n"), text.count("\r")) + 1  # CR alone ends lines too
        assert one is e or one.more == ()
    assert str(e).split("\n")[0] == e.first()


def check(text: str) -> None:
    half = text[: len(text) // 2]
    try:
        assert isinstance(parse_config(text, "fuzz.conf", include_loader=lambda path: half), Config)
    except ConfigError as e:
        # every include reads ``half``
        included = {
            m.location.file: half for m in (e, *e.more) if m.location is not None and m.location.file != "fuzz.conf"
        }
        assert_names_a_line(e, included | {"fuzz.conf": text})


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


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(WORDS) | st.sampled_from(" \n\t") | st.characters(), max_size=60).map("".join))
def test_odd_unicode_and_huge_numbers(text: str) -> None:
    check(text)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(WORDS) | st.text(max_size=6), min_size=1, max_size=6).map(" ".join),
        min_size=1,
        max_size=8,
    ).map("\n".join),
    st.binary(max_size=40),
    st.integers(0, 400),
)
def test_any_bytes_on_disk(text: str, noise: bytes, at: int) -> None:
    """A file of any octets (NULs, bad UTF-8 among config lines): load_config gives a Config or a ConfigError."""
    raw = text.encode("utf-8", "surrogatepass")
    raw = raw[:at] + noise + raw[at:]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "ntp.conf")
        path.write_bytes(raw)
        try:
            assert isinstance(load_config(path), Config)
        except ConfigError as e:
            if e.location is None:  # the file as a whole: only a reading or decoding problem has no line
                assert e.file == str(path) and e.message.startswith(("not UTF-8", "cannot read")), str(e)
                event("error without a line: the file as a whole")
            else:
                assert_names_a_line(e, {str(path): raw.decode("utf-8", "surrogateescape")})


# -- includefile trees through a fake file reader ----------------------------------------------

ROOT = "/etc/stratum1/ntp.conf"
NAMES = ["a.conf", "b.conf", "sub/c.conf", "../d.conf", "/etc/stratum1/a.conf", "./b.conf", "sub/../a.conf", "e"]
#: What a reader may say instead of text: no such file, a directory, no permission, bad UTF-8.
TROUBLE = [FileNotFoundError(2, "No such file or directory"), IsADirectoryError(21, "Is a directory"),
           PermissionError(13, "Permission denied"), b"server \xff\xfe\n"]  # fmt: skip


@st.composite
def include_tree(draw: st.DrawFn) -> dict[str, str | bytes | OSError]:
    """Files by normalised path: config lines and ``includefile`` lines pointing anywhere (loops too)."""
    files: dict[str, str | bytes | OSError] = {}
    include = st.sampled_from(NAMES).flatmap(lambda n: st.sampled_from([f"includefile {n}", f'includefile "{n}"']))
    good = st.sampled_from(["server 127.127.1.0", "fudge 127.127.1.0 stratum 10", "restrict default kod limited"])
    printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=8)
    words = st.lists(st.sampled_from(WORDS) | printable, min_size=1, max_size=6).map(" ".join)
    line = st.one_of(include, include, good, good, words)
    for name in [ROOT, *(os.path.normpath(os.path.join("/etc/stratum1", n)) for n in NAMES)]:
        if name != ROOT and draw(st.integers(0, 5)) == 0:
            files[name] = draw(st.sampled_from(TROUBLE))
        elif name == ROOT or draw(st.booleans()):
            files[name] = "\n".join(draw(st.lists(line, max_size=6)))
    return files


def chain(depth: int) -> dict[str, str | bytes | OSError]:
    """ntp.conf includes f1.conf, which includes f2.conf ... down to f{depth}.conf."""
    names = [ROOT, *(f"/etc/stratum1/f{i}.conf" for i in range(1, depth + 1))]
    files: dict[str, str | bytes | OSError] = {n: f"# {n}\nincludefile f{i + 1}.conf\n" for i, n in enumerate(names)}
    files[names[-1]] = "server 127.127.1.0\n"
    return files


def parse_tree(files: dict[str, str | bytes | OSError]) -> tuple[Config | ConfigError, dict[str, str]]:
    """Parse the tree through a fake reader; return the outcome and the texts it handed out."""
    read: dict[str, str] = {ROOT: str(files[ROOT])}

    def reader(path: str) -> str:
        content = files.get(os.path.normpath(path), FileNotFoundError(2, "No such file or directory"))
        if isinstance(content, OSError):
            raise content
        text = content.decode("utf-8") if isinstance(content, bytes) else content
        read[path] = text
        return text

    try:
        return parse_config(read[ROOT], ROOT, include_loader=reader), read
    except ConfigError as e:
        return e, read


@settings(max_examples=200, deadline=None)
@given(include_tree())
def test_include_trees_end_in_a_config_or_a_located_error(files: dict[str, str | bytes | OSError]) -> None:
    outcome, read = parse_tree(files)
    if isinstance(outcome, ConfigError):
        assert_names_a_line(outcome, read)
        event(" ".join(outcome.message.split()[:2]))
    else:
        assert isinstance(outcome, Config)
        event("a Config")


def test_include_chains_stop_at_the_depth_limit_with_file_and_line() -> None:
    assert isinstance(parse_tree(chain(MAX_INCLUDE_DEPTH))[0], Config)
    outcome, read = parse_tree(chain(MAX_INCLUDE_DEPTH + 1))
    assert isinstance(outcome, ConfigError)
    assert_names_a_line(outcome, read)
    assert "nest deeper" in outcome.message
    assert str(outcome.location) == f"/etc/stratum1/f{MAX_INCLUDE_DEPTH}.conf:2"
