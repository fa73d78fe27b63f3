"""The serial GPS driver: baud detection (pure), and the driver on real ptys through pyserial.

A pty stands for the receiver: the driver opens a symlink we control (as udev
gives a USB receiver a stable name); closing the pty simulates unplugging it,
a new pty behind the same symlink plugging it back.
"""

from __future__ import annotations

import errno
import logging
import os
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.fakes.gps import FakeGps, PtyWriter, sentence
from appliance.io.loop import EventLoop
from appliance.io.serial import (
    BaudDecision,
    BaudSearch,
    SerialGps,
    SerialPort,
    checksummed_sentences,
    open_error_hint,
    open_serial,
)
from appliance.nmea import Fix, NmeaStream, RolloverPolicy
from appliance.nmea.link import QUIET_NS, LinkState, link_state

S = 1_000_000_000
T0 = 1_700_000_000 * S
POLICY = RolloverPolicy(build_date_ns=T0 - 30 * 86_400 * S)
NOISE = bytes(range(128, 256)) * 8


def epoch(second: int) -> bytes:
    """One MTK3339 burst labelled POSIX second ``second``."""
    return b"".join(FakeGps("mtk3339", start_ns=T0).epoch_sentences(second))


# ---------------------------------------------------------------- pure baud detection


def test_checksummed_sentences_counts_only_good_ones() -> None:
    good = sentence("GPZDA,201530.00,04,07,2002,00,00")
    bad = good.replace(b"*", b"0*")
    assert checksummed_sentences(good + bad + b"noise$GP*" + good) == 2
    assert checksummed_sentences(NOISE) == 0


def test_locks_after_two_good_sentences_even_split_across_chunks() -> None:
    s = BaudSearch([9600, 4800])
    data = sentence("GPZDA,201530.00,04,07,2002,00,00") + sentence("GPZDA,201531.00,04,07,2002,00,00")
    assert s.feed(data[:20]) is BaudDecision.WAIT
    assert s.feed(data[20:50]) is BaudDecision.WAIT
    assert s.feed(data[50:]) is BaudDecision.LOCKED
    assert s.locked == 9600
    assert s.feed(NOISE) is BaudDecision.LOCKED
    assert s.expire() is BaudDecision.LOCKED


def test_noise_or_silence_moves_on_round_and_round() -> None:
    s = BaudSearch([9600, 4800, 38400])
    assert s.feed(NOISE[:300]) is BaudDecision.WAIT
    assert s.feed(NOISE[:300]) is BaudDecision.NEXT  # 600 bytes and not one good sentence
    assert s.current == 4800
    assert s.expire() is BaudDecision.NEXT  # the dwell time passed in silence
    assert s.current == 38400
    assert s.expire() is BaudDecision.NEXT
    assert s.current == 9600
    assert s.tried == 3


def test_restart_tries_the_last_good_rate_first() -> None:
    s = BaudSearch([9600, 4800, 38400])
    s.expire()
    s.expire()
    assert s.feed(epoch(1_700_000_001)) is BaudDecision.LOCKED
    s.restart(s.locked)
    assert (s.current, s.locked) == (38400, None)
    with pytest.raises(ValueError):
        BaudSearch([])


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOENT, "enable_uart=1"),
        (errno.EACCES, "dialout"),
        (errno.EAGAIN, "console=serial0"),
        (errno.EBUSY, "gpsd"),
        (errno.ENXIO, "unplugged"),
        (errno.EIO, "cannot open"),
    ],
)
def test_open_error_hints(code: int, words: str) -> None:
    msg = open_error_hint("/dev/serial0", OSError(code, os.strerror(code)))
    assert msg.startswith("/dev/serial0: ") and words in msg


# ---------------------------------------------------------------- the driver on ptys


