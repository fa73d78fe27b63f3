"""The ``shm`` refclock's I/O: SysV shared-memory segments NTP0..NTPn through ``shmget``/``shmat``/``shmdt``.

The decoding and every decision are in :mod:`appliance.refclock.shm`; this
module only attaches the segment, copies it, re-reads ``count`` right after
the copy and clears ``valid`` when told to. libc is called through
``ctypes.CDLL(None)`` (DESIGN.md: interposing test harnesses see the calls).

Like ntpd and chrony, :class:`ShmDriver` creates the segment when it does
not exist yet (``IPC_CREAT``, 0600 for units 0-1 and for a unit whose line
says ``mode 1``, 0666 for the others), so it does not matter whether gpsd or
stratum1 starts first: gpsd attaches to the segment stratum1 made and the
other way round. A private segment that already exists with more than
owner access (made by another program, or before the line said ``mode 1``)
is refused, not read: anyone who may write it could set the time. Nothing here removes a
segment (``IPC_RMID``): the kernel frees it when the last process detaches
and nobody marked it otherwise, and a segment gpsd made is gpsd's.

:class:`SysvShm` is the real backend; :class:`appliance.fakes.shm.FakeShm`
the fake one, with a writer that does what gpsd does.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict
from typing import Protocol

from appliance.refclock.driver import Readings
from appliance.refclock.shm import (
    DEFAULT_MAX_AGE_NS,
    DEFAULT_MAX_DELTA_NS,
    LAYOUT_32,
    LAYOUT_64,
    ShmLayout,
    ShmReader,
    ShmStatus,
    shm_key,
    shm_perm,
)
from appliance.timebase import NS_PER_S

IPC_CREAT = 0o1000
log = logging.getLogger(__name__)


class Segment(Protocol):
    """An attached segment: copy it, read or write one int."""

    def read(self) -> bytes: ...

    def read_int(self, offset: int) -> int: ...

    def write_int(self, offset: int, value: int) -> None: ...

    def detach(self) -> None: ...

    @property
    def perm(self) -> int:
        """The segment's permission bits (``shm_perm.mode & 0o777``), as the kernel has them now."""
        ...


class SegmentBackend(Protocol):
    """Attaches (creating when missing) the segment with a key."""

    def attach(self, key: int, size: int, perm: int) -> Segment: ...


def native_layout() -> ShmLayout:
    """The ``struct shmTime`` of this machine, by the size of C's ``long`` (which is ``time_t`` on glibc).

    A 32-bit system built with a 64-bit ``time_t`` (Debian 13 armhf) is not
    told apart: pass the layout explicitly there.
    """
    return LAYOUT_64 if ctypes.sizeof(ctypes.c_long) == 8 else LAYOUT_32


#: ``shmctl`` command that copies the segment's ``struct shmid_ds`` out.
IPC_STAT = 2
#: Where ``shm_perm.mode`` is in ``struct shmid_ds``, after the key, uid, gid, cuid and cgid (4 octets each,
#: on every Linux ABI); its low 16 bits (little-endian) hold the permissions.
_PERM_MODE_OFFSET = 20


class _SysvSegment:
    __slots__ = ("_libc", "_addr", "_size", "_shmid")

    def __init__(self, libc: ctypes.CDLL, addr: int, size: int, shmid: int = -1) -> None:
        self._libc = libc
        self._addr: int | None = addr
        self._size = size
        self._shmid = shmid

    @property
    def perm(self) -> int:
        buf = ctypes.create_string_buffer(512)  # larger than any ABI's struct shmid_ds
        if self._libc.shmctl(self._shmid, IPC_STAT, buf) == -1:
            err = ctypes.get_errno()
            raise OSError(err, f"shmctl(IPC_STAT): {os.strerror(err)}")
        return int.from_bytes(buf.raw[_PERM_MODE_OFFSET : _PERM_MODE_OFFSET + 2], "little") & 0o777

    def _base(self) -> int:
        if self._addr is None:
            raise OSError(errno.EINVAL, "shared memory segment is detached")
        return self._addr

    def read(self) -> bytes:
        return ctypes.string_at(self._base(), self._size)

    def read_int(self, offset: int) -> int:
        return ctypes.c_int.from_address(self._base() + offset).value

    def write_int(self, offset: int, value: int) -> None:
        ctypes.c_int.from_address(self._base() + offset).value = value

    def detach(self) -> None:
        if self._addr is not None:
            self._libc.shmdt(ctypes.c_void_p(self._addr))
            self._addr = None


