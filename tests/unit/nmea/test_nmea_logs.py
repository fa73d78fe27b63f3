"""Real receiver logs (gpsd's regression suite) through the decoder, checked against gpsd.

For every ``*.log`` in ``tests/data/nmea`` the set of distinct fix times we
report (valid, 2D/3D, dated) must equal the distinct times of gpsd's TPV
records with mode >= 2 in the ``.chk`` file, except:

(a) the log's last epoch, which gpsd often does not report because it stops
    at end of file: we may have exactly that one time more;
(b) the times pinned in :data:`PINNED`, where gpsd is wrong and the test
    holds the right answer instead (each with the reason).

The build date handed to the rollover policy is the log's own ``# Date:``
header: it stands for "the firmware was built no later than the capture".
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import log_build_date_ns, log_payload, nmea_logs

from appliance.nmea import Fix, NmeaCounters, NmeaStream, RolloverPolicy
from appliance.nmea.rollover import WEEK_ROLLOVER_NS
from appliance.timebase import NS_PER_S

# gpsd reports a TPV carrying a second's time only when it sees what it takes
# for the end of a cycle; after the RMC of the first valid epoch it reports
# nothing, and its next report already carries the next second's GGA time.
# The receiver said status A (and GGA quality 1) with a full date for that
# second, so it is a fix time.
_FIRST_VALID = "gpsd never reports the first valid epoch (see comment above PINNED)"


@dataclass(frozen=True)
class Pin:
    """Where gpsd's answer is wrong: times it lacks (``add``) and times it should not have (``drop``)."""

    why: str
    add: frozenset[str] = frozenset()
    drop: frozenset[str] = frozenset()


PINNED: dict[str, Pin] = {
    # Telit HE910 after the 2019-04-06 week rollover: RMC date 220899. gpsd
    # passes 1999-08-22 through; the true date is 1024 weeks later.
    "april6_2019.log": Pin(
        "GPS week rollover: 1999-08-22 + 1024 weeks",
        add=frozenset({"2019-04-07T00:02:31.420Z"}),
        drop=frozenset({"1999-08-22T00:02:31.420Z"}),
    ),
    "beidou-bd.log": Pin(_FIRST_VALID, add=frozenset({"2015-02-25T07:41:55.799Z"})),
    "mtk-3301.log": Pin(_FIRST_VALID, add=frozenset({"2008-08-23T08:14:36.000Z"})),
    "tr737A+.log": Pin(_FIRST_VALID, add=frozenset({"2011-11-11T07:17:36.000Z"})),
    # The GPS-320FW sends GLL every other second; gpsd learned GLL as the end
    # of its cycle, so the 16:45:19.99 epoch (RMC A, GGA 1, GSA 3D, no GLL) was
    # never reported before the next RMC overwrote its time.
    "gp-320fw-2019-03-28.log": Pin(
        "gpsd skips an epoch that lacks the sentence it learned as cycle end",
        add=frozenset({"2019-03-28T16:45:19.990Z"}),
    ),
}


_logs, _payload, _build_date_ns = nmea_logs, log_payload, log_build_date_ns


