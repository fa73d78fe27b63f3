"""A fake PPS source: edges at whole true seconds, timestamped by a local clock, with verbs for tests.

The fake knows two clocks, both passed in (no clock is read otherwise): the
*true* time (``true_ns()``: what GPS time would say) and the *local* clock
(``local_ns()``: what the appliance's clock reads, the simulated or the real
one). An edge at true time ``T`` is stamped

    local_ns() - (true_ns() - T) + offset_ns + round(gauss(0, jitter_ns))

that is, the local clock's reading at the edge (exact when the caller
advanced true time to the edge; otherwise the local clock's rate error over
the short delay is ignored), plus a fixed offset (cable delay, a receiver's
bias) and Gaussian jitter from a seeded :class:`random.Random`. In real
time the two readings are taken one after the other and the stamp comes out
early by the time between them (6-8 us in ``serve --simulate``): where the
local clock's reading at any true time is known (``local_at``: the soft
clock's map of the host clock), the edge is stamped ``local_at(T)`` instead,
as the kernel stamps a real edge, and no clock is read.

Two ways to drive it:

- :meth:`FakePps.tick` emits every edge whose true second has passed since the
  last tick (virtual-time simulations, or a timer in real time);
- :meth:`FakePps.drive_pulse` emits one edge now, for the true time given
  (tests that want each pulse by hand).

Verbs: :meth:`~FakePps.stop` and :meth:`~FakePps.resume` (the receiver
lost its fix and squelched PPS), :meth:`~FakePps.skip` (lose the next n
edges), :meth:`~FakePps.glitch` (a spurious edge). :class:`FakePpsDevice`
gives it :class:`~appliance.io.pps.KernelPps`'s ``fetch``/``close``
interface, and :class:`FakePpsIoctl` goes one level lower: it answers the
``PPS_*`` ioctls, so the real :class:`~appliance.io.pps.KernelPps` can be
run against the fake.
"""

from __future__ import annotations

import ctypes
import errno
import random
from collections.abc import Callable
from typing import Any

from appliance.io.pps import (
    PPS_API_VERS,
    PPS_CANWAIT,
    PPS_CAPTUREASSERT,
    PPS_CAPTUREBOTH,
    PPS_FETCH,
    PPS_GETCAP,
    PPS_GETPARAMS,
    PPS_OFFSETASSERT,
    PPS_SETPARAMS,
    PPS_TSFMT_TSPEC,
    PpsFdata,
    PpsKparams,
)
from appliance.refclock.sample import Pulse
from appliance.timebase import NS_PER_S