class SysvShm:
    """The kernel's SysV shared memory, through libc."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
        libc.shmget.restype = ctypes.c_int
        libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
        libc.shmat.restype = ctypes.c_void_p
        libc.shmdt.argtypes = [ctypes.c_void_p]
        libc.shmdt.restype = ctypes.c_int
        libc.shmctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
        libc.shmctl.restype = ctypes.c_int
        self._libc = libc

    def attach(self, key: int, size: int, perm: int) -> Segment:
        shmid = self._libc.shmget(key, size, IPC_CREAT | perm)
        if shmid == -1:
            err = ctypes.get_errno()
            hint = " (a smaller segment with that key exists)" if err == errno.EINVAL else ""
            raise OSError(err, f"shmget(0x{key:08x}, {size}): {os.strerror(err)}{hint}")
        addr = self._libc.shmat(shmid, None, 0)
        if addr is None or addr == ctypes.c_void_p(-1).value:
            err = ctypes.get_errno()
            raise OSError(err, f"shmat(0x{key:08x}): {os.strerror(err)}")
        return _SysvSegment(self._libc, int(addr), size, shmid)


class ShmDriver:
    """The ``shm`` driver of unit ``unit`` (segment NTPu): one sample per poll at most.

    ``max_age_ns`` and ``max_delta_ns`` are :class:`~appliance.refclock.shm.ShmReader`'s
    (``max_delta_ns=None``: ntpd's ``flag1``, no limit). ``mode`` is the
    line's (bit 0: a private segment from unit 2 on, as units 0-1 always are).
    """

    def __init__(
        self,
        unit: int,
        *,
        mode: int = 0,
        backend: SegmentBackend | None = None,
        layout: ShmLayout | None = None,
        max_age_ns: int = DEFAULT_MAX_AGE_NS,
        max_delta_ns: int | None = DEFAULT_MAX_DELTA_NS,
    ) -> None:
        self.unit = unit
        self.perm = shm_perm(unit, mode)
        self._backend = backend
        self._layout = layout if layout is not None else native_layout()
        self._reader = ShmReader(self._layout, max_age_ns=max_age_ns, max_delta_ns=max_delta_ns)
        self._max_delta_ns = max_delta_ns
        self._told_too_far = False
        self._segment: Segment | None = None
        self.open_errors = 0

    @property
    def name(self) -> str:
        return f"NTP{self.unit}"

    @property
    def is_open(self) -> bool:
        return self._segment is not None

    def open(self) -> None:
        if self._segment is not None:
            return
        backend = self._backend if self._backend is not None else SysvShm()
        self._backend = backend
        try:
            segment = backend.attach(shm_key(self.unit), self._layout.size, self.perm)
            has = segment.perm if self.perm == 0o600 else 0o600
        except OSError as e:
            self.open_errors += 1
            raise OSError(e.errno, f"SHM unit {self.unit} ({self.name}): {e.strerror}") from None
        if has & 0o077:
            segment.detach()
            self.open_errors += 1
            raise OSError(
                errno.EPERM,
                f"SHM unit {self.unit} ({self.name}) is to be private (owner only) but the segment exists with mode "
                f"0{has:o}, so other users could set the time through it; not read. Remove it "
                f"(ipcrm -M 0x{shm_key(self.unit):08x}) and restart its writer, or make the writer create it 0600",
            )
        self._segment = segment

    def poll(self, now_ns: int) -> Readings:
        """Copy the segment, judge it, clear ``valid`` when it was read; the sample if there was a good one."""
        seg = self._segment
        if seg is None:
            return Readings()
        raw = seg.read()
        count_after = seg.read_int(self._layout.count_offset)
        result = self._reader.read(raw, count_after=count_after, now_ns=now_ns)
        if result.clear_valid:
            seg.write_int(self._layout.valid_offset, 0)
        if result.status is ShmStatus.TOO_FAR and result.record is not None and not self._told_too_far:
            # said once (again after a good sample): else the status shows only "no samples yet"
            self._told_too_far = True
            away = (result.record.clock_ns - result.record.receive_ns) / NS_PER_S
            limit = (self._max_delta_ns or 0) / NS_PER_S
            log.warning(
                "SHM unit %d (%s): samples dropped: the reference is %+.3f s from the local clock, more than the "
                "%g s the line believes (time2; fudge flag1 1 believes any offset)",
                self.unit,
                self.name,
                away,
                limit,
            )
        if result.status is ShmStatus.OK and result.sample is not None:
            self._told_too_far = False
            return Readings(samples=(result.sample,))
        return Readings()

    def close(self) -> None:
        if self._segment is not None:
            self._segment.detach()
            self._segment = None

    def counters(self) -> Mapping[str, int]:
        return {**asdict(self._reader.counters), "open_errors": self.open_errors}
