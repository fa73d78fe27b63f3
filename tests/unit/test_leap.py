"""The leap-second table: the real tzdata file, damaged copies, crafted leaps, expiry, what to serve.

``tests/data/leap/leap-seconds-2025b.list`` is tzdata 2025b's copy (Debian
bookworm), which expired on 2026-06-28. The hash function is first checked
against that file's published ``#h`` line; only then do tests use it to
sign tables with leap seconds of their own.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.config import parse_config
from appliance.leap import (
    DAY_NS,
    TZDATA_LEAPFILE,
    LeapEntry,
    LeapFileError,
    LeapTable,
    default_leapfile_paths,
    expiry_warning,
    find_leap_table,
    hash_fields,
    leap_to_arm,
    leap_to_serve,
    load_leapfile,
    parse_leapfile,
    render_leapfile,
)
from appliance.ntp.packet import LEAP_DELETE, LEAP_INSERT, LEAP_NONE, LEAP_UNSYNC
from appliance.timebase import NS_PER_S

DATA = Path(__file__).resolve().parents[1] / "data" / "leap"
BOOKWORM = DATA / "leap-seconds-2025b.list"
S = NS_PER_S


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """POSIX ns of a UTC civil time, computed by the standard library (independently of appliance.leap)."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * S


TODAY = utc(2026, 11, 23, 12)
BOOKWORM_EXPIRY = utc(2026, 6, 28)


def published_words(text: str) -> tuple[int, ...]:
    (line,) = [x for x in text.splitlines() if x.startswith("#h")]
    return tuple(int(w, 16) for w in line[2:].split())


def hashed_fields(text: str) -> list[str]:
    """The hash input as the IERS README describes it, extracted here without appliance.leap's parser."""
    fields: list[str] = []
    for tag in ("#$", "#@"):
        fields += [x[2:].strip() for x in text.splitlines() if x.startswith(tag)]
    fields += [f for x in text.splitlines() if x[:1].isdigit() for f in x.split("#")[0].split()[:2]]
    return fields


# --- the real file -------------------------------------------------------------------------------


def test_hash_function_reproduces_the_published_hash_of_the_real_file() -> None:
    text = BOOKWORM.read_text()
    fields = hashed_fields(text)
    assert len(fields) == 2 + 2 * 28
    assert hash_fields(fields) == published_words(text)
    fields[-1] = str(int(fields[-1]) + 1)
    assert hash_fields(fields) != published_words(text)


def test_bookworm_file_parses_with_its_history() -> None:
    table = load_leapfile(str(BOOKWORM))
    assert table.path == str(BOOKWORM)
    assert table.expires_ns == BOOKWORM_EXPIRY
    assert table.updated_ns == utc(2025, 7, 7)  # '#$ 3960835200'
    assert table.entries[0] == LeapEntry(utc(1972, 1, 1), 10, 86)
    assert len(table.leaps) == 27
    assert all(leap.indicator == LEAP_INSERT for leap in table.leaps)
    assert table.leaps[-1].at_ns == utc(2017, 1, 1)
    assert table.tai_offset(utc(2016, 12, 31, 23, 59, 59)) == 36
    assert table.tai_offset(utc(2017, 1, 1)) == 37
    assert table.tai_offset(utc(1971, 6, 1)) == 0
    assert table.tai_offset(TODAY) == 37
    assert table.next_leap(TODAY) is None
    assert table.next_leap(utc(2016, 6, 1)) == table.leaps[-1]


def test_bookworm_file_served_the_2016_leap_on_its_last_day() -> None:
    table = load_leapfile(str(BOOKWORM))
    assert table.indicator(utc(2016, 12, 30, 23, 59, 59)) == LEAP_NONE
    assert table.indicator(utc(2016, 12, 31)) == LEAP_INSERT
    assert table.indicator(utc(2017, 1, 1) - 1) == LEAP_INSERT
    assert table.indicator(utc(2017, 1, 1)) == LEAP_NONE
    assert table.indicator(TODAY) == LEAP_NONE


@pytest.mark.skipif(not Path(TZDATA_LEAPFILE).exists(), reason="tzdata's leap-seconds.list is not installed")
def test_this_machines_tzdata_file_parses_and_its_hash_checks() -> None:
    table = load_leapfile(TZDATA_LEAPFILE)
    text = Path(TZDATA_LEAPFILE).read_text()
    assert hash_fields(hashed_fields(text)) == published_words(text)
    assert table.tai_offset(TODAY) >= 37
    assert default_leapfile_paths() == (TZDATA_LEAPFILE,)
    assert find_leap_table(None).table == table


# --- damaged copies ------------------------------------------------------------------------------


def line_of(lines: list[str], prefix: str) -> int:
    """1-based number of the first line starting with ``prefix``."""
    return next(i for i, x in enumerate(lines, start=1) if x.startswith(prefix))