class FakePps:
    """Edges at whole true seconds; see the module docstring.

    >>> t = [1_000 * 10**9]
    >>> pps = FakePps(lambda: t[0], lambda: t[0] + 5_000)
    >>> t[0] += 2 * 10**9 + 300
    >>> [(p.local_ns - 1_000 * 10**9, p.sequence) for p in pps.tick()]
    [(1000005000, 1), (2000005000, 2)]
    """

    def __init__(
        self,
        true_ns: Callable[[], int],
        local_ns: Callable[[], int],
        *,
        jitter_ns: float = 0.0,
        offset_ns: int = 0,
        seed: int = 0,
        rng: random.Random | None = None,
        local_at: Callable[[int], int] | None = None,
    ) -> None:
        self._true = true_ns
        self._local = local_ns
        self._local_at = local_at
        self.jitter_ns = jitter_ns
        self.offset_ns = offset_ns
        self._rng = rng if rng is not None else random.Random(seed)
        self._next_edge = (true_ns() // NS_PER_S + 1) * NS_PER_S  # the first whole second after now
        self._running = True
        self._skip = 0
        self.sequence = 0
        self.pulses: list[Pulse] = []  # every pulse emitted, in order (for tests)
        self.latest: Pulse | None = None

    @property
    def running(self) -> bool:
        return self._running

    @property
    def next_edge_ns(self) -> int:
        """The true time of the next whole second :meth:`tick` will pass (an edge unless stopped or skipped)."""
        return self._next_edge

    def stop(self) -> None:
        """No edges until :meth:`resume` (a receiver squelches PPS without a fix)."""
        self._running = False

    def resume(self) -> None:
        """Edges again, from the next whole true second."""
        if not self._running:
            self._running = True
            self._next_edge = (self._true() // NS_PER_S + 1) * NS_PER_S

    def skip(self, n: int = 1) -> None:
        """Lose the next ``n`` edges (a missed interrupt, a noisy line)."""
        self._skip += n

    def tick(self) -> list[Pulse]:
        """Emit the edges of every whole true second up to now (none while stopped); return them."""
        now = self._true()
        out: list[Pulse] = []
        while self._next_edge <= now:
            edge = self._next_edge
            self._next_edge += NS_PER_S
            if not self._running:
                continue
            if self._skip:
                self._skip -= 1
                continue
            out.append(self._emit(edge))
        return out

    def drive_pulse(self, true_ns: int) -> Pulse:
        """Emit one edge for true time ``true_ns`` now (regardless of stop/skip); return it."""
        if true_ns >= self._next_edge:
            self._next_edge = (true_ns // NS_PER_S + 1) * NS_PER_S
        return self._emit(true_ns)

    def glitch(self) -> Pulse:
        """Emit a spurious edge at the current true time (not on a second)."""
        return self._emit(self._true())

    def _emit(self, edge_true_ns: int) -> Pulse:
        if self._local_at is not None:
            local = self._local_at(edge_true_ns) + self.offset_ns
        else:
            local = self._local() - (self._true() - edge_true_ns) + self.offset_ns
        if self.jitter_ns:
            local += round(self._rng.gauss(0.0, self.jitter_ns))
        self.sequence = (self.sequence + 1) & 0xFFFF_FFFF
        pulse = Pulse(local, self.sequence)
        self.latest = pulse
        self.pulses.append(pulse)
        return pulse

    def device(self) -> FakePpsDevice:
        """This fake with :class:`~appliance.io.pps.KernelPps`'s interface."""
        return FakePpsDevice(self)


class FakePpsDevice:
    """A :class:`FakePps` behind ``fetch``/``close``, the interface of :class:`~appliance.io.pps.KernelPps`.

    ``fetch`` ticks the fake and returns the newest pulse, like ``PPS_FETCH``
    with a zero timeout (a timeout is ignored: nothing waits on virtual
    time). After :meth:`vanish`, ``fetch`` raises ``OSError(ENODEV)`` as a
    device that was unplugged does, until :meth:`reappear`.
    """

    def __init__(self, fake: FakePps) -> None:
        self.fake = fake
        self.closed = False
        self._gone = False

    def vanish(self) -> None:
        self._gone = True

    def reappear(self) -> None:
        self._gone = False

    def fetch(self, timeout_s: float = 0.0) -> Pulse | None:
        if self.closed:
            raise OSError(errno.EBADF, "closed")
        if self._gone:
            raise OSError(errno.ENODEV, "No such device")
        self.fake.tick()
        return self.fake.latest

    def close(self) -> None:
        self.closed = True


class FakePpsIoctl:
    """Answers the Linux ``PPS_*`` ioctls from a :class:`FakePps`: inject it as ``KernelPps(ioctl=...)``.

    ``caps`` is what ``PPS_GETCAP`` reports; ``mode`` the current mode
    (``pps-gpio``'s default: capture and offset assert). ``allow_set`` False
    makes ``PPS_SETPARAMS`` fail with ``EPERM`` (no ``CAP_SYS_TIME``).
    ``calls`` records each request number. Only assert edges come from the
    fake; the clear sequence stays 0.
    """

    def __init__(
        self,
        fake: FakePps,
        *,
        caps: int = PPS_CAPTUREBOTH | PPS_OFFSETASSERT | PPS_CANWAIT | PPS_TSFMT_TSPEC,
        mode: int = PPS_CAPTUREASSERT | PPS_OFFSETASSERT | PPS_CANWAIT | PPS_TSFMT_TSPEC,
        allow_set: bool = True,
    ) -> None:
        self.fake = fake
        self.caps = caps
        self.mode = mode
        self.allow_set = allow_set
        self.calls: list[int] = []

    def opener(self, path: str) -> int:
        """An ``opener`` for :class:`~appliance.io.pps.KernelPps` that opens nothing (fd 1000)."""
        return 1000

    def __call__(self, fd: int, request: int, buf: bytearray) -> Any:
        self.calls.append(request)
        if request == PPS_GETCAP:
            ctypes.c_int.from_buffer(buf).value = self.caps
        elif request == PPS_GETPARAMS:
            p = PpsKparams.from_buffer(buf)
            p.api_version = PPS_API_VERS
            p.mode = self.mode
        elif request == PPS_SETPARAMS:
            if not self.allow_set:
                raise PermissionError(errno.EPERM, "Operation not permitted")
            mode = PpsKparams.from_buffer(buf).mode
            if not mode & PPS_CAPTUREBOTH or mode & ~self.caps:
                raise OSError(errno.EINVAL, "Invalid argument")
            self.mode = mode
        elif request == PPS_FETCH:
            data = PpsFdata.from_buffer(buf)
            before = self.fake.sequence
            self.fake.tick()
            waiting = data.timeout.sec or data.timeout.nsec
            if waiting and self.fake.sequence == before:
                raise TimeoutError(errno.ETIMEDOUT, "Connection timed out")
            latest = self.fake.latest
            if latest is not None and self.mode & PPS_CAPTUREASSERT:
                data.info.assert_sequence = latest.sequence or 0
                data.info.assert_tu.sec, nsec = divmod(latest.local_ns, NS_PER_S)
                data.info.assert_tu.nsec = nsec
            data.info.current_mode = self.mode
        else:
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")
        return 0
