"""A fake GPS receiver: NMEA with a chosen receiver's timing and sentences, on virtual time or into a pty.

:class:`FakeGps` generates what a receiver sends, second by second, on the
time passed to :meth:`FakeGps.tick` (no clock is read): for each whole true
second ``E`` (the PPS edge) a burst of sentences whose first byte leaves the
receiver ``delay`` after ``E``, the next sentences following at the line
rate (10 bits a byte), labelled with second ``E`` (most receivers) or
``E + 1`` (receivers that label the second to come). Checksums, dates,
times and positions are correct; the verbs break them on purpose, from the
next burst whose first byte is not yet due:

- :meth:`~FakeGps.lose_fix` / :meth:`~FakeGps.regain_fix`: sentences go on
  with status ``V``, quality 0, no position (time and date go on, as the
  receiver's clock still runs);
- :meth:`~FakeGps.go_silent` / :meth:`~FakeGps.resume`: no output at all;
- :meth:`~FakeGps.jump_weeks`: dates shifted by whole weeks (``-1024`` is a
  week-number rollover bug); :meth:`~FakeGps.slip_seconds`: every second
  named off by some seconds;
- :meth:`~FakeGps.send_garbage`: raw bytes, sent at the next tick.

Receiver models (:data:`MODELS`), from real logs (``tests/data/nmea``) and
the receivers' documented behaviour:

- ``mtk3339`` (Adafruit Ultimate GPS HAT): ``$GPGGA, $GPGSA, [$GPGSV x3
  every 5 s], $GPRMC, $GPZDA``, times ``hhmmss.000``, 9600 baud; the burst
  starts about half a second after the PPS edge (400-600 ms here; MediaTek
  parts start the output late in the second and the exact figure varies with
  firmware: calibrate the NMEA offset on the real unit) and labels the
  second that began at the edge;
- ``ublox-m8`` (Uputronics HAT, MAX-M8Q): ``$GNRMC, $GNVTG, $GNGGA, $GNGSA
  x2, $GPGSV.., $GLGSV.., $GNGLL, $GNZDA``, ``hhmmss.00``, 9600 baud, burst
  50-150 ms after the edge, labels that second;
- ``next-second``: a receiver that sends the label of the *next* edge during
  the second before it (``$GPRMC, $GPGGA``, 4800 baud, 300-400 ms after
  the edge it precedes by ~0.65 s): pairing must not take its label for the
  edge just gone.

``ReceiverModel.delay_sigma_ns`` adds Gaussian jitter to a model's delay;
:data:`LATE_GAUSSIAN` (outside :data:`MODELS`) is issue 11's benchmark
receiver: the burst 0.35 s after the edge, 50 ms (1 sigma) of jitter.

:class:`PtyWriter` writes any source's chunks into a pseudo-terminal as
their true time comes (driven from an event-loop timer, no thread), behind an
optional symlink that :meth:`~PtyWriter.unplug` removes and
:meth:`~PtyWriter.replug` points at a fresh pty, as udev does for a USB
receiver. :class:`LogReplay` and :func:`replay` play a real log back, one
burst a second.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import random
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from appliance.fakes.pacing import DueTimer, LaterLoop
from appliance.timebase import NS_PER_S

_BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit


# ---------------------------------------------------------------- sentence text


def nmea_checksum(body: bytes) -> int:
    """XOR of the bytes between ``$`` and ``*``."""
    x = 0
    for b in body:
        x ^= b
    return x


def sentence(body: str) -> bytes:
    """``$body*hh`` CR LF, with the checksum."""
    raw = body.encode("ascii")
    return b"$%s*%02X\r\n" % (raw, nmea_checksum(raw))


def _latlon(deg: float, decimals: int, width: int, hemis: str) -> tuple[str, str]:
    """Return (``dddmm.mmmm``, hemisphere letter) for signed degrees."""
    hemi = hemis[0] if deg >= 0 else hemis[1]
    a = abs(deg)
    d = int(a)
    m = round((a - d) * 60, decimals)
    if m >= 60:
        d, m = d + 1, 0.0
    return f"{d:0{width}d}{m:0{3 + decimals}.{decimals}f}", hemi


# ---------------------------------------------------------------- receiver models


@dataclass(frozen=True, slots=True)
class ReceiverModel:
    """How one kind of receiver talks: sentence set and order, timing, formats."""

    name: str
    #: Sentence types in burst order: RMC, GGA, GSA, GSV, ZDA, VTG, GLL.
    sentences: tuple[str, ...]
    #: Talker of the navigation sentences (GP, GN).
    talker: str = "GP"
    #: Constellations with their own GSA/GSV lines (talkers).
    sky_talkers: tuple[str, ...] = ("GP",)
    #: GSV only every this many seconds (MTK: 5; u-blox: every second).
    gsv_every: int = 1
    baud: int = 9600
    #: Delay from the PPS edge to the first byte of the burst (uniform in [min, max]), ns.
    delay_min_ns: int = 100_000_000
    delay_max_ns: int = 100_000_000
    #: Gaussian jitter (1 sigma, ns) added to that delay (0: none); the sum is kept in [0, 1 s).
    delay_sigma_ns: float = 0.0
    #: "current": the burst labels the second that began at the edge before it; "next": the edge after it.
    labels: Literal["current", "next"] = "current"
    time_decimals: int = 3
    pos_decimals: int = 4
    #: ZDA's local zone fields: "" (MTK: empty) or "00" (u-blox).
    zda_zone: str = ""


MTK3339 = ReceiverModel(
    name="mtk3339",
    sentences=("GGA", "GSA", "GSV", "RMC", "ZDA"),
    gsv_every=5,
    delay_min_ns=400_000_000,
    delay_max_ns=600_000_000,
    time_decimals=3,
    pos_decimals=4,
)
UBLOX_M8 = ReceiverModel(
    name="ublox-m8",
    sentences=("RMC", "VTG", "GGA", "GSA", "GSV", "GLL", "ZDA"),
    talker="GN",
    sky_talkers=("GP", "GL"),
    delay_min_ns=50_000_000,
    delay_max_ns=150_000_000,
    time_decimals=2,
    pos_decimals=5,
    zda_zone="00",
)
NEXT_SECOND = ReceiverModel(
    name="next-second",
    sentences=("RMC", "GGA"),
    baud=4800,
    delay_min_ns=300_000_000,
    delay_max_ns=400_000_000,
    labels="next",
    time_decimals=2,
)
MODELS: dict[str, ReceiverModel] = {m.name: m for m in (MTK3339, UBLOX_M8, NEXT_SECOND)}

#: Issue 11's benchmark receiver (``bench/timekeeping.py``), not a real part and not in :data:`MODELS`:
#: ``$GPRMC, $GPGGA`` at 9600 baud, the burst 0.35 s after the edge with 50 ms of Gaussian jitter.
LATE_GAUSSIAN = ReceiverModel(
    name="late-gaussian",
    sentences=("RMC", "GGA"),
    delay_min_ns=350_000_000,
    delay_max_ns=350_000_000,
    delay_sigma_ns=50_000_000.0,
)

# A fixed sky: (PRN, elevation, azimuth, SNR) per constellation talker.
_SKY: dict[str, list[tuple[int, int, int, int]]] = {
    "GP": [(2, 5, 307, 0), (3, 21, 174, 29), (7, 46, 259, 26), (9, 67, 312, 39), (16, 47, 64, 35), (22, 8, 167, 29),
           (23, 68, 103, 28), (26, 23, 45, 27), (27, 12, 109, 21), (30, 12, 249, 17)],
    "GL": [(69, 40, 156, 22), (70, 76, 297, 23), (71, 24, 325, 14), (73, 33, 233, 24), (79, 32, 38, 19)],
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes a receiver sends, starting at true time ``at_ns`` (POSIX ns)."""

    at_ns: int
    data: bytes


