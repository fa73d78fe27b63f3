"""Long fuzzing of the NMEA stream with atheris (coverage-guided), outside CI.

    pip install atheris
    PYTHONPATH=. python tests/fuzz/atheris_nmea.py --make-corpus /tmp/nmea-corpus
    PYTHONPATH=. python tests/fuzz/atheris_nmea.py -max_total_time=300 -rss_limit_mb=2048 /tmp/nmea-corpus

``--make-corpus DIR`` writes seeds cut from the real receiver logs (the
directory ``tests/support.py`` finds them in). Each input's first octet sets
the options (checksums optional or not, the rollover policy's build year),
the next four are the sizes of the chunks the rest is fed in, cyclically.
The stream must not raise, must give the same fixes and counts as when fed
the whole input at once, and its counts must add up (every byte and line in
one bucket, :mod:`appliance.nmea.counters`). CI runs the same properties with
hypothesis (tests/unit/nmea/test_nmea_fuzz.py); this finds deeper paths given
time.
"""

from __future__ import annotations

import datetime as dt
import itertools
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from appliance.nmea import Fix, NmeaCounters, NmeaStream, RolloverPolicy

OPTIONS = 5
POLICIES = [RolloverPolicy(int(dt.datetime(y, 1, 1, tzinfo=dt.UTC).timestamp()) * 10**9) for y in (2006, 2015, 2024)]


def decode(data: bytes, sizes: list[int], optional: bool, policy: RolloverPolicy) -> tuple[list[Fix], NmeaCounters]:
    stream = NmeaStream(policy, checksum_optional=optional)
    fixes: list[Fix] = []
    pos = 0
    for size in itertools.cycle(sizes):
        if pos >= len(data):
            break
        fixes += stream.feed(data[pos : pos + size], 0)
        pos += size
    return fixes + stream.flush(), stream.counters


def one_input(data: bytes) -> None:
    if len(data) < OPTIONS:
        return
    optional, policy = bool(data[0] & 1), POLICIES[(data[0] >> 1) % len(POLICIES)]
    sizes = [1 + b % 97 for b in data[1:OPTIONS]]
    payload = data[OPTIONS:]
    fixes, c = decode(payload, sizes, optional, policy)
    if (fixes, c) != decode(payload, [len(payload) or 1], optional, policy):
        raise AssertionError(f"chunks of {sizes} change the fixes or counts of {payload!r}")
    refused = c.bad_checksum + c.no_checksum + c.truncated + c.too_long + c.decode_error
    if not (
        c.bytes_in == len(payload) == c.garbage_bytes + c.eol_bytes + c.line_bytes
        and c.lines == c.decoded + c.ignored + c.proprietary + c.unknown_type + refused
        and c.decoded == c.placed + c.unplaced + c.unselected
        and c.epochs == len(fixes)
        and c.undated_epochs == sum(f.utc_ns is None for f in fixes)
    ):
        raise AssertionError(f"counts do not add up: {c}")
    if any(f.utc_ns is not None and f.utc_ns < policy.earliest_ns for f in fixes):
        raise AssertionError("a fix before the build date")


def make_corpus(out: Path, window: int = 700) -> None:
    """Seeds: windows of every receiver log, with a few option octets each."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from support import DATA, log_payload, nmea_logs

    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for log in nmea_logs(DATA):
        payload = log_payload(log)
        for i, start in enumerate(range(0, min(len(payload), 8 * window), window)):
            options = bytes([i % 6, 96, 7 + i, 81, 1 + i * 13 % 96])
            (out / f"{log.stem}-{i}").write_bytes(options + payload[start : start + window])
            n += 1
    print(f"{n} seeds from {DATA / 'nmea'} in {out}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--make-corpus":
        make_corpus(Path(sys.argv[2]))
        sys.exit(0)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