def _iso_ms(t_ns: int) -> str:
    """A POSIX ns time as gpsd writes TPV times (ms, truncated)."""
    ms = t_ns // 1_000_000
    stamp = dt.datetime.fromtimestamp(ms // 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ms % 1000:03d}Z"


def _gpsd_fix_times(log: Path) -> set[str]:
    times = set()
    for line in Path(f"{log}.chk").read_text(encoding="latin-1").splitlines():
        if line.startswith("{") and '"class":"TPV"' in line:
            tpv = json.loads(line)
            if tpv.get("mode", 0) >= 2 and "time" in tpv:
                times.add(tpv["time"])
    return times


def _chunks(data: bytes, rng: random.Random, biggest: int) -> Iterator[tuple[int, bytes]]:
    """Cut ``data`` into random pieces; yield (offset, piece)."""
    pos = 0
    while pos < len(data):
        n = rng.randint(1, biggest)
        yield pos, data[pos : pos + n]
        pos += n


def _decode(log: Path, pieces: Iterator[tuple[int, bytes]] | None = None) -> tuple[list[Fix], NmeaCounters]:
    stream = NmeaStream(RolloverPolicy(_build_date_ns(log)))
    fixes: list[Fix] = []
    for now_ns, piece in pieces if pieces is not None else [(0, _payload(log))]:
        fixes += stream.feed(piece, now_ns)
    fixes += stream.flush()
    return fixes, stream.counters


@functools.cache
def _decode_whole(log: Path) -> tuple[list[Fix], NmeaCounters]:
    """The log fed in one piece (cached: several tests look at the same result)."""
    return _decode(log)


def _fix_times(fixes: list[Fix]) -> set[str]:
    return {_iso_ms(f.utc_ns) for f in fixes if f.has_time and f.utc_ns is not None}


def _mismatch(log: Path, fixes: list[Fix]) -> str | None:
    """Say how our fix times differ from gpsd's beyond the allowed exceptions, or None."""
    pin = PINNED.get(log.name, Pin(""))
    expected = (_gpsd_fix_times(log) - pin.drop) | pin.add
    ours = _fix_times(fixes)
    extra, missing = ours - expected, expected - ours
    final = fixes[-1] if fixes else None
    if final is not None and final.has_time and final.utc_ns is not None:
        extra.discard(_iso_ms(final.utc_ns))  # (a): gpsd stopped before reporting it
    if extra or missing:
        return f"{log.name}: extra {sorted(extra)}, missing {sorted(missing)}"
    return None


def test_fix_times_match_gpsd(shared_data: Path) -> None:
    problems = [p for log in _logs(shared_data) if (p := _mismatch(log, _decode_whole(log)[0]))]
    assert not problems, "\n".join(problems)


def test_pins_name_existing_logs(shared_data: Path) -> None:
    names = {log.name for log in _logs(shared_data)}
    assert set(PINNED) <= names


def test_random_chunks_give_the_same_fixes(shared_data: Path) -> None:
    rng = random.Random(20190406)
    logs = _logs(shared_data)
    smallest = set(sorted(logs, key=lambda p: p.stat().st_size)[:8])
    for log in logs:
        whole, whole_counts = _decode_whole(log)
        data = _payload(log)
        for biggest in (3, 90, 700) if log in smallest else (90, 700):
            pieces, counts = _decode(log, ((0, p) for _, p in _chunks(data, rng, biggest)))
            assert pieces == whole, f"{log.name}: chunks of up to {biggest} bytes"
            assert counts == whole_counts, log.name


def test_arrival_is_the_chunk_time_of_the_first_byte(shared_data: Path) -> None:
    """Fed byte by byte with now_ns = offset, arrival_ns is the offset of the epoch's first ``$``."""
    for log in _logs(shared_data)[:6]:
        data = _payload(log)
        exact, _ = _decode(log, ((i, data[i : i + 1]) for i in range(len(data))))
        for fix in exact:
            assert data[fix.arrival_ns : fix.arrival_ns + 1] in (b"$", b"!"), log.name
        rng = random.Random(7)
        coarse, _ = _decode(log, _chunks(data, rng, 50))
        assert len(coarse) == len(exact)
        for a, b in zip(coarse, exact, strict=True):
            assert b.arrival_ns - 50 < a.arrival_ns <= b.arrival_ns
            assert a.utc_ns == b.utc_ns


def test_counters_add_up(shared_data: Path) -> None:
    for log in _logs(shared_data):
        fixes, c = _decode_whole(log)
        assert c.bytes_in == len(_payload(log))
        assert c.bytes_in == c.garbage_bytes + c.eol_bytes + c.line_bytes, log.name
        outcomes = (c.decoded + c.ignored + c.proprietary + c.unknown_type + c.bad_checksum + c.no_checksum) + (
            c.truncated + c.too_long + c.decode_error
        )
        assert c.lines == outcomes, log.name
        assert c.decoded == c.placed + c.unplaced + c.unselected, log.name
        assert c.epochs == len(fixes), log.name


def test_no_fix_predates_the_build_date(shared_data: Path) -> None:
    """Whatever a receiver says, valid or not, we never report a date before the build date - margin."""
    for log in _logs(shared_data):
        policy = RolloverPolicy(_build_date_ns(log))
        for fix in _decode_whole(log)[0]:
            assert fix.utc_ns is None or fix.utc_ns >= policy.earliest_ns, log.name


def test_manifest_agrees_with_chk(shared_data: Path) -> None:
    """Cross-check: manifest.tsv's tpv_times_fix is the count of gpsd's distinct fix times."""
    with (shared_data / "nmea" / "manifest.tsv").open(newline="") as f:
        rows = {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}
    for log in _logs(shared_data):
        row = rows.get(log.name)
        if row is None:
            continue  # tr737A+.log has no manifest row
        gpsd = _gpsd_fix_times(log)
        assert len(gpsd) == int(row["tpv_times_fix(mode>=2,distinct)"]), log.name
        pin = PINNED.get(log.name, Pin(""))
        expected = (gpsd - pin.drop) | pin.add
        fixes = _decode_whole(log)[0]
        final = fixes[-1] if fixes else None
        final_extra = final is not None and final.has_time and _iso_ms(final.utc_ns or 0) not in expected
        assert len(_fix_times(fixes)) == len(expected) + final_extra, log.name


# --- the rollover logs, pinned to the right answer --------------------------------------------


def test_april6_2019_is_served_as_2019(shared_data: Path) -> None:
    log = shared_data / "nmea" / "april6_2019.log"
    fixes, counts = _decode(log)
    dated = [f for f in fixes if f.has_time]
    assert [(_iso_ms(f.utc_ns or 0), f.rollover_steps) for f in dated] == [("2019-04-07T00:02:31.420Z", 1)]
    assert counts.rollover_repaired == 1
    # the first valid RMC has the malformed date '2208-1': valid, but no time
    assert any(f.valid and f.utc_ns is None for f in fixes)


def test_april6_2019_refused(shared_data: Path) -> None:
    log = shared_data / "nmea" / "april6_2019.log"
    stream = NmeaStream(RolloverPolicy(_build_date_ns(log), refuse=True))
    fixes = stream.feed(_payload(log), 0) + stream.flush()
    assert not any(f.has_time for f in fixes)
    assert stream.counters.rollover_refused == 1


def test_coldboot_never_says_1999(shared_data: Path) -> None:
    """After the reboot the GPS-320FW sends void RMC/ZDA dated 1999-08-22: repaired (and still void)."""
    log = shared_data / "nmea" / "gp-320fw-2019-04-07-coldboot.log"
    fixes, counts = _decode(log)
    assert _fix_times(fixes) == {"2019-04-07T00:03:45.030Z"}  # the one valid epoch, before the reboot
    late = [f for f in fixes if f.time_of_day_ns >= 4 * 60 * NS_PER_S and f.time_of_day_ns < 3600 * NS_PER_S]
    repaired = [f for f in late if f.rollover_steps == 1]
    assert repaired and not any(f.valid for f in late)
    assert {_iso_ms(f.utc_ns or 0)[:10] for f in repaired} == {"2019-04-07"}
    assert counts.truncated and counts.bad_checksum and counts.garbage_bytes


def test_hp58534a_with_optional_checksums(shared_data: Path) -> None:
    """No checksums at all: nothing by default (as gpsd), two fixes when configured to accept that."""
    log = shared_data / "nmea" / "hp58534a.log"
    assert not _fix_times(_decode(log)[0])
    stream = NmeaStream(RolloverPolicy(_build_date_ns(log)), checksum_optional=True)
    fixes = stream.feed(_payload(log), 0) + stream.flush()
    assert _fix_times(fixes) == {"2010-10-25T22:24:49.000Z", "2010-10-25T22:24:50.000Z"}
    # the second epoch is GGA-only: its date is carried from the first epoch's ZDA
    assert [f.date_source.value for f in fixes] == ["ZDA", "carried"]


def test_week_rollover_constant() -> None:
    assert WEEK_ROLLOVER_NS == 619_315_200 * NS_PER_S


@pytest.mark.parametrize("name", ["mt3339.log", "ublox-8.log"])
def test_target_receivers_report_early(shared_data: Path, name: str) -> None:
    """The HATs we ship for end every epoch with ZDA: fixes come out with it, not a second later."""
    log = shared_data / "nmea" / name
    stream = NmeaStream(RolloverPolicy(_build_date_ns(log)))
    early = 0
    for line in _payload(log).splitlines(keepends=True):
        for fix in stream.feed(line, 0):
            early += line.startswith((b"$GPZDA", b"$GNZDA")) and fix.has_time
    assert early >= 25