class NmeaSource(Protocol):
    """What bytes are due by a true time, and when the next are: :class:`FakeGps`, :class:`LogReplay`."""

    def tick(self, true_ns: int) -> list[Chunk]: ...

    def next_due_ns(self) -> int | None: ...


class FakeGps:
    """A receiver on the time given to :meth:`tick`; see the module docstring.

    ``model`` is a :class:`ReceiverModel` or a name from :data:`MODELS`;
    ``position`` is (latitude, longitude in degrees, altitude in m above MSL).
    The first burst is for the first whole second after ``start_ns``.

    >>> gps = FakeGps("mtk3339", start_ns=1_700_000_000 * 10**9)
    >>> [c.data[:17] for c in gps.tick(1_700_000_001_990_000_000)]
    [b'$GPGGA,221321.000', b'$GPGSA,A,3,03,07,', b'$GPRMC,221321.000', b'$GPZDA,221321.000']
    """

    def __init__(
        self,
        model: ReceiverModel | str = MTK3339,
        *,
        start_ns: int,
        seed: int = 0,
        position: tuple[float, float, float] = (44.068843, -121.314192, 1127.7),
        geoid_sep_m: float = -19.6,
    ) -> None:
        self.model = MODELS[model] if isinstance(model, str) else model
        self.position = position
        self.geoid_sep_m = geoid_sep_m
        self._rng = random.Random(seed)
        self._next_edge = (start_ns // NS_PER_S + 1) * NS_PER_S
        self._scheduled: deque[tuple[int, int]] = deque()  # (first byte due, label second) of coming bursts
        self._pending: deque[Chunk] = deque()
        self._busy_until = 0  # true ns when the line is free again
        self._garbage: list[bytes] = []
        self.has_fix = True
        self.silent = False
        self.week_offset = 0
        self.second_offset = 0
        self.bursts = 0

    # -- verbs

    def lose_fix(self) -> None:
        """Sentences say "no fix" (status V, quality 0, no position) until :meth:`regain_fix`."""
        self.has_fix = False

    def regain_fix(self) -> None:
        self.has_fix = True

    def go_silent(self) -> None:
        """Send nothing until :meth:`resume` (the seconds in between are never sent)."""
        self.silent = True

    def resume(self) -> None:
        self.silent = False

    def jump_weeks(self, n: int) -> None:
        """Shift the dates sent by ``n`` weeks from now on (``-1024``: the GPS week rollover bug)."""
        self.week_offset += n

    def slip_seconds(self, n: int) -> None:
        """Name every second ``n`` seconds off from now on (a receiver that slipped a second)."""
        self.second_offset += n

    def send_garbage(self, data: bytes) -> None:
        """Send ``data`` as it is at the next :meth:`tick`."""
        self._garbage.append(data)

    # -- time

    def tick(self, true_ns: int) -> list[Chunk]:
        """Return the chunks (one per sentence) whose first byte is due by ``true_ns``, in order."""
        while self._next_edge <= true_ns:
            self._schedule(self._next_edge)
            self._next_edge += NS_PER_S
        while self._scheduled and self._scheduled[0][0] <= true_ns:
            self._burst(*self._scheduled.popleft())
        out = [Chunk(true_ns, g) for g in self._garbage]
        self._garbage.clear()
        while self._pending and self._pending[0].at_ns <= true_ns:
            out.append(self._pending.popleft())
        return out

    def next_due_ns(self) -> int:
        """The true time of the next chunk (queued, or the next burst's earliest start)."""
        if self._pending:
            return self._pending[0].at_ns
        if self._scheduled:
            return self._scheduled[0][0]
        return self._next_edge + (self.model.delay_min_ns if self.model.delay_sigma_ns == 0 else 0)

    # -- bursts

    def _schedule(self, edge_ns: int) -> None:
        """The edge at ``edge_ns`` passed: the burst for it will start after the model's delay."""
        m = self.model
        delay = self._rng.randint(m.delay_min_ns, m.delay_max_ns)
        if m.delay_sigma_ns > 0:
            delay = min(max(0, delay + round(self._rng.gauss(0.0, m.delay_sigma_ns))), NS_PER_S - 1)
        label_s = edge_ns // NS_PER_S + (1 if m.labels == "next" else 0)
        self._scheduled.append((edge_ns + delay, label_s))

    def _burst(self, start_ns: int, label_s: int) -> None:
        """The burst's first byte is due: its content follows the verbs in force now."""
        if self.silent:
            return
        at = max(start_ns, self._busy_until)
        for data in self.epoch_sentences(label_s):
            self._pending.append(Chunk(at, data))
            at += len(data) * _BITS_PER_BYTE * NS_PER_S // self.model.baud
        self._busy_until = at
        self.bursts += 1

    def epoch_sentences(self, label_s: int) -> list[bytes]:
        """Return the sentences of the burst labelled POSIX second ``label_s`` (before the week shift)."""
        m = self.model
        when = dt.datetime.fromtimestamp(label_s + self.week_offset * 7 * 86_400 + self.second_offset, dt.UTC)
        hms = when.strftime("%H%M%S") + ("." + "0" * m.time_decimals if m.time_decimals else "")
        out: list[bytes] = []
        for kind in m.sentences:
            if kind == "GSV":
                if label_s % m.gsv_every == 0:
                    for talker in m.sky_talkers:
                        out += [sentence(b) for b in self._gsv(talker)]
            elif kind == "GSA":
                for talker in m.sky_talkers:
                    out.append(sentence(self._gsa(talker if m.talker == "GP" else m.talker, talker)))
            else:
                out.append(sentence(self._nav(kind, hms, when)))
        return out

    def _pos(self) -> tuple[str, str, str, str]:
        lat, lon, _ = self.position
        la, ns = _latlon(lat, self.model.pos_decimals, 2, "NS")
        lo, ew = _latlon(lon, self.model.pos_decimals, 3, "EW")
        return la, ns, lo, ew

    def _nav(self, kind: str, hms: str, when: dt.datetime) -> str:
        t = self.model.talker
        fix = self.has_fix
        la, ns, lo, ew = self._pos() if fix else ("", "", "", "")
        if kind == "RMC":
            ddmmyy = when.strftime("%d%m%y")
            return f"{t}RMC,{hms},{'A' if fix else 'V'},{la},{ns},{lo},{ew},0.02,,{ddmmyy},,,{'A' if fix else 'N'}"
        if kind == "GGA":
            if not fix:
                return f"{t}GGA,{hms},,,,,0,00,99.99,,M,,M,,"
            alt = self.position[2]
            used = sum(1 for talker in self.model.sky_talkers for *_, snr in _SKY[talker] if snr)  # as GSA lists
            return f"{t}GGA,{hms},{la},{ns},{lo},{ew},1,{used:02d},0.98,{alt:.1f},M,{self.geoid_sep_m:.1f},M,,"
        if kind == "ZDA":
            z = self.model.zda_zone
            return f"{t}ZDA,{hms},{when:%d},{when:%m},{when:%Y},{z},{z}"
        if kind == "VTG":
            return f"{t}VTG,,T,,M,0.029,N,0.053,K,{'A' if fix else 'N'}"
        if kind == "GLL":
            return f"{t}GLL,{la},{ns},{lo},{ew},{hms},{'A' if fix else 'V'},{'A' if fix else 'N'}"
        raise ValueError(f"no such sentence type in the fake: {kind}")

    def _gsa(self, talker: str, sky: str) -> str:
        if not self.has_fix:
            return f"{talker}GSA,A,1" + "," * 12 + ",99.99,99.99,99.99"
        prns = [f"{p:02d}" for p, _, _, snr in _SKY[sky] if snr][:12]
        return f"{talker}GSA,A,3,{','.join(prns + [''] * (12 - len(prns)))},1.64,0.98,1.31"

    def _gsv(self, talker: str) -> list[str]:
        sats = _SKY[talker]
        total = (len(sats) + 3) // 4
        out = []
        for i in range(total):
            group = sats[4 * i : 4 * i + 4]
            fields = "".join(
                f",{p:02d},{el:02d},{az:03d},{snr if snr and self.has_fix else ''}" for p, el, az, snr in group
            )
            out.append(f"{talker}GSV,{total},{i + 1},{len(sats):02d}{fields}")
        return out


# ---------------------------------------------------------------- replay of real logs

_TIME_FIELD = {"RMC": 1, "GGA": 1, "ZDA": 1, "GNS": 1, "GLL": 5, "GBS": 1, "GST": 1}


def _label(line: bytes) -> bytes | None:
    """Return the time-of-day field of a timed sentence, or None."""
    start = line.find(b"$")
    if start < 0:
        return None
    fields = line[start + 1 :].split(b"*", 1)[0].split(b",")
    kind = fields[0][2:].decode("ascii", "replace")
    idx = _TIME_FIELD.get(kind)
    if idx is None or idx >= len(fields) or not fields[idx]:
        return None
    return fields[idx]


def log_bursts(data: bytes) -> list[list[bytes]]:
    """Split a receiver log into bursts (lists of raw lines, ``#`` comments dropped), one per time label.

    A timed sentence with a time different from the burst's starts the next
    burst; untimed sentences (GSA, GSV) stay in the burst they are in.
    """
    bursts: list[list[bytes]] = [[]]
    current: bytes | None = None
    for line in data.splitlines(keepends=True):
        if line.startswith(b"#"):
            continue
        label = _label(line)
        if label is not None and current is not None and label != current and bursts[-1]:
            bursts.append([])
        if label is not None:
            current = label
        bursts[-1].append(line)
    return [b for b in bursts if b]


class LogReplay:
    """A real log played back on the time given to :meth:`tick`: burst ``i`` at ``start_ns + i s + delay_ns``.

    Within a burst the lines follow at ``baud`` (10 bits a byte). Bytes are
    sent as in the file (line endings and binary noise included).
    """

    def __init__(
        self, data: bytes, *, start_ns: int, baud: int = 9600, delay_ns: int = 100_000_000, pace_ns: int = NS_PER_S
    ) -> None:
        self._chunks: deque[Chunk] = deque()
        for i, burst in enumerate(log_bursts(data)):
            at = start_ns + i * pace_ns + delay_ns
            for line in burst:
                self._chunks.append(Chunk(at, line))
                at += len(line) * _BITS_PER_BYTE * NS_PER_S // baud

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> LogReplay:
        return cls(Path(path).read_bytes(), **kwargs)

    @property
    def done(self) -> bool:
        return not self._chunks

    def next_due_ns(self) -> int | None:
        """The true time of the next chunk, or None when the log is played out."""
        return self._chunks[0].at_ns if self._chunks else None

    def tick(self, true_ns: int) -> list[Chunk]:
        out = []
        while self._chunks and self._chunks[0].at_ns <= true_ns:
            out.append(self._chunks.popleft())
        return out


# ---------------------------------------------------------------- the pty


class PtyWriter:
    """Writes a source's chunks into a pseudo-terminal as their true time comes (real-time runs and tests).

    ``path`` is what a serial driver opens: the pty's slave device, or the
    symlink ``link`` to it. The pty is raw (no echo, no line editing). The
    writer keeps its own slave descriptor open so the pty lives while the
    driver closes and reopens it.

    :meth:`poll` writes what is due by ``true_ns()``; :meth:`follow` calls it
    from an event-loop timer when the next bytes fall due. Writes that would block (nobody reading) are
    dropped and counted in :attr:`dropped`.
    """

    def __init__(
        self, source: NmeaSource | None, true_ns: Callable[[], int], *, link: str | Path | None = None
    ) -> None:
        self.source = source
        self._true = true_ns
        self.link = Path(link) if link is not None else None
        self.dropped = 0
        self.written = 0
        self._master: int | None = None
        self._slave: int | None = None
        self.slave_name = ""
        self._open_pty()

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.slave_name = os.ttyname(slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.slave_name)
            os.replace(tmp, self.link)

    @property
    def path(self) -> str:
        return str(self.link) if self.link is not None else self.slave_name

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def write(self, data: bytes) -> int:
        """Write ``data`` now; return the bytes written (0 when unplugged or the pty is full)."""
        if self._master is None:
            return 0
        try:
            n = os.write(self._master, data)
        except BlockingIOError:
            n = 0
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            n = 0
        self.dropped += len(data) - n
        self.written += n
        return n

    def poll(self) -> int:
        """Write every chunk due by now; return the bytes written."""
        if self.source is None:
            return 0
        return sum(self.write(c.data) for c in self.source.tick(self._true()))

    def next_due_ns(self) -> int | None:
        """The true time the source's next bytes are due (None: no source, or it has nothing left)."""
        return self.source.next_due_ns() if self.source is not None else None

    def follow(self, loop: LaterLoop, idle_s: float = 0.25) -> DueTimer:
        """Write each chunk from ``loop`` when it falls due (:class:`~appliance.fakes.pacing.DueTimer`).

        With nothing due (no source, a log played out) it looks again every ``idle_s``. Returns the timer.
        """
        return DueTimer(loop, self._true, self.next_due_ns, self.poll, idle_s=idle_s)

    def unplug(self) -> None:
        """Close the pty (the driver's reads fail) and remove the symlink, like a USB receiver pulled out."""
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        if self.link is not None:
            self.link.unlink(missing_ok=True)

    def replug(self) -> None:
        """A fresh pty behind the same symlink (a receiver plugged back in)."""
        if self._master is not None:
            self.unplug()
        self._open_pty()

    def close(self) -> None:
        self.unplug()


def replay(
    path: str | Path,
    out: PtyWriter | int,
    *,
    speed: float = 1.0,
    baud: int = 9600,
    sleep: Callable[[float], Any] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    """Write a receiver log into ``out`` (a :class:`PtyWriter` or a file descriptor), one burst a second.

    ``speed`` 2.0 plays twice as fast. Blocks until done; returns the bytes
    written. For tools and manual runs: tests drive :class:`LogReplay` on
    virtual time instead.
    """
    source = LogReplay.from_file(path, start_ns=0, baud=baud, delay_ns=0)
    t0 = monotonic()
    total = 0
    while not source.done:
        elapsed_ns = int((monotonic() - t0) * speed * NS_PER_S)
        for chunk in source.tick(elapsed_ns):
            total += out.write(chunk.data) if isinstance(out, PtyWriter) else os.write(out, chunk.data)
        nxt = source.next_due_ns()
        if nxt is not None:
            sleep(max(0.0, (nxt - elapsed_ns) / NS_PER_S / speed))
    return total
