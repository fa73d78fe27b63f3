"""Every real receiver log in tests/data/nmea, replayed through a pty into the serial driver.

The project's replay (the log's bytes without its ``#`` header lines, as
gpsfake sends them) goes into the master side of a pty in pieces of random
size; the serial driver (pyserial on the slave side, on the event loop) reads
and decodes them. The fixes that come out must be the ones the pure decoder
gives for the whole file at once: same times, same validity, same order. The
pure decoder's fixes are checked against gpsd's .chk files in
tests/unit/nmea/test_nmea_logs.py, so this closes the chain log -> pty ->
pyserial -> driver -> fixes.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
from support import log_build_date_ns, log_payload, nmea_logs

from appliance.fakes.gps import PtyWriter
from appliance.io.loop import EventLoop
from appliance.io.serial import SerialGps
from appliance.nmea import Fix, NmeaStream, RolloverPolicy

T0 = 1_700_000_000 * 1_000_000_000


def _key(f: Fix) -> tuple[Any, ...]:
    return (f.utc_ns, f.valid, f.has_time)


def _replay(loop: EventLoop, log: Path, link: Path, rng: random.Random) -> tuple[list[Fix], SerialGps]:
    payload = log_payload(log)
    stream = NmeaStream(RolloverPolicy(log_build_date_ns(log)))
    fixes: list[Fix] = []
    t = [T0]

    def now() -> int:
        t[0] += 1_000_000
        return t[0]

    pty = PtyWriter(None, lambda: 0, link=link)
    gps = SerialGps(loop, pty.path, stream, fixes.append, retry_s=0.02, now_ns=now)
    ticker = loop.call_every(0.005, lambda: None)  # bounds each select() so run(until=...) checks often
    try:
        gps.start()
        assert gps.usable
        pos = 0
        deadline = time.monotonic() + 60
        while pos < len(payload):
            piece = payload[pos : pos + rng.randint(1, 700)]
            n = pty.write(piece)
            pos += n
            # let the driver read what is in the pty (always when the pty was full)
            goal = pos
            loop.run(until=lambda goal=goal: gps.counters.bytes >= goal or time.monotonic() > deadline)  # type: ignore[misc]
            assert time.monotonic() < deadline, f"{log.name}: the driver stopped reading at byte {gps.counters.bytes}"
        fixes += stream.flush()  # the last epoch ends with the file, as in the pure decode
    finally:
        ticker.cancel()
        gps.stop()
        pty.close()
    return fixes, gps


@pytest.fixture
def loop() -> Any:
    lp = EventLoop()
    yield lp
    lp.close()


def test_every_log_through_a_pty_gives_the_same_fixes(loop: EventLoop, shared_data: Path, tmp_path: Path) -> None:
    rng = random.Random(20261123)
    logs = nmea_logs(shared_data)
    total = 0
    for i, log in enumerate(logs):
        pure = NmeaStream(RolloverPolicy(log_build_date_ns(log)))
        expected = pure.feed(log_payload(log), 0) + pure.flush()
        fixes, gps = _replay(loop, log, tmp_path / f"gps{i}", rng)
        assert gps.counters.bytes == len(log_payload(log)), log.name
        assert [_key(f) for f in fixes] == [_key(f) for f in expected], log.name
        # arrival times are the driver's clock readings, in order
        arrivals = [f.arrival_ns for f in fixes]
        assert arrivals == sorted(arrivals) and (not arrivals or arrivals[0] > T0), log.name
        total += len(fixes)
    assert total > 1000  # the logs hold thousands of epochs; a silent driver would give none
