"""The serial GPS driver: a pyserial port read from the one event loop, chunks stamped and fed to the NMEA decoder.

For each readable event the driver reads the local clock *first*, then the
bytes waiting (up to 4 KiB, non-blocking), and hands ``(bytes, now_ns)`` to
an :class:`~appliance.nmea.NmeaStream`, whose fixes go to ``on_fix``. The
clock reading is the moment the loop noticed the bytes: after the UART's
FIFO timeout and the wake-up, a few milliseconds after the first byte's stop
bit. That bias is steady and belongs to the NMEA offset (the ``offset`` of
the refclock line); PPS, not the serial port, carries the precise edge.

Opening: ``exclusive=True`` (an advisory ``flock``), so two stratum1
instances, or gpsd and us, do not share the port unknowingly. Open errors
are logged once with the likely fix (the wrong device name, the serial
console still on the port, the user not in ``dialout``).

Devices that vanish (USB receivers unplugged, a cable): a read error or end
of file closes the port and logs one line; a timer retries the open every
``retry_s`` seconds (quietly), and the recovery is logged. No exception
leaves the driver; :attr:`SerialGps.usable` says whether it is reading.

Baud rate detection (optional): :class:`BaudSearch` is the pure decision,
fed the bytes read at the rate being tried: a rate is *locked* when two
sentences with correct checksums have arrived; it is abandoned when
``dwell_s`` passes without that, or when 600 bytes have come with no good
sentence (a wrong rate reads as noise). The candidates are tried in turn,
round and round, starting with the last rate that worked. A locked rate is
not trusted for ever: when no NMEA line is recognised at it for ``hunt_s``
seconds (noise, as a receiver that fell back to its factory rate gives, or
silence), the search starts again, from that rate, and says so in the log
("no NMEA at 9600 baud for 10 s: searching again"), as gpsd hunts again
when packets stop being recognised.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from appliance.nmea.counters import NmeaCounters
from appliance.nmea.epoch import Fix
from appliance.nmea.link import SerialLink

log = logging.getLogger(__name__)

#: The rates GPS receivers ship with, the commonest first.
DEFAULT_BAUDS: tuple[int, ...] = (9600, 4800, 38400, 115200, 57600, 19200)
READ_SIZE = 4096
DEFAULT_RETRY_S = 3.0
#: With autobaud: seconds without a recognised NMEA line at the locked rate before the rate is searched again.
DEFAULT_HUNT_S = 10.0
#: The quiet time is checked this many times per ``hunt_s``.
HUNT_CHECKS = 5


class SerialPort(Protocol):
    """The part of :class:`serial.Serial` the driver uses."""

    baudrate: int

    def fileno(self) -> int: ...

    def close(self) -> None: ...

    def reset_input_buffer(self) -> None: ...


PortOpener = Callable[[str, int], SerialPort]


def open_serial(path: str, baud: int) -> SerialPort:
    """Open ``path`` at ``baud`` 8N1, non-blocking (``timeout=0``), exclusively locked; raises :class:`OSError`."""
    import serial  # type: ignore[import-untyped,unused-ignore]

    port: SerialPort = serial.Serial(path, baud, timeout=0, exclusive=True)
    return port


class FixStream(Protocol):
    """What the driver feeds: :class:`appliance.nmea.NmeaStream`."""

    def handed(self, data: bytes, now_ns: int) -> Iterable[Fix]: ...

    @property
    def stepped_ns(self) -> int: ...

    @property
    def counters(self) -> NmeaCounters: ...


class ReaderLoop(Protocol):
    """The part of :class:`appliance.io.loop.EventLoop` the driver uses."""

    def add_reader(self, fileobj: Any, callback: Callable[[], Any]) -> None: ...

    def remove_reader(self, fileobj: Any) -> None: ...

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Any: ...


# ---------------------------------------------------------------- baud detection (pure)

# A body is printable ASCII without the delimiters "$", "!" and "*".
_SENTENCE = re.compile(rb"[$!]([\x20\x22\x23\x25-\x29\x2b-\x7e]{1,100})\*([0-9A-Fa-f]{2})\r?\n")


def checksummed_sentences(data: bytes) -> int:
    """Return how many NMEA sentences in ``data`` carry a correct ``*hh`` checksum."""
    n = 0
    for m in _SENTENCE.finditer(data):
        x = 0
        for b in m.group(1):
            x ^= b
        n += x == int(m.group(2), 16)
    return n


class BaudDecision(enum.Enum):
    WAIT = "wait"  # keep reading at this rate
    LOCKED = "locked"  # this is the rate
    NEXT = "next"  # give up on this rate: switch to :attr:`BaudSearch.current`


class BaudSearch:
    """Which baud rate a receiver talks at, from the bytes read at each rate tried. Pure: no I/O, no clock.

    Feed the bytes read at :attr:`current` with :meth:`feed`; call
    :meth:`expire` when the dwell time at this rate has passed. On ``NEXT``
    the caller switches the port to the new :attr:`current`.

    >>> s = BaudSearch([9600, 4800])
    >>> s.feed(b"\\x8f\\xfe" * 400).value, s.current
    ('next', 4800)
    >>> s.feed(b"$GPZDA,1*55\\r\\n$GPZDA,2*56\\r\\n").value, s.locked
    ('locked', 4800)
    """

    def __init__(self, candidates: Sequence[int], *, need: int = 2, noise_limit: int = 600) -> None:
        if not candidates:
            raise ValueError("no baud rates to try")
        self._candidates = list(dict.fromkeys(candidates))
        self._index = 0
        self._need = need
        self._noise_limit = noise_limit
        self._buf = b""
        self._good = 0
        self._bytes = 0
        self.locked: int | None = None
        self.tried = 0

    @property
    def current(self) -> int:
        """The rate being tried (or the one locked)."""
        return self._candidates[self._index]

    def restart(self, first: int | None = None) -> None:
        """Search again (after the port was reopened), trying ``first`` (say, the last locked rate) first."""
        if first is not None:
            if first in self._candidates:
                self._candidates.remove(first)
            self._candidates.insert(0, first)
        self._index = 0
        self.locked = None
        self._clear()

    def feed(self, data: bytes) -> BaudDecision:
        """Take bytes read at :attr:`current`; decide."""
        if self.locked is not None:
            return BaudDecision.LOCKED
        self._bytes += len(data)
        buf = self._buf + data
        cut = max(buf.rfind(b"\n") + 1, len(buf) - 256)
        self._good += checksummed_sentences(buf[:cut])
        self._buf = buf[cut:]
        if self._good >= self._need:
            self.locked = self.current
            return BaudDecision.LOCKED
        if self._bytes >= self._noise_limit and self._good == 0:
            return self._advance()
        return BaudDecision.WAIT

    def expire(self) -> BaudDecision:
        """The dwell time at :attr:`current` is over: move on unless locked."""
        if self.locked is not None:
            return BaudDecision.LOCKED
        return self._advance()

    def _advance(self) -> BaudDecision:
        self._index = (self._index + 1) % len(self._candidates)
        self.tried += 1
        self._clear()
        return BaudDecision.NEXT

    def _clear(self) -> None:
        self._buf = b""
        self._good = 0
        self._bytes = 0


# ---------------------------------------------------------------- the driver


@dataclass(slots=True)
class SerialCounters:
    """What the driver did (mutable, one per driver)."""

    opens: int = 0
    open_failures: int = 0
    losses: int = 0  # usable -> unusable transitions (read error, EOF)
    chunks: int = 0
    bytes: int = 0
    fixes: int = 0
    baud_switches: int = 0
    baud_searches: int = 0  # a locked rate went quiet (no NMEA for hunt_s) and the search started again


def open_error_hint(path: str, exc: BaseException) -> str:
    """Return a one-line explanation of why ``path`` would not open, with the likely fix."""
    code = getattr(exc, "errno", None)
    if code == errno.ENOENT:
        return (
            f"{path}: no such device (HAT: enable_uart=1 in config.txt and use /dev/gps0 or /dev/serial0, "
            "but on a Pi 5 /dev/ttyAMA0: its serial0 is the debug UART; USB receivers appear as /dev/ttyACM0 "
            "or /dev/ttyUSB0)"
        )
    if code in (errno.EACCES, errno.EPERM):
        return f"{path}: permission denied (run as root or add the service user to group 'dialout')"
    if code in (errno.EAGAIN, errno.EBUSY):
        return (
            f"{path}: in use by another process (gpsd? a serial console: remove console=serial0,115200 "
            "from cmdline.txt or disable it in raspi-config)"
        )
    if code == errno.ENXIO or code == errno.ENODEV:
        return f"{path}: the device is not there (unplugged?)"
    return f"{path}: cannot open: {exc}"


class SerialGps:
    """One serial GPS receiver read from the event loop; see the module docstring.

    ``stream`` gets every chunk with the local time it was read (``now_ns``:
    the served clock, POSIX ns); each fix it returns goes to ``on_fix``.
    ``baud`` is the rate, or the first tried when ``autobaud`` is true (the
    :data:`DEFAULT_BAUDS`) or a list of rates. ``open_port`` opens the port
    (:func:`open_serial`; tests inject another).

    >>> gps = SerialGps(loop, "/dev/serial0", NmeaStream(policy), refclock.on_fix)  # doctest: +SKIP
    >>> gps.start()                                                                  # doctest: +SKIP
    """

    def __init__(
        self,
        loop: ReaderLoop,
        path: str,
        stream: FixStream,
        on_fix: Callable[[Fix], Any],
        *,
        baud: int = 9600,
        autobaud: bool | Sequence[int] = False,
        now_ns: Callable[[], int] = time.time_ns,
        retry_s: float = DEFAULT_RETRY_S,
        dwell_s: float = 2.5,
        hunt_s: float = DEFAULT_HUNT_S,
        open_port: PortOpener = open_serial,
    ) -> None:
        self.loop = loop
        self.path = path
        self.stream = stream
        self._on_fix = on_fix
        self._now = now_ns
        self.retry_s = retry_s
        self.dwell_s = dwell_s
        self.hunt_s = hunt_s
        self._open_port = open_port
        self.baud = baud
        self.search: BaudSearch | None = None
        if autobaud:
            rates = DEFAULT_BAUDS if autobaud is True else tuple(autobaud)
            self.search = BaudSearch([baud, *rates])
        self.counters = SerialCounters()
        self._port: SerialPort | None = None
        self._fd: int | None = None
        self._retry: Any = None
        self._dwell: Any = None
        self._hunt: Any = None  # the quiet check while a searched rate is locked
        self._heard = 0  # the stream's recognised lines at the last quiet check
        self._quiet_checks = 0  # quiet checks in a row that found no new NMEA line
        self._held: list[tuple[bytes, int]] = []  # chunks read while searching the baud rate
        self._running = False
        self._lost_since: int | None = None  # local ns when the outage began (None: not in an outage)
        self._reported = False  # the current outage has been logged
        # when the port was opened, bytes last came, an NMEA line was last recognised: local ns minus the
        # clock steps restated by then (stream.stepped_ns), so that adding today's sum puts them on today's scale
        self._opened_at: int | None = None
        self._bytes_at: int | None = None
        self._nmea_at: int | None = None
        self._closed_why = "not opened yet"

    # -- state

    @property
    def usable(self) -> bool:
        """True while the port is open and (with autobaud) the rate is locked: bytes are being decoded."""
        return self._port is not None and (self.search is None or self.search.locked is not None)

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def link(self) -> SerialLink:
        """The port as status sees it (:func:`appliance.nmea.link.link_state` judges it), on the clock's scale now."""
        stepped = self.stream.stepped_ns

        def now_scale(t: int | None) -> int | None:
            return None if t is None else t + stepped

        searching = self.search is not None and self.search.locked is None
        return SerialLink(
            path=self.path,
            is_open=self._port is not None,
            baud=self.search.current if self.search is not None and searching else self.baud,
            autobaud=self.search is not None,
            searching=searching,
            opened_ns=now_scale(self._opened_at),
            bytes_ns=now_scale(self._bytes_at),
            nmea_ns=now_scale(self._nmea_at),
            closed_why="" if self._port is not None else self._closed_why,
            nmea=self.stream.counters,
            losses=self.counters.losses,
            open_failures=self.counters.open_failures,
            baud_switches=self.counters.baud_switches,
            baud_searches=self.counters.baud_searches,
        )

    # -- life cycle

    def start(self) -> None:
        """Open the port (or start retrying): never raises for a missing or busy device."""
        self._running = True
        self._try_open()

    def stop(self) -> None:
        """Close the port and cancel the timers."""
        self._running = False
        for t in (self._retry, self._dwell):
            if t is not None:
                t.cancel()
        self._retry = self._dwell = None
        self._close()

    def _try_open(self) -> None:
        self._retry = None
        if not self._running:
            return
        baud = self.search.current if self.search is not None else self.baud
        try:
            port = self._open_port(self.path, baud)
        except (OSError, ValueError) as e:  # serial.SerialException is an OSError
            self.counters.open_failures += 1
            if self._closed_why.startswith("lost: "):  # a device that worked and vanished: the loss says why
                code = getattr(e, "errno", None)  # pyserial's strerror is a sentence with the path in it
                why = os.strerror(code) if isinstance(code, int) else str(e)
                self._closed_why = f"{self._closed_why.split('; ')[0]}; not back: {why}"
            else:  # never opened: the likely fix
                self._closed_why = open_error_hint(self.path, e).removeprefix(f"{self.path}: ")
            if self._lost_since is None:
                self._lost_since = self._now()
            if not self._reported:
                self._reported = True
                log.warning("GPS %s; retrying every %g s", open_error_hint(self.path, e), self.retry_s)
            else:
                log.debug("GPS %s: still cannot open: %s", self.path, e)
            self._retry = self.loop.call_later(self.retry_s, self._try_open)
            return
        self._port = port
        self._fd = port.fileno()
        self._opened_at = self._now() - self.stream.stepped_ns
        self.counters.opens += 1
        self.loop.add_reader(self._fd, self._on_readable)
        if self._lost_since is not None and self._reported:
            away = (self._now() - self._lost_since) / 1e9
            log.info("GPS %s is back after %.0f s (%d baud)", self.path, away, baud)
        else:
            log.info("GPS %s open at %d baud", self.path, baud)
        self._lost_since = None
        self._reported = False
        if self.search is not None:
            self.search.restart(self.search.locked or None)
            self._held.clear()
            self._arm_dwell()

    def _close(self) -> None:
        if self._hunt is not None:
            self._hunt.cancel()
            self._hunt = None
        port, self._port = self._port, None
        fd, self._fd = self._fd, None
        if fd is not None:
            self.loop.remove_reader(fd)
        if port is not None:
            try:
                port.close()
            except OSError:
                pass

    def _lose(self, reason: str) -> None:
        """The device failed: close, log one line, retry from a timer."""
        self.counters.losses += 1
        self._close()
        if self._dwell is not None:
            self._dwell.cancel()
            self._dwell = None
        self._lost_since = self._now()
        self._reported = True
        self._closed_why = f"lost: {reason}"
        log.warning("GPS %s lost (%s); retrying every %g s", self.path, reason, self.retry_s)
        if self._running and self._retry is None:
            self._retry = self.loop.call_later(self.retry_s, self._try_open)

    # -- reading

    def _on_readable(self) -> None:
        fd = self._fd
        if fd is None:
            return
        now = self._now()  # before the read: the nearest we get to the first byte
        try:
            data = os.read(fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._lose(e.strerror or str(e))
            return
        if not data:
            self._lose("end of file")
            return
        self.counters.chunks += 1
        self.counters.bytes += len(data)
        self._bytes_at = now - self.stream.stepped_ns
        if self.search is not None and self.search.locked is None:
            self._search(data, now)
        else:
            self._feed(data, now)

    def _feed(self, data: bytes, now: int) -> None:
        heard, at = self.stream.counters.recognised, now - self.stream.stepped_ns  # before a fix steps the clock
        for fix in self.stream.handed(data, now):
            self.counters.fixes += 1
            self._on_fix(fix)
        if self.stream.counters.recognised != heard:
            self._nmea_at = at

    # -- baud rate detection

    def _search(self, data: bytes, now: int) -> None:
        assert self.search is not None
        self._held.append((data, now - self.stream.stepped_ns))  # restated by the steps made meanwhile
        decision = self.search.feed(data)
        if decision is BaudDecision.LOCKED:
            self._locked()
        elif decision is BaudDecision.NEXT:
            self._switch()

    def _locked(self) -> None:
        assert self.search is not None
        if self._dwell is not None:
            self._dwell.cancel()
            self._dwell = None
        self.baud = self.search.current
        log.info("GPS %s: receiver talks at %d baud", self.path, self.baud)
        held, self._held = self._held, []
        for data, then in held:
            self._feed(data, then + self.stream.stepped_ns)
        self._heard = self.stream.counters.recognised
        self._quiet_checks = 0
        self._arm_hunt()

    def _arm_hunt(self) -> None:
        if self._hunt is not None:
            self._hunt.cancel()
        self._hunt = self.loop.call_later(self.hunt_s / HUNT_CHECKS, self._hunt_check)

    def _hunt_check(self) -> None:
        """While a searched rate is locked: search again once no NMEA line has been recognised for ``hunt_s``."""
        self._hunt = None
        if self.search is None or self.search.locked is None or self._port is None:
            return
        heard = self.stream.counters.recognised
        if heard != self._heard:
            self._heard = heard
            self._quiet_checks = 0
        else:
            self._quiet_checks += 1
        if self._quiet_checks < HUNT_CHECKS:
            self._arm_hunt()
            return
        quiet_s = self._quiet_checks * self.hunt_s / HUNT_CHECKS
        log.warning("GPS %s: no NMEA at %d baud for %.0f s: searching again", self.path, self.baud, quiet_s)
        self.counters.baud_searches += 1
        self.search.restart(self.search.locked)
        self._held.clear()
        self._arm_dwell()

    def _arm_dwell(self) -> None:
        if self._dwell is not None:
            self._dwell.cancel()
        self._dwell = self.loop.call_later(self.dwell_s, self._dwell_over)

    def _dwell_over(self) -> None:
        self._dwell = None
        if self.search is None or self._port is None:
            return
        if self.search.expire() is BaudDecision.NEXT:
            self._switch()

    def _switch(self) -> None:
        assert self.search is not None
        self._held.clear()
        port = self._port
        if port is None:
            return
        self.counters.baud_switches += 1
        try:
            port.baudrate = self.search.current
            port.reset_input_buffer()
        except (OSError, ValueError) as e:
            self._lose(f"cannot set {self.search.current} baud: {e}")
            return
        log.debug("GPS %s: trying %d baud", self.path, self.search.current)
        self._arm_dwell()