def damaged(how: str) -> tuple[str, int, str]:
    """The bookworm file damaged ``how``: (text, line the error must name, words the message must hold)."""
    lines = BOOKWORM.read_text().splitlines()
    hash_line = line_of(lines, "#h")
    if how == "expiry digit":
        i = line_of(lines, "#@") - 1
        lines[i] = lines[i].replace("3991593600", "3991593700")
        return "\n".join(lines), hash_line, "hash does not match"
    if how == "update digit":
        i = line_of(lines, "#$") - 1
        lines[i] = lines[i].replace("3960835200", "3960835201")
        return "\n".join(lines), hash_line, "hash does not match"
    if how == "tai digit":
        i = line_of(lines, "3692217600") - 1
        lines[i] = lines[i].replace("37", "38", 1)
        return "\n".join(lines), i + 1, "exactly one"
    if how == "date digit":
        i = line_of(lines, "3692217600") - 1
        lines[i] = lines[i].replace("3692217600", "3692217601")
        return "\n".join(lines), i + 1, "midnight"
    if how == "hash word":
        lines[hash_line - 1] = lines[hash_line - 1].replace("49db2447", "49db2448")
        return "\n".join(lines), hash_line, "hash does not match"
    if how == "hash removed":
        del lines[hash_line - 1]
        return "\n".join(lines), len(lines), "no '#h'"
    if how == "lines swapped":
        i = line_of(lines, "3644697600") - 1
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
        return "\n".join(lines), i + 1, "TAI-UTC goes from 35"
    if how == "date backwards":
        i = line_of(lines, "3692217600") - 1
        lines[i] = lines[i].replace("3692217600", "3644697600")
        return "\n".join(lines), i + 1, "is not after line"
    if how == "garbage line":
        i = line_of(lines, "3550089600") - 1
        lines.insert(i, "3550000000 thirty-four")
        return "\n".join(lines), i + 1, "not a leap-second line"
    if how == "expiry removed":
        del lines[line_of(lines, "#@") - 1]
        return "\n".join(lines), len(lines), "no '#@'"
    if how == "second update line":
        i = line_of(lines, "#$")
        lines.insert(i, "#$\t3960835200")
        return "\n".join(lines), i + 1, f"first is line {i}"
    if how == "short hash":
        lines[hash_line - 1] = "#h\t49db2447 571e5e1b"
        return "\n".join(lines), hash_line, "five hex words"
    raise AssertionError(how)


DAMAGE = [
    "expiry digit",
    "update digit",
    "tai digit",
    "date digit",
    "hash word",
    "hash removed",
    "lines swapped",
    "date backwards",
    "garbage line",
    "expiry removed",
    "second update line",
    "short hash",
]


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_copy_fails_naming_file_and_line(how: str, tmp_path: Path) -> None:
    text, line, words = damaged(how)
    path = tmp_path / "leap-seconds.list"
    path.write_text(text)
    with pytest.raises(LeapFileError) as caught:
        load_leapfile(str(path))
    assert (caught.value.path, caught.value.line) == (str(path), line)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert words in caught.value.message


def test_comments_are_not_hashed() -> None:
    text = BOOKWORM.read_text().replace("# 1 Jan 2017", "# New Year 2017, one second late")
    assert "New Year" in text
    assert parse_leapfile(text, "edited").tai_offset(TODAY) == 37


def test_nist_style_hash_words_without_leading_zeros_are_accepted() -> None:
    text = render_leapfile(utc(2025, 1, 1), utc(2026, 1, 1), [(utc(1972, 1, 1), 10)])
    words = published_words(text)
    short = "#h\t" + " ".join(f"{w:x}" for w in words)
    text = re.sub(r"^#h.*$", short, text, flags=re.M)
    assert parse_leapfile(text, "nist").tai_offset(utc(2025, 6, 1)) == 10


def test_unreadable_and_non_utf8_files_are_clear_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.list"
    with pytest.raises(LeapFileError, match=rf"^{re.escape(str(missing))}: cannot read"):
        load_leapfile(str(missing))
    binary = tmp_path / "binary.list"
    binary.write_bytes(b"#$ 3960835200\n#@ 3991593600\n\xff\xfe\n")
    with pytest.raises(LeapFileError) as caught:
        load_leapfile(str(binary))
    assert caught.value.line == 3
    assert "UTF-8" in caught.value.message


def test_missing_configured_file_means_no_table_and_says_so(tmp_path: Path) -> None:
    missing = str(tmp_path / "leap.list")
    found = find_leap_table(missing)
    assert found.table is None
    assert missing in found.messages[0]
    assert "without a leap-second table" in found.messages[-1]


def test_configured_leapfile_is_the_one_loaded() -> None:
    config = parse_config(f"leapfile {BOOKWORM}\n", "ntp.conf")
    assert config.leapfile == str(BOOKWORM)
    found = find_leap_table(config.leapfile)
    assert found.table is not None and found.table.path == str(BOOKWORM)
    assert found.messages == ()


