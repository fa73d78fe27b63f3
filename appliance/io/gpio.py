"""PPS from a GPIO line in user space: libgpiod edge events, gpiozero as the last resort.

Prefer the kernel PPS driver (``dtoverlay=pps-gpio,gpiopin=N`` and
:class:`appliance.io.pps.KernelPps`): it timestamps in the interrupt handler
and can feed the kernel's own PPS discipline. This module is for when the
overlay cannot be used (the pin is claimed, a board without the overlay, a
container without ``/dev/pps0``). Three backends, in order of preference:

1. **libgpiod v2** (the ``gpiod`` Python module, 2.x): edge events carry a
   kernel timestamp taken in the interrupt handler. We ask for
   ``event_clock=REALTIME`` (Linux 5.11 and later); when the kernel refuses,
   the events carry ``CLOCK_MONOTONIC`` and are converted (below).
2. **libgpiod v1** (``gpiod`` 1.x, Debian's ``python3-libgpiod`` before
   trixie): the event timestamps are ``CLOCK_REALTIME`` up to Linux 5.6 and
   ``CLOCK_MONOTONIC`` from 5.7 on, and the API does not say which. We tell
   by the value: a realtime stamp is decades since 1970, a monotonic one is
   the uptime, so whichever clock reads nearer is the one.
3. **gpiozero**: the edge is timestamped in Python, in gpiozero's callback
   thread, after a wake-up: tens of microseconds to milliseconds of jitter.
   A warning is logged; it serves, but poorly.

Converting ``CLOCK_MONOTONIC`` to ``CLOCK_REALTIME``: both clocks run at the
same (NTP-adjusted) rate; they differ only by the offset that clock steps
change. We read ``monotonic, realtime, monotonic`` at conversion time and add
``realtime - midpoint(monotonic)`` to the event's stamp. That is exact
unless the clock is stepped between the edge and the conversion (at most one
poll interval), in which case the pulse is off by the step, like every other
timestamp taken across a step.

The results are :class:`~appliance.refclock.sample.Pulse` values, read with
``fetch()`` like :class:`~appliance.io.pps.KernelPps`, so the same
:class:`~appliance.io.pps.PpsPoller` drives them from the event loop.
``gpiod`` and ``gpiozero`` are imported lazily (through the ``importer``
argument, which tests replace with fakes).

Wiring: the receiver's PPS output to a GPIO pin (BCM numbering) and ground;
3.3 V logic only. The header's GPIOs are lines of ``/dev/gpiochip0`` (on a
Pi 5 with a kernel before 6.6.45, ``/dev/gpiochip4``).

>>> pps = open_gpio_pps(18)                   # doctest: +SKIP
>>> pps.fetch()                               # doctest: +SKIP
Pulse(local_ns=1711195200000012345, sequence=17)
"""

from __future__ import annotations

import collections
import importlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from types import ModuleType
from typing import Any, Literal

from appliance.refclock.sample import Pulse
from appliance.refclock.setup import GPIO_CHIP
from appliance.timebase import NS_PER_S

log = logging.getLogger(__name__)

GpioEdge = Literal["rising", "falling"]
ClockName = Literal["realtime", "monotonic", "auto"]
Importer = Callable[[str], ModuleType]
DEFAULT_CHIP = GPIO_CHIP  # the chip whose lines `ppspath gpio:N` names (check-config checks it too)
CONSUMER = "stratum1-pps"


class GpioError(Exception):
    """A GPIO PPS line cannot be used; the message says why and what to install or change."""


class ClockMapper:
    """Maps kernel event timestamps (realtime or monotonic ns) to ``CLOCK_REALTIME`` ns; see the module docstring.

    ``realtime_ns`` and ``monotonic_ns`` read the two clocks (injectable);
    ``from_kernel_ns`` then maps realtime onto the served clock, if it is not
    the kernel's.

    >>> m = ClockMapper(realtime_ns=lambda: 1_700_000_000_000_000_000, monotonic_ns=lambda: 5_000_000_000)
    >>> m.to_local(4_000_000_000, "monotonic")  # one second before now, on the monotonic clock
    1699999999000000000
    >>> m.to_local(1_699_999_999_000_000_000, "auto")  # nearer realtime: taken as it is
    1699999999000000000
    """

    def __init__(
        self,
        realtime_ns: Callable[[], int] = time.time_ns,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        from_kernel_ns: Callable[[int], int] | None = None,
    ) -> None:
        self._realtime = realtime_ns
        self._monotonic = monotonic_ns
        self._from_kernel = from_kernel_ns

    def offset_ns(self) -> int:
        """Return ``CLOCK_REALTIME - CLOCK_MONOTONIC`` now (ns), read between two monotonic readings."""
        m1 = self._monotonic()
        r = self._realtime()
        m2 = self._monotonic()
        return r - (m1 + m2) // 2

    def is_realtime(self, stamp_ns: int) -> bool:
        """Guess the clock of ``stamp_ns``: True when it is nearer the realtime clock than the monotonic one."""
        return abs(self._realtime() - stamp_ns) < abs(self._monotonic() - stamp_ns)

    def to_local(self, stamp_ns: int, clock: ClockName) -> int:
        """Return the event at ``stamp_ns`` (on ``clock``) as a local time in POSIX ns."""
        realtime = clock == "realtime" or (clock == "auto" and self.is_realtime(stamp_ns))
        t = stamp_ns if realtime else stamp_ns + self.offset_ns()
        return self._from_kernel(t) if self._from_kernel is not None else t


