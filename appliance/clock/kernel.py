"""The real clock: Linux ``CLOCK_REALTIME`` steered through ``adjtimex(2)``.

This is the I/O edge of the clock layer (chrony's ``sys_linux.c`` plays the
same part). libc is called through ``ctypes.CDLL(None)`` so that
interposing harnesses (libfaketime and the like) see the calls. Nothing is
called at import or construction; the first operation resolves ``adjtimex``.

``struct timex`` (``<sys/timex.h>``, kernel ``include/uapi/linux/timex.h``)
is built from ``ctypes.c_long``: its ``long`` fields are 8 bytes on 64-bit
Linux (the struct is 208 bytes) and 4 bytes on 32-bit ARM (128 bytes). On
32-bit glibc with 64-bit ``time_t`` the header maps ``adjtimex`` to
``__adjtimex64`` with a wider struct, but the plain ``adjtimex`` symbol that
``ctypes`` finds keeps the ``long`` layout used here; the only time value we
pass through it is a step *delta* (``ADJ_SETOFFSET``), so 2038 does not
matter.

How each operation maps onto the kernel (sign conventions as in
:mod:`appliance.clock.base`):

- frequency: ``ADJ_TICK | ADJ_FREQUENCY``, as chrony's ``sys_linux.c``: the
  kernel's ``freq`` (ppm scaled by 2**16, positive: faster) reaches only
  +-500 ppm, so the whole microseconds of 100 ppm go into ``tick`` (the us
  added per 10 ms kernel tick, nominally 10,000; +1 us is +100 ppm) and the
  remainder, within +-50 ppm, into ``freq`` (resolution 0.015 ppb). The
  total is limited to the clock's ``maxslewrate`` (83,333 ppm by default).
- accrue offset: the kernel PLL in nanosecond mode with the frequency held
  (``STA_PLL | STA_FREQHOLD``, ``ADJ_OFFSET | ADJ_NANO``, time constant 0),
  so the kernel only slews the phase: each second it applies a quarter of
  what is pending (:class:`~appliance.clock.slew.ExponentialSlew` models
  this) and never touches the frequency we set. ``ADJ_OFFSET`` replaces the
  pending offset, so the backend reads what is pending and writes the sum.
  The kernel takes at most +-0.5 s (``MAXPHASE``); more raises ValueError
  (step instead).
- offset correction: the ``offset`` that ``adjtimex`` reports (ns when
  ``STA_NANO`` is set, else us).
- step: ``ADJ_SETOFFSET | ADJ_NANO`` with the delta in ``time``.
- leap: ``STA_INS`` / ``STA_DEL`` in ``status``; the kernel does the rest.
  With ``STA_INS`` set its state goes ``TIME_OK`` -> ``TIME_INS``; at the
  next midnight UTC it steps ``CLOCK_REALTIME`` back one second
  (``TIME_OOP`` during the repeated 23:59:59, i.e. 23:59:60), then sits in
  ``TIME_WAIT`` until both bits are cleared, so the daemon clears them after
  the leap (``set_leap(0)``; :func:`appliance.leap.leap_to_serve` goes to 0
  at 00:00:00). ``STA_DEL`` skips 23:59:59 the same way. Clearing the bits
  before midnight cancels the leap. The write changes only these two bits:
  ``STA_UNSYNC`` (which the kernel also sets on its own once ``maxerror``
  passes 16 s) and ``STA_PLL`` (whose clearing would reset the kernel's
  leap state) are written back as read. Nothing is written when the bits
  are already as asked, so the daemon may repeat the call every second.
- TAI offset (:meth:`KernelClock.set_tai_offset`, kernel only): ``ADJ_TAI``
  with the offset in ``constant``, so ``CLOCK_TAI`` is right; the kernel
  adjusts it itself at a leap.
- sync status: ``STA_UNSYNC``, ``maxerror`` and ``esterror`` (us).

Status writes read the current status first and change only our bits.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from appliance.clock.base import DEFAULT_MAX_SLEW_RATE_PPB, check_leap, check_max_slew_rate, clamp_frequency
from appliance.ntp.packet import LEAP_DELETE, LEAP_INSERT
from appliance.timebase import NS_PER_S

# modes (include/uapi/linux/timex.h)
ADJ_OFFSET = 0x0001
ADJ_FREQUENCY = 0x0002
ADJ_MAXERROR = 0x0004
ADJ_ESTERROR = 0x0008
ADJ_STATUS = 0x0010
ADJ_TIMECONST = 0x0020
ADJ_TAI = 0x0080
ADJ_SETOFFSET = 0x0100
ADJ_MICRO = 0x1000
ADJ_NANO = 0x2000
ADJ_TICK = 0x4000

# status bits
STA_PLL = 0x0001
STA_PPSFREQ = 0x0002
STA_PPSTIME = 0x0004
STA_FLL = 0x0008
STA_INS = 0x0010
STA_DEL = 0x0020
STA_UNSYNC = 0x0040
STA_FREQHOLD = 0x0080
STA_PPSSIGNAL = 0x0100
STA_PPSJITTER = 0x0200
STA_PPSWANDER = 0x0400
STA_PPSERROR = 0x0800
STA_CLOCKERR = 0x1000
STA_NANO = 0x2000
STA_MODE = 0x4000
STA_CLK = 0x8000
#: Bits the kernel ignores in writes.
STA_RONLY = STA_PPSSIGNAL | STA_PPSJITTER | STA_PPSWANDER | STA_PPSERROR | STA_CLOCKERR | STA_NANO | STA_MODE | STA_CLK

# clock states returned by adjtimex
TIME_OK, TIME_INS, TIME_DEL, TIME_OOP, TIME_WAIT, TIME_ERROR = range(6)

#: ``timex.freq`` units per ppb (ppm * 2**16).
FREQ_SCALE_PER_PPB = 65536 / 1000
#: The kernel's nominal ``tick`` (us per timer tick at USER_HZ 100) and what 1 us of it is worth, ppb.
NOMINAL_TICK_US = 10_000
PPB_PER_TICK_US = 1e9 / NOMINAL_TICK_US
#: The largest phase the kernel PLL accepts (``MAXPHASE``), ns.
MAXPHASE_NS = 500_000_000
#: The largest maxerror/esterror the kernel keeps (``NTP_PHASE_LIMIT``, 16 s), us.
PHASE_LIMIT_US = 16_000_000


class Timeval(ctypes.Structure):
    """``struct timeval`` as in ``struct timex`` (``tv_usec`` holds ns with ``ADJ_NANO``)."""

    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class Timex(ctypes.Structure):
    """``struct timex``; ``long`` fields follow the platform's ``c_long``."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


