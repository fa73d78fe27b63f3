"""The Linux kernel PPS API (RFC 2783) on ``/dev/ppsN``, through ``ioctl``, and a poller for the event loop.

The kernel timestamps each PPS edge in its interrupt handler (``pps-gpio``
for a GPIO line, ``pps-ldisc`` for a serial DCD line), so the timestamps are
as good as the Pi can do: a few microseconds of jitter, ``CLOCK_REALTIME``.

The ioctls and structures are Linux's ``include/uapi/linux/pps.h``::

    struct pps_ktime  { __s64 sec; __s32 nsec; __u32 flags; };           16 bytes
    struct pps_kinfo  { __u32 assert_sequence; __u32 clear_sequence;
                        struct pps_ktime assert_tu; struct pps_ktime clear_tu;
                        int current_mode; };                              48 bytes (44 on i386)
    struct pps_kparams { int api_version; int mode;
                        struct pps_ktime assert_off_tu, clear_off_tu; };   40 bytes
    struct pps_fdata  { struct pps_kinfo info; struct pps_ktime timeout; } 64 bytes (60 on i386)

    PPS_GETPARAMS  _IOR('p', 0xa1, struct pps_kparams *)
    PPS_SETPARAMS  _IOW('p', 0xa2, struct pps_kparams *)
    PPS_GETCAP     _IOR('p', 0xa3, int *)
    PPS_FETCH      _IOWR('p', 0xa4, struct pps_fdata *)

Two traps, both handled here:

- the ioctls are declared with *pointer* types, so the size field of the
  request number is ``sizeof(void *)``: 8 on 64-bit (``PPS_FETCH`` is
  ``0xc00870a4`` on x86-64 and arm64), 4 on 32-bit ARM (``0xc00470a4``).
  The numbers are computed from :func:`ctypes.sizeof` of a pointer, never
  written down;
- ``__s64`` is 8-aligned on x86-64, arm64 and 32-bit ARM EABI (``pps_kinfo``
  has 4 bytes of tail padding: 48 bytes) but 4-aligned on i386 (44 bytes).
  The structures are :mod:`ctypes` structures with the platform's native
  alignment, which is the kernel's. The direction bits are the generic
  ones (x86 and ARM); PowerPC, MIPS and SPARC number them differently and
  are not supported.

Reading: ``PPS_FETCH`` with a zero timeout returns at once with the last
assert and clear events and their sequence numbers (a non-zero timeout waits
for the next event or fails with ``ETIMEDOUT``). A PPS device has no file
readiness to wait on, so :class:`PpsPoller` fetches with a zero timeout from
an event-loop timer every 150 ms and hands up each new sequence number once:
the timestamp is the kernel's, so polling adds no error, only up to 150 ms of
latency before the pulse is used.

Setting the mode (``PPS_SETPARAMS``, to capture the chosen edge) needs
``CAP_SYS_TIME``. Without it, :class:`KernelPps` carries on when the device
already captures that edge (``pps-gpio`` captures assert by default) and
fails with a clear error otherwise.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
from collections.abc import Callable
from typing import Any, Literal, Protocol

from appliance.refclock.sample import Pulse
from appliance.timebase import NS_PER_S

log = logging.getLogger(__name__)

Edge = Literal["assert", "clear"]


class PpsKtime(ctypes.Structure):
    """``struct pps_ktime``: a timestamp or a timeout."""

    _fields_ = [("sec", ctypes.c_int64), ("nsec", ctypes.c_int32), ("flags", ctypes.c_uint32)]


class PpsKinfo(ctypes.Structure):
    """``struct pps_kinfo``: the last assert and clear events."""

    _fields_ = [
        ("assert_sequence", ctypes.c_uint32),
        ("clear_sequence", ctypes.c_uint32),
        ("assert_tu", PpsKtime),
        ("clear_tu", PpsKtime),
        ("current_mode", ctypes.c_int),
    ]


class PpsKparams(ctypes.Structure):
    """``struct pps_kparams``: API version, mode bits, offset compensation."""

    _fields_ = [
        ("api_version", ctypes.c_int),
        ("mode", ctypes.c_int),
        ("assert_off_tu", PpsKtime),
        ("clear_off_tu", PpsKtime),
    ]


class PpsFdata(ctypes.Structure):
    """``struct pps_fdata``: what ``PPS_FETCH`` reads (info) and takes (timeout)."""

    _fields_ = [("info", PpsKinfo), ("timeout", PpsKtime)]


# Mode bits (RFC 2783 section 3.3, linux/pps.h).
PPS_CAPTUREASSERT = 0x01
PPS_CAPTURECLEAR = 0x02
PPS_CAPTUREBOTH = 0x03
PPS_OFFSETASSERT = 0x10
PPS_OFFSETCLEAR = 0x20
PPS_CANWAIT = 0x100
PPS_TSFMT_TSPEC = 0x1000
PPS_API_VERS = 1
#: ``pps_ktime.flags`` bit: "no timeout" (``PPS_FETCH`` would wait forever; never used here).
PPS_TIME_INVALID = 0x1

# asm-generic/ioctl.h: nr 8 bits, type 8 bits, size 14 bits, dir 2 bits.
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = 8
_IOC_SIZESHIFT = 16
_IOC_DIRSHIFT = 30
_IOC_WRITE = 1
_IOC_READ = 2


def _ioc(direction: int, kind: str, nr: int, size: int) -> int:
    if not 0 <= size < 1 << 14:
        raise ValueError(f"ioctl size out of range: {size}")
    return (
        (direction << _IOC_DIRSHIFT) | (size << _IOC_SIZESHIFT) | (ord(kind) << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT)
    )


def _ior(kind: str, nr: int, size: int) -> int:
    return _ioc(_IOC_READ, kind, nr, size)


def _iow(kind: str, nr: int, size: int) -> int:
    return _ioc(_IOC_WRITE, kind, nr, size)


def _iowr(kind: str, nr: int, size: int) -> int:
    return _ioc(_IOC_READ | _IOC_WRITE, kind, nr, size)


def ioctl_numbers(pointer_size: int) -> dict[str, int]:
    """Return the four PPS ioctl request numbers for a platform with ``pointer_size``-byte pointers.

    >>> hex(ioctl_numbers(8)["PPS_FETCH"])  # 64-bit: _IOWR('p', 0xa4, void *)
    '0xc00870a4'
    >>> hex(ioctl_numbers(4)["PPS_FETCH"])  # 32-bit Raspberry Pi OS
    '0xc00470a4'
    """
    return {
        "PPS_GETPARAMS": _ior("p", 0xA1, pointer_size),
        "PPS_SETPARAMS": _iow("p", 0xA2, pointer_size),
        "PPS_GETCAP": _ior("p", 0xA3, pointer_size),
        "PPS_FETCH": _iowr("p", 0xA4, pointer_size),
    }


_NUMBERS = ioctl_numbers(ctypes.sizeof(ctypes.c_void_p))
PPS_GETPARAMS = _NUMBERS["PPS_GETPARAMS"]
PPS_SETPARAMS = _NUMBERS["PPS_SETPARAMS"]
PPS_GETCAP = _NUMBERS["PPS_GETCAP"]
PPS_FETCH = _NUMBERS["PPS_FETCH"]

#: ``ioctl(fd, request, buffer)``, as :func:`fcntl.ioctl` with a mutable buffer (filled in place).
IoctlFn = Callable[[int, int, bytearray], Any]
#: ``opener(path) -> fd``.
OpenFn = Callable[[str], int]


def _default_ioctl(fd: int, request: int, buf: bytearray) -> Any:
    import fcntl

    return fcntl.ioctl(fd, request, buf, True)


def _default_open(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CLOEXEC)


class PpsError(Exception):
    """A PPS device cannot be used; the message names the device and the likely fix."""


class PulseSource(Protocol):
    """What :class:`PpsPoller` reads: the kernel PPS device, a GPIO line, a fake."""

    def fetch(self, timeout_s: float = 0.0) -> Pulse | None:
        """Return the newest edge seen so far (the same one again if none is new), or None if none yet."""
        ...

    def close(self) -> None: ...


def ktime_ns(t: PpsKtime) -> int:
    """Return a ``pps_ktime`` as POSIX ns."""
    return int(t.sec) * NS_PER_S + int(t.nsec)


def _buffer(obj: ctypes.Structure | ctypes.c_int) -> bytearray:
    return bytearray(bytes(obj))


class KernelPps:
    """One ``/dev/ppsN`` device, capturing the ``edge`` ('assert' or 'clear'), read with ``PPS_FETCH``.

    ``ioctl`` and ``opener`` are injectable for tests; the defaults are
    :func:`fcntl.ioctl` and ``os.open(path, O_RDWR)``. ``from_kernel_ns``
    maps a kernel ``CLOCK_REALTIME`` timestamp onto the clock being served
    (identity by default).

    Wiring (Raspberry Pi, PPS on GPIO 4)::

        # /boot/firmware/config.txt
        dtoverlay=pps-gpio,gpiopin=4

    >>> pps = KernelPps("/dev/pps0")          # doctest: +SKIP
    >>> pps.fetch(0.0)                        # doctest: +SKIP
    Pulse(local_ns=1711195200000004211, sequence=1234)
    """

    def __init__(
        self,
        path: str,
        edge: Edge = "assert",
        *,
        ioctl: IoctlFn = _default_ioctl,
        opener: OpenFn = _default_open,
        from_kernel_ns: Callable[[int], int] | None = None,
    ) -> None:
        if edge not in ("assert", "clear"):
            raise ValueError(f"edge must be 'assert' or 'clear', not {edge!r}")
        self.path = path
        self.edge: Edge = edge
        self._ioctl = ioctl
        self._from_kernel = from_kernel_ns
        try:
            self._fd: int | None = opener(path)
        except FileNotFoundError:
            raise PpsError(
                f"{path}: no such PPS device; for PPS on a GPIO pin add 'dtoverlay=pps-gpio,gpiopin=N' "
                "to /boot/firmware/config.txt (/boot/config.txt before Bookworm) and reboot"
            ) from None
        except PermissionError:
            raise PpsError(
                f"{path}: permission denied (hw/udev gives PPS devices to group stratum1, mode 0660: "
                "the service's user must be in that group; or run as root)"
            ) from None
        except OSError as e:
            raise PpsError(f"{path}: cannot open: {e.strerror or e}") from None
        try:
            self._configure()
        except PpsError:
            self.close()
            raise
        except OSError as e:
            self.close()
            if e.errno == errno.ENOTTY:
                raise PpsError(f"{path}: not a PPS device (ioctl: {e.strerror})") from None
            raise PpsError(f"{path}: cannot read the PPS parameters: {e.strerror or e}") from None

    def _configure(self) -> None:
        capture = PPS_CAPTUREASSERT if self.edge == "assert" else PPS_CAPTURECLEAR
        caps = self.capabilities()
        if not caps & capture:
            raise PpsError(f"{self.path}: the device cannot capture {self.edge} edges (capabilities {caps:#x})")
        params = self.get_params()
        if (params.mode & PPS_CAPTUREBOTH) == capture:
            return  # already capturing just our edge
        params.api_version = PPS_API_VERS
        params.mode = (params.mode & ~PPS_CAPTUREBOTH) | capture
        try:
            self.set_params(params)
        except PermissionError:
            if self.get_params().mode & capture:
                log.warning("%s: cannot set PPS mode (needs CAP_SYS_TIME); capturing as configured", self.path)
                return
            raise PpsError(f"{self.path}: setting the PPS mode needs root or CAP_SYS_TIME") from None
        except OSError as e:
            raise PpsError(f"{self.path}: PPS_SETPARAMS failed: {e.strerror or e}") from None

    def _call(self, request: int, buf: bytearray) -> None:
        if self._fd is None:
            raise PpsError(f"{self.path}: closed")
        self._ioctl(self._fd, request, buf)

    def capabilities(self) -> int:
        """Return the device's mode capability bits (``PPS_GETCAP``)."""
        buf = _buffer(ctypes.c_int(0))
        self._call(PPS_GETCAP, buf)
        return int(ctypes.c_int.from_buffer(buf).value)

    def get_params(self) -> PpsKparams:
        """Return the device's current parameters (``PPS_GETPARAMS``)."""
        buf = _buffer(PpsKparams())
        self._call(PPS_GETPARAMS, buf)
        return PpsKparams.from_buffer_copy(buf)

    def set_params(self, params: PpsKparams) -> None:
        """Set the device's parameters (``PPS_SETPARAMS``; needs ``CAP_SYS_TIME``)."""
        self._call(PPS_SETPARAMS, _buffer(params))

    def fetch_info(self, timeout_s: float = 0.0) -> PpsKinfo | None:
        """``PPS_FETCH``: the last events, waiting up to ``timeout_s`` for a new one; None on timeout."""
        data = PpsFdata()
        if timeout_s > 0:
            whole = int(timeout_s)
            data.timeout.sec = whole
            data.timeout.nsec = int(round((timeout_s - whole) * NS_PER_S))
        buf = _buffer(data)
        try:
            self._call(PPS_FETCH, buf)
        except OSError as e:
            if e.errno in (errno.ETIMEDOUT, errno.EINTR):
                return None
            raise
        info: PpsKinfo = PpsFdata.from_buffer_copy(buf).info
        return info

    def fetch(self, timeout_s: float = 0.0) -> Pulse | None:
        """Return the newest edge of our kind as a :class:`Pulse`, or None when there has been none.

        With ``timeout_s > 0`` waits (blocking) up to that long for a new
        event first; the event loop uses 0. Raises :class:`OSError` when the
        device fails (it vanished).
        """
        info = self.fetch_info(timeout_s)
        if info is None:
            return None
        if self.edge == "assert":
            seq, tu = int(info.assert_sequence), info.assert_tu
        else:
            seq, tu = int(info.clear_sequence), info.clear_tu
        if seq == 0:
            return None  # no edge captured yet
        t = ktime_ns(tu)
        if self._from_kernel is not None:
            t = self._from_kernel(t)
        return Pulse(t, seq)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