class _LatestPulse:
    """Keeps the newest pulse for ``fetch()``."""

    def __init__(self) -> None:
        self.latest: Pulse | None = None


class GpiodV2Pps(_LatestPulse):
    """PPS edges from one line through libgpiod 2.x (``gpiod.request_lines``)."""

    def __init__(
        self, gpiod: ModuleType, chip: str, line: int, edge: GpioEdge = "rising", mapper: ClockMapper | None = None
    ) -> None:
        super().__init__()
        self._gpiod = gpiod
        self._mapper = mapper if mapper is not None else ClockMapper()
        self._line = line
        self._want = gpiod.EdgeEvent.Type.RISING_EDGE if edge == "rising" else gpiod.EdgeEvent.Type.FALLING_EDGE
        detect = gpiod.line.Edge.RISING if edge == "rising" else gpiod.line.Edge.FALLING
        try:
            self._request, self.clock = self._request_lines(chip, line, detect)
        except FileNotFoundError:
            raise GpioError(f"{chip}: no such GPIO chip") from None
        except OSError as e:
            raise GpioError(f"{chip} line {line}: cannot request edge events: {e.strerror or e} (in use?)") from None

    def _request_lines(self, chip: str, line: int, detect: Any) -> tuple[Any, ClockName]:
        g = self._gpiod
        clocks: tuple[tuple[Any, ClockName], ...] = (
            (g.line.Clock.REALTIME, "realtime"),
            (g.line.Clock.MONOTONIC, "monotonic"),
        )
        for clock, name in clocks:
            settings = g.LineSettings(edge_detection=detect, event_clock=clock)
            try:
                return g.request_lines(chip, consumer=CONSUMER, config={line: settings}), name
            except OSError as e:
                if name == "monotonic" or isinstance(e, FileNotFoundError | PermissionError):
                    raise
                log.info("%s: kernel refused realtime edge timestamps (%s); converting from monotonic", chip, e)
        raise AssertionError("unreachable")

    def fetch(self, timeout_s: float = 0.0) -> Pulse | None:
        """Read the pending edge events (waiting up to ``timeout_s``) and return the newest pulse."""
        req = self._request
        if req is None:
            raise OSError("GPIO line released")
        if req.wait_edge_events(timedelta(seconds=timeout_s)):
            for ev in req.read_edge_events():
                if ev.event_type == self._want and ev.line_offset == self._line:
                    self.latest = Pulse(self._mapper.to_local(int(ev.timestamp_ns), self.clock), int(ev.line_seqno))
        return self.latest

    def close(self) -> None:
        req, self._request = self._request, None
        if req is not None:
            req.release()


class GpiodV1Pps(_LatestPulse):
    """PPS edges from one line through libgpiod 1.x (``gpiod.Chip(...).get_line(n).request(...)``)."""

    def __init__(
        self, gpiod: ModuleType, chip: str, line: int, edge: GpioEdge = "rising", mapper: ClockMapper | None = None
    ) -> None:
        super().__init__()
        self._mapper = mapper if mapper is not None else ClockMapper()
        self._want = gpiod.LineEvent.RISING_EDGE if edge == "rising" else gpiod.LineEvent.FALLING_EDGE
        req_type = gpiod.LINE_REQ_EV_RISING_EDGE if edge == "rising" else gpiod.LINE_REQ_EV_FALLING_EDGE
        self._seq = 0
        try:
            self._chip = gpiod.Chip(chip)
        except FileNotFoundError:
            raise GpioError(f"{chip}: no such GPIO chip") from None
        except OSError as e:
            raise GpioError(f"{chip}: cannot open: {e.strerror or e}") from None
        try:
            self._line: Any = self._chip.get_line(line)
            self._line.request(consumer=CONSUMER, type=req_type)
        except OSError as e:
            self._chip.close()
            raise GpioError(f"{chip} line {line}: cannot request edge events: {e.strerror or e} (in use?)") from None

    def fetch(self, timeout_s: float = 0.0) -> Pulse | None:
        """Read the pending edge events (waiting up to ``timeout_s``) and return the newest pulse."""
        line = self._line
        if line is None:
            raise OSError("GPIO line released")
        whole = int(timeout_s)
        wait_ns = int((timeout_s - whole) * NS_PER_S)
        while line.event_wait(sec=whole, nsec=wait_ns):
            ev = line.event_read()
            whole = wait_ns = 0
            if ev.type == self._want:
                self._seq += 1
                stamp = int(ev.sec) * NS_PER_S + int(ev.nsec)
                self.latest = Pulse(self._mapper.to_local(stamp, "auto"), self._seq)
        return self.latest

    def close(self) -> None:
        line, self._line = self._line, None
        if line is not None:
            line.release()
            self._chip.close()


