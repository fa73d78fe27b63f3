"""The fake GPS receiver: its sentences decode (with the real decoder) to the times and timing it claims."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import statistics
from pathlib import Path

import pytest

from appliance.fakes.gps import (
    LATE_GAUSSIAN,
    MODELS,
    Chunk,
    FakeGps,
    LogReplay,
    PtyWriter,
    log_bursts,
    nmea_checksum,
    replay,
    sentence,
)
from appliance.nmea import Fix, NmeaStream, RolloverPolicy

S = 1_000_000_000
T0 = 1_700_000_000 * S  # 2023-11-14T22:13:20Z
POLICY = RolloverPolicy(build_date_ns=T0 - 30 * 86_400 * S)


def decode(chunks: list[Chunk]) -> tuple[list[Fix], NmeaStream]:
    stream = NmeaStream(POLICY)
    fixes: list[Fix] = []
    for c in chunks:
        fixes += stream.feed(c.data, c.at_ns)
    return fixes + stream.flush(), stream


def run(gps: FakeGps, seconds: int, step_ns: int = S // 10) -> list[Chunk]:
    out: list[Chunk] = []
    t = T0
    while t < T0 + seconds * S:
        t += step_ns
        out += gps.tick(t)
    return out


def test_sentence_framing_and_checksum() -> None:
    assert sentence("GPZDA,201530.00,04,07,2002,00,00") == b"$GPZDA,201530.00,04,07,2002,00,00*60\r\n"
    assert nmea_checksum(b"") == 0


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_decodes_to_the_labelled_seconds(name: str) -> None:
    gps = FakeGps(name, start_ns=T0, seed=3)
    fixes, stream = decode(run(gps, 12))
    n = stream.counters
    assert n.bad_checksum == n.decode_error == n.garbage_bytes == n.unplaced == 0
    assert len(fixes) >= 10
    model = MODELS[name]
    for f in fixes:
        assert f.valid and f.has_time and f.utc_ns is not None
        edge = f.arrival_ns - f.arrival_ns % S  # the PPS edge before the burst
        delay = f.arrival_ns - edge
        assert model.delay_min_ns <= delay <= model.delay_max_ns
        assert f.utc_ns == edge + (S if model.labels == "next" else 0)
        assert f.lat_deg == pytest.approx(44.068843, abs=1e-5)
        assert f.lon_deg == pytest.approx(-121.314192, abs=1e-5)


def test_mtk3339_burst_matches_the_real_log() -> None:
    gps = FakeGps("mtk3339", start_ns=T0)
    fixes, _ = decode(run(gps, 11))
    assert fixes[0].sentences == ("GPGGA", "GPGSA", "GPRMC", "GPZDA")
    with_gsv = [f for f in fixes if "GPGSV" in f.sentences]
    assert [(f.utc_ns or 0) // S % 5 for f in with_gsv] == [0, 0]  # every 5 s
    assert with_gsv[0].sentences == ("GPGGA", "GPGSA", "GPGSV", "GPGSV", "GPGSV", "GPRMC", "GPZDA")
    times = [c.data[7:17] for c in gps.tick(T0 + 20 * S) if c.data.startswith(b"$GPZDA")]
    assert times[0] == b"221331.000"  # the burst of the edge at 11 s was not yet due at 11 s


def test_ublox_burst_matches_the_real_log() -> None:
    fixes, _ = decode(run(FakeGps("ublox-m8", start_ns=T0), 3))
    assert fixes[0].sentences[:4] == ("GNRMC", "GNGGA", "GNGSA", "GNGSA")  # VTG is not an epoch sentence
    assert "GLGSV" in fixes[0].sentences and fixes[0].sentences[-2:] == ("GNGLL", "GNZDA")


def test_sentences_follow_each_other_at_the_line_rate() -> None:
    gps = FakeGps("mtk3339", start_ns=T0)
    chunks = gps.tick(T0 + 2 * S)
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.at_ns - a.at_ns == len(a.data) * 10 * S // 9600


def test_bursts_never_overlap_on_a_slow_line() -> None:
    model = MODELS["ublox-m8"]
    slow = dataclasses.replace(model, baud=4800)
    chunks = run(FakeGps(slow, start_ns=T0), 6)
    assert all(b.at_ns >= a.at_ns for a, b in zip(chunks, chunks[1:], strict=False))


def test_lose_and_regain_fix() -> None:
    gps = FakeGps("mtk3339", start_ns=T0)
    chunks = gps.tick(T0 + 3 * S)
    gps.lose_fix()
    chunks += gps.tick(T0 + 6 * S)
    gps.regain_fix()
    chunks += gps.tick(T0 + 9 * S)
    fixes, _ = decode(chunks)
    assert [f.valid for f in fixes] == [True] * 2 + [False] * 3 + [True] * 3
    lost = fixes[3]
    assert lost.lat_deg is None and lost.utc_ns is not None  # time goes on without a fix


def test_go_silent_and_resume() -> None:
    gps = FakeGps("ublox-m8", start_ns=T0)
    assert gps.tick(T0 + 2 * S)
    gps.go_silent()
    assert gps.tick(T0 + 5 * S) == []
    gps.resume()
    fixes, _ = decode(gps.tick(T0 + 7 * S))
    assert [f.utc_ns for f in fixes] == [T0 + 5 * S, T0 + 6 * S]  # the silent seconds are never sent


def test_jump_weeks_simulates_the_rollover_bug() -> None:
    gps = FakeGps("mtk3339", start_ns=T0)
    gps.jump_weeks(-1024)
    chunks = gps.tick(T0 + 2 * S)
    rmc = next(c.data for c in chunks if c.data.startswith(b"$GPRMC"))
    when = dt.datetime.fromtimestamp(T0 // S + 1 - 1024 * 7 * 86_400, dt.UTC)
    assert when.strftime("%d%m%y").encode() in rmc
    fixes, stream = decode(chunks)
    assert fixes[0].rollover_steps == 1 and fixes[0].utc_ns == T0 + S  # the decoder repairs it
    assert stream.counters.rollover_repaired == 1


def test_send_garbage_goes_out_at_the_next_tick() -> None:
    gps = FakeGps("mtk3339", start_ns=T0)
    gps.send_garbage(b"\x00\xff\xb5b")
    chunks = gps.tick(T0 + S // 10)
    assert chunks == [Chunk(T0 + S // 10, b"\x00\xff\xb5b")]
    _, stream = decode(chunks + gps.tick(T0 + 3 * S))
    assert stream.counters.garbage_bytes == 4


def test_seeded_and_next_due() -> None:
    a = run(FakeGps("ublox-m8", start_ns=T0, seed=5), 4)
    assert a == run(FakeGps("ublox-m8", start_ns=T0, seed=5), 4)
    assert a != run(FakeGps("ublox-m8", start_ns=T0, seed=6), 4)
    gps = FakeGps("ublox-m8", start_ns=T0)
    assert gps.next_due_ns() == T0 + S + 50_000_000
    first = gps.tick(T0 + S + 160_000_000)[0]
    assert gps.next_due_ns() > first.at_ns


def test_gaussian_delay_when_driven_by_next_due() -> None:
    # Driven as the harness drives it (tick at next_due_ns): every burst leaves on time, Gaussian around 0.35 s.
    gps = FakeGps(LATE_GAUSSIAN, start_ns=T0, seed=4)
    t, chunks = T0, []
    while t < T0 + 400 * S:
        got = gps.tick(t)
        assert all(c.at_ns == t for c in got)
        chunks += got
        t = max(gps.next_due_ns(), t + 1)
    fixes, stream = decode(chunks)
    assert stream.counters.bad_checksum == stream.counters.unplaced == 0
    delays = [f.arrival_ns - f.utc_ns for f in fixes if f.utc_ns is not None and f.has_time]
    assert len(delays) >= 390
    assert 340e6 < statistics.mean(delays) < 360e6
    assert 40e6 < statistics.stdev(delays) < 60e6
    assert min(delays) < 300e6 and max(delays) > 400e6  # not the uniform jitter of the real models
    no_sigma = dataclasses.replace(LATE_GAUSSIAN, delay_sigma_ns=0.0)
    assert run(FakeGps(no_sigma, start_ns=T0, seed=4), 3)[0].at_ns == T0 + S + 350_000_000


# ---------------------------------------------------------------- replay and the pty


LOG = b"""# Name: test
$GPGSV,1,1,01,09,88,089,31*4D
$GPGGA,202640.000,4404.1306,N,12118.8515,W,2,10,0.98,1127.7,M,-19.6,M,0000,0000*6C
$GPRMC,202640.000,A,4404.1306,N,12118.8515,W,0.03,225.97,130415,,,D*73
$GPGGA,202641.000,4404.1305,N,12118.8515,W,2,11,0.83,1127.7,M,-19.6,M,0000,0000*65
$GPRMC,202641.000,A,4404.1305,N,12118.8515,W,0.01,201.71,130415,,,D*7D
"""


def test_log_bursts_group_by_time_label() -> None:
    bursts = log_bursts(LOG)
    assert [len(b) for b in bursts] == [3, 2]
    assert bursts[0][0].startswith(b"$GPGSV")


def test_log_replay_paces_one_burst_a_second() -> None:
    r = LogReplay(LOG, start_ns=T0, baud=9600, delay_ns=S // 10)
    assert r.next_due_ns() == T0 + S // 10
    first = r.tick(T0 + S // 2)
    assert len(first) == 3
    rest = r.tick(T0 + 2 * S)
    assert rest[0].at_ns == T0 + S + S // 10 and r.done and r.next_due_ns() is None


def test_replaying_the_real_mt3339_log(shared_data: Path) -> None:
    r = LogReplay.from_file(shared_data / "nmea" / "mt3339.log", start_ns=T0, delay_ns=0)
    stream = NmeaStream(RolloverPolicy(build_date_ns=1_420_070_400 * S))
    fixes: list[Fix] = []
    for c in r.tick(T0 + 100 * S):
        fixes += stream.feed(c.data, c.at_ns)
    assert len(fixes) >= 30
    assert {b.arrival_ns - a.arrival_ns for a, b in zip(fixes, fixes[1:], strict=False)} == {S}
    assert {b.utc_ns - a.utc_ns for a, b in zip(fixes, fixes[1:], strict=False) if a.utc_ns and b.utc_ns} == {S}


def test_replay_writes_the_log_into_a_file_descriptor(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(LOG)
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    r, w = os.pipe()
    try:
        n = replay(path, w, speed=4.0, sleep=sleep, monotonic=lambda: now[0])
        got = os.read(r, 4096)
    finally:
        os.close(r)
        os.close(w)
    assert got == b"".join(line for line in LOG.splitlines(keepends=True) if not line.startswith(b"#"))
    assert n == len(got)
    # the second burst 1 s later (and its second line 88 bytes at 9600 baud after that), played 4x fast
    assert sum(sleeps) == pytest.approx((1 + 88 * 10 / 9600) / 4, abs=0.005)


def test_pty_writer_unplug_and_replug(tmp_path: Path) -> None:
    t = [T0]
    pty = PtyWriter(FakeGps("mtk3339", start_ns=T0), lambda: t[0], link=tmp_path / "gps0")
    try:
        fd = os.open(pty.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        t[0] += 2 * S
        n = pty.poll()
        assert n > 0 and os.read(fd, 4096).startswith(b"$GPGGA,221321.000")
        pty.unplug()
        assert not (tmp_path / "gps0").exists() and not pty.plugged
        try:
            assert os.read(fd, 10) == b""  # the other side is gone: end of file (hung up)...
        except OSError:
            pass  # ... or EIO
        os.close(fd)
        assert pty.write(b"x") == 0
        pty.replug()
        assert os.readlink(tmp_path / "gps0") == pty.slave_name
    finally:
        pty.close()


def test_pty_writer_follows_a_loop() -> None:
    class Loop:
        def call_later(self, delay: float, callback: object) -> Loop:
            self.args = (delay, callback)
            self.cancelled = False
            return self

        def cancel(self) -> None:
            self.cancelled = True

    loop = Loop()
    pty = PtyWriter(None, lambda: T0)
    try:
        timer = pty.follow(loop, idle_s=0.3)
        assert pty.next_due_ns() is None and loop.args[0] == 0.3  # no source: nothing due, look again later
        timer.cancel()
        assert loop.cancelled
        assert pty.poll() == 0
        assert pty.path == pty.slave_name
    finally:
        pty.close()