Adjtimex = Callable[[Timex], int]


@dataclass(frozen=True, slots=True)
class KernelState:
    """What ``adjtimex(modes=0)`` reports, decoded (times ns, frequency ppb +: faster)."""

    clock_state: int
    status: int
    frequency_ppb: float
    offset_ns: int
    max_error_ns: int
    est_error_ns: int
    time_constant: int
    tick_us: int
    tai_offset_s: int

    @property
    def synchronised(self) -> bool:
        return not self.status & STA_UNSYNC


def decode(tx: Timex, clock_state: int) -> KernelState:
    """Decode a ``struct timex`` that ``adjtimex`` filled in."""
    offset_ns = tx.offset if tx.status & STA_NANO else tx.offset * 1000
    return KernelState(
        clock_state=clock_state,
        status=tx.status,
        frequency_ppb=tx.freq / FREQ_SCALE_PER_PPB + ((tx.tick or NOMINAL_TICK_US) - NOMINAL_TICK_US) * PPB_PER_TICK_US,
        offset_ns=offset_ns,
        max_error_ns=tx.maxerror * 1000,
        est_error_ns=tx.esterror * 1000,
        time_constant=tx.constant,
        tick_us=tx.tick,
        tai_offset_s=tx.tai,
    )


def libc_adjtimex() -> Adjtimex:
    """Return libc's ``adjtimex`` (through ``ctypes.CDLL(None)``) raising OSError on failure."""
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.adjtimex
    fn.argtypes = [ctypes.POINTER(Timex)]
    fn.restype = ctypes.c_int

    def call(tx: Timex) -> int:
        rc = int(fn(ctypes.byref(tx)))
        if rc == -1:
            err = ctypes.get_errno()
            raise OSError(err, f"adjtimex: {os.strerror(err)}")
        return rc

    return call


def _status_word(current: int, set_bits: int, clear_bits: int) -> int:
    """The status to write: ``current`` without the read-only bits, ``set_bits`` set, ``clear_bits`` cleared."""
    return ((current & ~STA_RONLY) | set_bits) & ~clear_bits