class GpiozeroPps(_LatestPulse):
    """PPS edges through gpiozero callbacks, timestamped in Python (poor: see the module docstring)."""

    def __init__(
        self,
        gpiozero: ModuleType,
        line: int,
        edge: GpioEdge = "rising",
        *,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        super().__init__()
        self._now = now_ns
        self._seq = 0
        self._queue: collections.deque[Pulse] = collections.deque(maxlen=64)
        self._cond = threading.Condition()
        try:
            self._device: Any = gpiozero.DigitalInputDevice(line, pull_up=None, active_state=True)
        except Exception as e:  # gpiozero raises its own hierarchy (BadPinFactory, GPIOPinInUse...)
            raise GpioError(f"GPIO{line}: gpiozero cannot use the pin: {e}") from None
        if edge == "rising":
            self._device.when_activated = self._edge
        else:
            self._device.when_deactivated = self._edge
        log.warning(
            "GPIO%d: PPS timestamped in Python via gpiozero (expect 0.1-1 ms of jitter); "
            "install the gpiod module or use dtoverlay=pps-gpio for kernel timestamps",
            line,
        )

    def _edge(self) -> None:
        """gpiozero's callback (its thread): timestamp first, then queue."""
        t = self._now()
        with self._cond:
            self._seq += 1
            self._queue.append(Pulse(t, self._seq))
            self._cond.notify_all()

    def fetch(self, timeout_s: float = 0.0) -> Pulse | None:
        """Return the newest pulse, waiting up to ``timeout_s`` for one if none is queued."""
        with self._cond:
            if not self._queue and timeout_s > 0:
                self._cond.wait(timeout_s)
            while self._queue:
                self.latest = self._queue.popleft()
            return self.latest

    def close(self) -> None:
        dev, self._device = self._device, None
        if dev is not None:
            dev.close()


GpioPps = GpiodV2Pps | GpiodV1Pps | GpiozeroPps


def open_gpio_pps(
    line: int,
    *,
    chip: str = DEFAULT_CHIP,
    edge: GpioEdge = "rising",
    backend: Literal["auto", "gpiod", "gpiozero"] = "auto",
    importer: Importer = importlib.import_module,
    mapper: ClockMapper | None = None,
) -> GpioPps:
    """Open PPS on GPIO ``line`` (BCM number) with the best backend available; see the module docstring.

    Raises :class:`GpioError` when no backend can be imported or the line
    cannot be used.
    """
    if edge not in ("rising", "falling"):
        raise ValueError(f"edge must be 'rising' or 'falling', not {edge!r}")
    why: list[str] = []
    if backend in ("auto", "gpiod"):
        try:
            gpiod = importer("gpiod")
        except ImportError as e:
            why.append(f"gpiod: {e}")
        else:
            if hasattr(gpiod, "request_lines"):
                return GpiodV2Pps(gpiod, chip, line, edge, mapper)
            if hasattr(gpiod, "Chip") and hasattr(gpiod, "LINE_REQ_EV_RISING_EDGE"):
                return GpiodV1Pps(gpiod, chip, line, edge, mapper)
            why.append("gpiod: module has neither the v2 nor the v1 API")
    if backend in ("auto", "gpiozero"):
        try:
            gpiozero = importer("gpiozero")
        except ImportError as e:
            why.append(f"gpiozero: {e}")
        else:
            return GpiozeroPps(gpiozero, line, edge)
    raise GpioError(
        f"GPIO{line}: no GPIO backend ({'; '.join(why)}); install libgpiod's Python module "
        "('apt install python3-libgpiod' or 'pip install gpiod'), or use dtoverlay=pps-gpio,gpiopin="
        f"{line} with /dev/pps0"
    )