# --- crafted tables: future leaps ----------------------------------------------------------------


def bookworm_entries() -> list[tuple[int, int]]:
    return [(e.at_ns, e.tai_offset_s) for e in load_leapfile(str(BOOKWORM)).entries]


def crafted(delta: int, at: int = utc(2027, 1, 1), expires: int = utc(2027, 6, 28)) -> LeapTable:
    text = render_leapfile(expires - 180 * DAY_NS, expires, [*bookworm_entries(), (at, 37 + delta)])
    return parse_leapfile(text, "crafted.list")


def test_rendered_bookworm_table_matches_the_published_hash() -> None:
    real = load_leapfile(str(BOOKWORM))
    text = render_leapfile(real.updated_ns, real.expires_ns, bookworm_entries())
    assert published_words(text) == published_words(BOOKWORM.read_text())


def test_future_insert_is_announced_for_exactly_the_last_day() -> None:
    leap_at = utc(2027, 1, 1)
    table = crafted(+1, leap_at)
    assert table.indicator(leap_at - DAY_NS - 1) == LEAP_NONE
    assert table.indicator(utc(2026, 12, 31)) == LEAP_INSERT
    assert table.indicator(leap_at - 1) == LEAP_INSERT
    assert table.indicator(leap_at) == LEAP_NONE
    assert table.indicator(leap_at + DAY_NS) == LEAP_NONE
    leap = table.next_leap(TODAY)
    assert leap is not None and (leap.at_ns, leap.delta_s, leap.tai_offset_s) == (leap_at, 1, 38)
    assert table.tai_offset(leap_at - 1) == 37
    assert table.tai_offset(leap_at) == 38
    assert table.next_leap(leap_at) is None


def test_future_deletion_is_announced_as_leap_delete() -> None:
    leap_at = utc(2027, 7, 1)
    table = crafted(-1, leap_at)
    assert table.indicator(utc(2027, 6, 29, 23, 59, 59)) == LEAP_NONE
    assert table.indicator(utc(2027, 6, 30, 12)) == LEAP_DELETE
    assert table.indicator(leap_at) == LEAP_NONE
    assert table.tai_offset(leap_at) == 36


# --- expiry --------------------------------------------------------------------------------------


def test_bookworm_file_expired_on_2026_06_28() -> None:
    table = load_leapfile(str(BOOKWORM))
    assert not table.expired(BOOKWORM_EXPIRY - 1)
    assert table.expired(BOOKWORM_EXPIRY)
    assert table.expired(TODAY)
    assert expiry_warning(table, BOOKWORM_EXPIRY - 1) is None
    warning = expiry_warning(table, TODAY)
    assert warning is not None
    assert warning.startswith("WARNING:")
    assert "expired on 2026-06-28" in warning
    assert str(BOOKWORM) in warning
    assert f"({(TODAY - BOOKWORM_EXPIRY) // DAY_NS} days ago)" in warning


def test_expired_table_still_announces_what_it_knows() -> None:
    leap_at = utc(2027, 1, 1)
    table = crafted(+1, leap_at, expires=utc(2026, 6, 28))
    assert table.expired(utc(2026, 12, 31, 12))
    assert table.indicator(utc(2026, 12, 31, 12)) == LEAP_INSERT


# --- what to serve -------------------------------------------------------------------------------


def test_leap_to_serve_prefers_a_current_table_and_keeps_unsynchronised() -> None:
    current = crafted(+1)
    day = utc(2026, 12, 31, 12)
    assert leap_to_serve(current, day, LEAP_NONE) == LEAP_INSERT
    assert leap_to_serve(current, day, LEAP_UNSYNC) == LEAP_UNSYNC
    assert leap_to_serve(current, TODAY, LEAP_INSERT) == LEAP_NONE  # a current table knows better
    assert leap_to_serve(None, TODAY, LEAP_DELETE) == LEAP_DELETE


def test_leap_to_serve_falls_back_to_the_source_when_the_table_has_expired() -> None:
    expired = load_leapfile(str(BOOKWORM))
    assert leap_to_serve(expired, TODAY, LEAP_INSERT) == LEAP_INSERT
    assert leap_to_serve(expired, TODAY, LEAP_NONE) == LEAP_NONE


@pytest.mark.parametrize(
    ("served", "armed"),
    [(LEAP_NONE, LEAP_NONE), (LEAP_INSERT, LEAP_INSERT), (LEAP_DELETE, LEAP_DELETE), (LEAP_UNSYNC, LEAP_NONE)],
)
def test_unsynchronised_arms_no_leap(served: int, armed: int) -> None:
    assert leap_to_arm(served) == armed


def test_table_values_check_their_order() -> None:
    with pytest.raises(ValueError, match="order"):
        LeapTable("x", 0, S, (LeapEntry(2 * DAY_NS, 11), LeapEntry(DAY_NS, 10)))
    with pytest.raises(ValueError, match="at least one"):
        LeapTable("x", 0, S, ())