def run_until(loop: EventLoop, cond: Callable[[], bool], timeout: float = 3.0) -> None:
    """Run ``loop`` until ``cond()``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    ticker = loop.call_every(0.005, lambda: None)
    try:
        loop.run(until=lambda: cond() or time.monotonic() > deadline)
    finally:
        ticker.cancel()
    assert cond(), "condition not reached in time"


@pytest.fixture
def loop() -> Any:
    lp = EventLoop()
    yield lp
    lp.close()


class Clock:
    """A local clock for the driver that counts up by 1 ms per reading (never the host's clock)."""

    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> int:
        self.t += 1_000_000
        return self.t


def make_driver(loop: EventLoop, path: str, **kw: Any) -> tuple[SerialGps, list[Fix]]:
    fixes: list[Fix] = []
    gps = SerialGps(loop, path, NmeaStream(POLICY), fixes.append, retry_s=0.02, now_ns=Clock(), **kw)
    return gps, fixes


def test_bytes_written_to_the_pty_arrive_as_fixes_with_read_times(loop: EventLoop, tmp_path: Path) -> None:
    pty = PtyWriter(None, lambda: 0, link=tmp_path / "gps0")
    gps, fixes = make_driver(loop, pty.path)
    try:
        gps.start()
        assert gps.usable
        for k in range(1, 4):
            pty.write(epoch(1_700_000_000 + k))
            run_until(loop, lambda k=k: gps.counters.fixes >= k - 1 and gps.counters.chunks >= k)  # type: ignore[misc]
        run_until(loop, lambda: len(fixes) >= 2)
        assert [f.utc_ns for f in fixes[:2]] == [T0 + S, T0 + 2 * S]
        assert all(f.valid for f in fixes)
        assert fixes[0].arrival_ns > T0  # the driver's clock reading, not the host's
        assert gps.counters.bytes > 0 and gps.counters.opens == 1
    finally:
        gps.stop()
        pty.close()
    assert not gps.is_open


def test_unplug_and_replug_behind_a_symlink(loop: EventLoop, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="appliance.io.serial")
    pty = PtyWriter(None, lambda: 0, link=tmp_path / "gps0")
    gps, fixes = make_driver(loop, pty.path)
    try:
        gps.start()
        pty.write(epoch(1_700_000_001) + epoch(1_700_000_002))
        run_until(loop, lambda: len(fixes) >= 1)

        pty.unplug()  # the receiver is pulled out: read fails (EIO), the symlink goes
        run_until(loop, lambda: not gps.is_open)
        assert not gps.usable and gps.counters.losses == 1
        run_until(loop, lambda: gps.counters.open_failures >= 3)  # retries, quietly
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "lost" in warnings[0].getMessage()

        pty.replug()  # a new pty behind the same name
        assert Path(pty.path).resolve() == Path(pty.slave_name)
        run_until(loop, lambda: gps.usable)
        assert any("is back" in r.getMessage() for r in caplog.records)
        n = len(fixes)
        for k in range(3, 6):
            pty.write(epoch(1_700_000_000 + k))
        run_until(loop, lambda: len(fixes) >= n + 2)
        assert fixes[-1].utc_ns is not None and fixes[-1].utc_ns >= T0 + 3 * S
        assert gps.counters.opens == 2
    finally:
        gps.stop()
        pty.close()


def test_missing_device_at_start_is_retried_not_raised(
    loop: EventLoop, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    link = tmp_path / "ttyACM0"
    gps, fixes = make_driver(loop, str(link))
    gps.start()  # no exception
    assert not gps.usable
    run_until(loop, lambda: gps.counters.open_failures >= 2)
    assert sum("no such device" in r.getMessage() for r in caplog.records) == 1
    pty = PtyWriter(None, lambda: 0, link=link)
    try:
        run_until(loop, lambda: gps.usable)
        pty.write(epoch(1_700_000_001) + epoch(1_700_000_002))
        run_until(loop, lambda: len(fixes) >= 1)
    finally:
        gps.stop()
        pty.close()


def test_exclusive_open(loop: EventLoop, tmp_path: Path) -> None:
    pty = PtyWriter(None, lambda: 0, link=tmp_path / "gps0")
    port = open_serial(pty.path, 9600)  # somebody else holds the port
    gps, _ = make_driver(loop, pty.path)
    try:
        gps.start()
        assert not gps.is_open and gps.counters.open_failures == 1
        port.close()
        run_until(loop, lambda: gps.usable)
    finally:
        gps.stop()
        pty.close()


class PipePort:
    """A stand-in for a serial port over a pipe: records baud changes; the test plays the receiver."""

    def __init__(self, baudrate: int) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        self.baudrate = baudrate
        self.flushes = 0

    def fileno(self) -> int:
        return self.r

    def reset_input_buffer(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        os.close(self.r)


def test_chunks_held_while_searching_follow_a_clock_step(loop: EventLoop) -> None:
    """A chunk read while the rate was still in doubt is decoded once it is found: on the clock's scale then."""
    ports: list[PipePort] = []

    def opener(path: str, baud: int) -> SerialPort:
        ports.append(PipePort(baud))
        return ports[-1]

    gps, fixes = make_driver(loop, "/dev/fake", autobaud=[38400], open_port=opener, dwell_s=60)
    try:
        gps.start()
        port = ports[0]
        first = sentence("GPZDA,221320.00,14,11,2023,00,00")  # one good sentence: the rate not yet sure
        os.write(port.w, first)
        run_until(loop, lambda: gps.counters.chunks >= 1)
        assert not gps.usable
        gps.stream.clock_stepped(-10 * S)  # e.g. an upstream server's first sample steps the clock meanwhile
        os.write(port.w, sentence("GPZDA,221321.00,14,11,2023,00,00"))
        run_until(loop, lambda: len(fixes) >= 1)
        assert gps.usable
        # the driver's clock reads past T0; the held chunk's time is restated by the step, as the pairing is
        assert T0 - 10 * S < fixes[0].arrival_ns < T0
    finally:
        gps.stop()
        for p in ports:
            os.close(p.w)


def test_autobaud_finds_the_rate_and_keeps_the_first_epochs(loop: EventLoop) -> None:
    ports: list[PipePort] = []

    def opener(path: str, baud: int) -> SerialPort:
        ports.append(PipePort(baud))
        return ports[-1]

    gps, fixes = make_driver(loop, "/dev/fake", autobaud=True, open_port=opener, dwell_s=0.05)
    try:
        gps.start()
        port = ports[0]
        assert port.baudrate == 9600 and gps.is_open and not gps.usable
        second = 1_700_000_001
        while not gps.usable:
            # the receiver talks at 38400: at any other rate the UART reads noise
            os.write(port.w, epoch(second) if port.baudrate == 38400 else NOISE[:200])
            second += 1
            run_until(loop, lambda: True)
            assert second < 1_700_000_100
        assert gps.baud == 38400 and gps.counters.baud_switches == 2  # 9600 -> 4800 -> 38400
        os.write(port.w, epoch(second))
        run_until(loop, lambda: len(fixes) >= 1)
        assert fixes[0].valid  # the locking chunks were decoded too

        # the device goes away (EOF) and comes back: the locked rate is tried first
        os.close(port.w)
        run_until(loop, lambda: len(ports) == 2)
        assert ports[1].baudrate == 38400
        os.write(ports[1].w, epoch(second + 1) + epoch(second + 2))
        run_until(loop, lambda: gps.usable)
    finally:
        gps.stop()
        if len(ports) > 1:
            os.close(ports[1].w)


def uart_rate(path: str) -> int:
    """The rate the driver set on the serial port, as the receiver at the other end of the line would meet it."""
    speeds = {getattr(termios, f"B{b}"): b for b in (4800, 9600, 19200, 38400, 57600, 115200)}
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        return speeds.get(termios.tcgetattr(fd)[4], 0)
    finally:
        os.close(fd)


def test_a_locked_rate_gone_quiet_is_searched_again(
    loop: EventLoop, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A u-blox whose saved 115200 is lost comes back at its factory rate: the driver hunts again and finds it."""
    caplog.set_level(logging.INFO, logger="appliance.io.serial")
    pty = PtyWriter(None, lambda: 0, link=tmp_path / "gps0")
    gps, fixes = make_driver(loop, pty.path, baud=115200, autobaud=True, dwell_s=0.1, hunt_s=0.5)
    talks_at = [115200]
    second = [1_700_000_001]

    def receiver() -> None:
        # at the receiver's rate the UART reads its sentences; at any other, noise (0x00, 0x80, 0xf8...)
        if uart_rate(pty.slave_name) == talks_at[0]:
            pty.write(epoch(second[0]))
            second[0] += 1
        else:
            pty.write(NOISE[:100])

    talking = loop.call_every(0.02, receiver)
    try:
        gps.start()
        run_until(loop, lambda: gps.usable and len(fixes) >= 2, timeout=5.0)
        assert gps.baud == 115200 and gps.counters.baud_searches == 0
        talks_at[0] = 9600  # the battery-backed setting is lost on a power cut: back at the factory rate
        run_until(loop, lambda: gps.counters.baud_searches == 1 and gps.usable and gps.baud == 9600, timeout=10.0)
        n = len(fixes)
        run_until(loop, lambda: len(fixes) >= n + 2, timeout=5.0)
        assert fixes[-1].valid
    finally:
        talking.cancel()
        gps.stop()
        pty.close()
    said = [r.getMessage() for r in caplog.records]
    again = [m for m in said if "searching again" in m]
    assert len(again) == 1 and again[0].startswith(f"GPS {pty.path}: no NMEA at 115200 baud for ")
    assert f"GPS {pty.path}: receiver talks at 9600 baud" in said


def test_the_link_says_talking_wrong_rate_silent_gone(loop: EventLoop, tmp_path: Path) -> None:
    """What status is told of the port: NMEA arriving, then noise (the receiver at another rate), then nothing,
    then the device pulled out; times on the driver's clock, restated by a clock step."""
    now = [T0]
    pty = PtyWriter(None, lambda: 0, link=tmp_path / "gps0")
    gps = SerialGps(loop, pty.path, NmeaStream(POLICY), lambda fix: None, retry_s=0.02, now_ns=lambda: now[0])

    def state() -> LinkState:
        return link_state(gps.link(), now[0])

    try:
        gps.start()
        pty.write(epoch(1_700_000_001) + epoch(1_700_000_002))
        run_until(loop, lambda: gps.link().nmea_ns is not None)
        assert state() is LinkState.TALKING and gps.link().baud == 9600

        now[0] += QUIET_NS  # then only noise: a receiver that went back to another rate
        bytes_before = gps.counters.bytes
        pty.write(NOISE[:300])
        run_until(loop, lambda: gps.counters.bytes > bytes_before)
        assert state() is LinkState.UNKNOWN_RATE

        gps.stream.clock_stepped(-QUIET_NS)  # the times held move with the clock
        now[0] -= QUIET_NS
        assert state() is LinkState.UNKNOWN_RATE
        now[0] += QUIET_NS  # and then nothing at all
        assert state() is LinkState.SILENT

        pty.unplug()
        run_until(loop, lambda: not gps.is_open)
        assert state() is LinkState.GONE and gps.link().closed_why.startswith("lost: ")
        run_until(loop, lambda: gps.counters.open_failures >= 1)  # the retry: the device is not there
        assert state() is LinkState.GONE
        assert gps.link().closed_why.startswith("lost: ")
        assert gps.link().closed_why.endswith("; not back: No such file or directory")
        # the counts status shows come along: the decoder's and the driver's
        assert gps.link().losses == 1 and gps.link().nmea.epochs >= 1 and gps.link().nmea.garbage_bytes >= 300
    finally:
        gps.stop()
        pty.close()