def _us_ceil(ns: int) -> int:
    return max(0, min(PHASE_LIMIT_US, -(-ns // 1000)))


class KernelClock:
    """The host's ``CLOCK_REALTIME`` as a :class:`~appliance.clock.base.Clock` (needs CAP_SYS_TIME to write).

    ``adjtimex`` defaults to libc's (resolved on first use); tests pass a fake.
    ``read_ns`` reads the clock (default ``time.time_ns``, i.e. libc's
    ``clock_gettime(CLOCK_REALTIME)``). ``max_slew_rate_ppb`` limits the
    frequency correction (``tick`` plus ``freq``), chrony's ``maxslewrate``.
    """

    def __init__(
        self,
        adjtimex: Adjtimex | None = None,
        read_ns: Callable[[], int] = time.time_ns,
        *,
        max_slew_rate_ppb: float = DEFAULT_MAX_SLEW_RATE_PPB,
    ) -> None:
        self._max_slew_ppb = check_max_slew_rate(max_slew_rate_ppb)
        self._adjtimex = adjtimex
        self._read_ns = read_ns

    def _call(self, tx: Timex) -> int:
        if self._adjtimex is None:
            self._adjtimex = libc_adjtimex()
        return self._adjtimex(tx)

    def _read(self) -> tuple[Timex, int]:
        tx = Timex()
        tx.modes = 0
        return tx, self._call(tx)

    def read_state(self) -> KernelState:
        """Read the kernel's clock state; read-only (``modes = 0``), needs no privileges."""
        tx, rc = self._read()
        return decode(tx, rc)

    def _write_status(self, modes: int, set_bits: int, clear_bits: int, **fields: int) -> None:
        current, _ = self._read()
        tx = Timex()
        tx.modes = modes | ADJ_STATUS
        tx.status = _status_word(current.status, set_bits, clear_bits)
        for name, value in fields.items():
            setattr(tx, name, value)
        self._call(tx)

    @property
    def reads_realtime(self) -> bool:
        """Whether :meth:`now_ns` is the kernel's ``CLOCK_REALTIME`` itself (not a stand-in for tests)."""
        return self._read_ns is time.time_ns

    def now_ns(self) -> int:
        """Read ``CLOCK_REALTIME``, POSIX ns."""
        return self._read_ns()

    def frequency_ppb(self) -> float:
        """The kernel's frequency correction, ppb (+: faster)."""
        return self.read_state().frequency_ppb

    def set_frequency_ppb(self, frequency_ppb: float) -> None:
        """Set the frequency (``ADJ_TICK | ADJ_FREQUENCY``), ppb (+: faster), clamped to +-``maxslewrate``."""
        frequency = clamp_frequency(frequency_ppb, self._max_slew_ppb)
        ticks = round(frequency / PPB_PER_TICK_US)
        tx = Timex()
        tx.modes = ADJ_FREQUENCY | ADJ_TICK
        tx.tick = NOMINAL_TICK_US + ticks
        tx.freq = round((frequency - ticks * PPB_PER_TICK_US) * FREQ_SCALE_PER_PPB)
        self._call(tx)

    def accrue_offset_ns(self, offset_ns: int) -> None:
        """Add ``offset_ns`` (+: forwards) to the kernel PLL's pending phase, frequency held.

        ValueError if the total pending would exceed +-0.5 s (the kernel's MAXPHASE).
        """
        state = self.read_state()
        total = state.offset_ns + offset_ns
        if abs(total) > MAXPHASE_NS:
            raise ValueError(f"cannot slew {total} ns: the kernel takes at most +-{MAXPHASE_NS} ns; step instead")
        self._write_status(
            ADJ_OFFSET | ADJ_NANO | ADJ_TIMECONST,
            STA_PLL | STA_FREQHOLD,
            STA_FLL | STA_PPSFREQ | STA_PPSTIME,
            offset=total,
            constant=0,
        )

    def offset_correction_ns(self) -> int:
        """The phase the kernel has still to slew, ns (+: the clock will still move forwards)."""
        return self.read_state().offset_ns

    def step_ns(self, offset_ns: int) -> None:
        """Step the clock by ``offset_ns`` (+: forwards) with ``ADJ_SETOFFSET``."""
        tx = Timex()
        tx.modes = ADJ_SETOFFSET | ADJ_NANO
        sec, nsec = divmod(offset_ns, NS_PER_S)
        tx.time.tv_sec = sec
        tx.time.tv_usec = nsec
        self._call(tx)

    def set_leap(self, leap: int) -> None:
        """Arm the kernel leap second: 1 sets ``STA_INS``, 2 ``STA_DEL``, 0 clears both (after the leap, too).

        Every other status bit (``STA_UNSYNC`` included) is written back as
        read; no write when the bits are already so.
        """
        bit = {LEAP_INSERT: STA_INS, LEAP_DELETE: STA_DEL}.get(check_leap(leap), 0)
        current, _ = self._read()
        if current.status & (STA_INS | STA_DEL) == bit:
            return
        tx = Timex()
        tx.modes = ADJ_STATUS
        tx.status = _status_word(current.status, bit, (STA_INS | STA_DEL) & ~bit)
        self._call(tx)

    def set_tai_offset(self, tai_offset_s: int) -> None:
        """Set the kernel's TAI - UTC offset (``ADJ_TAI``), seconds, for ``CLOCK_TAI``; ValueError if negative."""
        if tai_offset_s < 0:
            raise ValueError(f"TAI - UTC is not negative: {tai_offset_s}")
        current = self.read_state()
        if current.tai_offset_s == tai_offset_s:
            return
        tx = Timex()
        tx.modes = ADJ_TAI
        tx.constant = tai_offset_s
        self._call(tx)

    def set_sync_status(self, synchronised: bool, est_error_ns: int, max_error_ns: int) -> None:
        """Set ``STA_UNSYNC`` (cleared when synchronised) and ``esterror``/``maxerror`` (rounded up to us)."""
        unsync = 0 if synchronised else STA_UNSYNC
        self._write_status(
            ADJ_MAXERROR | ADJ_ESTERROR,
            unsync,
            STA_UNSYNC & ~unsync,
            maxerror=_us_ceil(max_error_ns),
            esterror=_us_ceil(est_error_ns),
        )