class TimerLoop(Protocol):
    """The part of :class:`appliance.io.loop.EventLoop` the poller uses."""

    def call_every(self, interval: float, callback: Callable[[], Any], *, first: float | None = None) -> Any: ...


#: How often :class:`PpsPoller` fetches (s): well under a second, so no pulse is overwritten unseen.
DEFAULT_POLL_S = 0.15


#: While a source fails, :class:`PpsPoller` tries ``reopen`` every this many polls (20 x 150 ms: 3 s).
REOPEN_EVERY_POLLS = 20


class PpsPoller:
    """Fetches a :class:`PulseSource` from a loop timer and hands each new pulse to ``on_pulse`` once.

    A pulse is new when its sequence number (or, without one, its timestamp)
    differs from the last handed up. A failing source is logged once per
    outage and counted; polling goes on, and the recovery is logged.

    A device that was unplugged (a USB receiver's ``pps-ldisc``) keeps failing
    on its old descriptor: with ``reopen`` (say, ``KernelPps`` on the same
    path) the poller opens it afresh every :data:`REOPEN_EVERY_POLLS` failed
    polls until that works, then closes the old one. After the daemon's
    privilege switch that open relies on group access (hw/udev).

    A step of the clock the pulses are stamped on (the kernel clock, served as it is) leaves an edge the
    device stamped before it, and not yet fetched, on the old scale: :meth:`clock_stepped` fetches it at
    once and the next :meth:`poll` hands it up restated, so the step costs no pulse.
    """

    def __init__(
        self,
        source: PulseSource,
        on_pulse: Callable[[Pulse], Any],
        *,
        name: str = "PPS",
        reopen: Callable[[], PulseSource] | None = None,
    ) -> None:
        self.source = source
        self.name = name
        self._on_pulse = on_pulse
        self._reopen = reopen
        self._last: Pulse | None = None
        self._failing = False
        self._failed_polls = 0
        self._timer: Any = None
        #: The edge fetched at a clock step, still to be handed up, and the steps since it was stamped.
        self._restate: tuple[Pulse, int] | None = None
        self.pulses = 0
        self.errors = 0
        self.reopens = 0
        self.restated = 0

    def start(self, loop: TimerLoop, interval_s: float = DEFAULT_POLL_S) -> None:
        """Poll from ``loop`` every ``interval_s`` seconds."""
        self._timer = loop.call_every(interval_s, self.poll)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def poll(self) -> Pulse | None:
        """Fetch once; hand up and return the pulse if it is new."""
        try:
            pulse = self.source.fetch(0.0)
        except OSError as e:
            self.errors += 1
            self._failed_polls += 1
            if not self._failing:
                self._failing = True
                log.warning("%s: fetch failed (%s); will keep trying", self.name, e.strerror or e)
            if self._reopen is not None and self._failed_polls % REOPEN_EVERY_POLLS == 0:
                self._try_reopen()
            return None
        if self._failing:
            self._failing = False
            self._failed_polls = 0
            log.info("%s: working again", self.name)
        if pulse is None or _same(pulse, self._last):
            return None
        self._last = pulse
        self.pulses += 1
        if self._restate is not None:
            stamped, step_ns = self._restate
            self._restate = None
            if _same(pulse, stamped):  # stamped before the step: on the new scale now
                pulse = Pulse(pulse.local_ns + step_ns, pulse.sequence)
                self.restated += 1
        self._on_pulse(pulse)
        return pulse

    def clock_stepped(self, step_ns: int) -> None:
        """The clock the edges are stamped on was stepped by ``step_ns`` (call it right after the step).

        The device's newest edge, if not handed up yet, was stamped before the step: it is taken now and
        handed up by the next :meth:`poll` moved by the step (by every step since, if more come first). An
        edge stamped in the microseconds between the step and this fetch is moved wrongly: the pulse
        checker refuses it, one pulse, as an unrestated edge would have cost.
        """
        try:
            pulse = self.source.fetch(0.0)
        except OSError:
            return  # poll() counts and logs the failure
        if pulse is None or _same(pulse, self._last):
            return
        if self._restate is not None and _same(pulse, self._restate[0]):
            step_ns += self._restate[1]
        self._restate = (pulse, step_ns)

    def _try_reopen(self) -> None:
        assert self._reopen is not None
        try:
            fresh = self._reopen()
        except (OSError, PpsError) as e:
            log.debug("%s: cannot open it again yet: %s", self.name, e)
            return
        self.source.close()
        self.source = fresh
        self._last = None  # a new device numbers its pulses afresh
        self.reopens += 1
        log.info("%s: opened again", self.name)


def _same(a: Pulse, b: Pulse | None) -> bool:
    if b is None:
        return False
    if a.sequence is not None and b.sequence is not None:
        return a.sequence == b.sequence and a.local_ns == b.local_ns
    return a.local_ns == b.local_ns
