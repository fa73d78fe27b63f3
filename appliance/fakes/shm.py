"""A fake SysV shared memory for the ``shm`` refclock, with a writer that does what gpsd does.

:class:`FakeShm` is a :class:`~appliance.io.shm.SegmentBackend`: segments
live in a dict by key, made on first attach with the size and mode asked
(like ``shmget(IPC_CREAT)``; attaching with a larger size than the segment
has fails with ``EINVAL``, as the kernel does). Its segments have verbs for
tests:

- :meth:`FakeSegment.put`: write a sample as gpsd's ``ntp_write`` does in
  ``mode`` 1 (``valid`` 0, ``count`` + 1, the fields, ``count`` + 1,
  ``valid`` 1), or as a ``mode`` 0 writer does (no count);
- :meth:`FakeSegment.interfere_next_read`: the writer starts a new sample
  while the reader is copying (the next read sees ``count`` move: a clash);
- :meth:`FakeSegment.write_raw`: any octets (a bad mode, garbage).

>>> from appliance.io.shm import ShmDriver
>>> from appliance.refclock.shm import LAYOUT_64
>>> shm = FakeShm()
>>> drv = ShmDriver(0, backend=shm, layout=LAYOUT_64)
>>> drv.open()
>>> seg = shm.segment(0x4E545030)
>>> oct(seg.perm), len(seg.data)
('0o600', 96)
>>> seg.put(clock_ns=1_700_000_000_000_000_000, receive_ns=1_700_000_000_000_500_000)
>>> [s.offset_ns for s in drv.poll(1_700_000_000_100_000_000).samples]
[-500000]
>>> seg.valid, drv.poll(1_700_000_000_200_000_000).empty
(0, True)
"""

from __future__ import annotations

import errno
import struct

from appliance.refclock.shm import LAYOUT_64, ShmLayout, ShmRecord


class FakeSegment:
    """One segment: its octets, its mode, how many have it attached."""

    def __init__(self, key: int, size: int, perm: int, layout: ShmLayout = LAYOUT_64) -> None:
        self.key = key
        self.perm = perm
        self.data = bytearray(size)
        self.layout = layout
        self.attached = 0
        self.reads = 0
        self._interfere = False

    # -- the Segment protocol (the reader's side)

    def read(self) -> bytes:
        self.reads += 1
        copy = bytes(self.data)
        if self._interfere:
            self._interfere = False
            self._bump_count()  # the writer began its next sample while we copied
        return copy

    def read_int(self, offset: int) -> int:
        value: int = struct.unpack_from("<i", self.data, offset)[0]
        return value

    def write_int(self, offset: int, value: int) -> None:
        struct.pack_into("<i", self.data, offset, value)

    def detach(self) -> None:
        self.attached -= 1

    # -- the writer's verbs

    @property
    def valid(self) -> int:
        return self.read_int(self.layout.valid_offset)

    @property
    def count(self) -> int:
        return self.read_int(self.layout.count_offset)

    def put(self, *, clock_ns: int, receive_ns: int, leap: int = 0, precision: int = -20, mode: int = 1) -> None:
        """Write one sample the way gpsd does (``mode`` 1: count bumped before and after; 0: no count)."""
        self.write_int(self.layout.valid_offset, 0)
        if mode == 1:
            self._bump_count()
        record = ShmRecord(
            mode=mode,
            count=self.count + (1 if mode == 1 else 0),
            clock_ns=clock_ns,
            receive_ns=receive_ns,
            leap=leap,
            precision=precision,
            nsamples=3,
            valid=1,
        )
        self.data[: self.layout.size] = self.layout.encode(record)

    def write_raw(self, data: bytes) -> None:
        """Overwrite the segment's first octets with ``data``."""
        self.data[: len(data)] = data

    def write_record(self, record: ShmRecord) -> None:
        """Write ``record`` as it is (any mode, count, valid)."""
        self.data[: self.layout.size] = self.layout.encode(record)

    def interfere_next_read(self) -> None:
        """Make the next read see the writer start a new sample while it copies."""
        self._interfere = True

    def _bump_count(self) -> None:
        self.write_int(self.layout.count_offset, (self.count + 1) & 0x7FFFFFFF)

    def record(self) -> ShmRecord:
        """The segment as a reader would decode it now."""
        return self.layout.decode(bytes(self.data))


class FakeShm:
    """Segments by key, made on first attach (see the module docstring)."""

    def __init__(self, layout: ShmLayout = LAYOUT_64) -> None:
        self.layout = layout
        self._segments: dict[int, FakeSegment] = {}

    def attach(self, key: int, size: int, perm: int) -> FakeSegment:
        seg = self._segments.get(key)
        if seg is None:
            seg = self._segments[key] = FakeSegment(key, size, perm, self.layout)
        elif len(seg.data) < size:
            raise OSError(errno.EINVAL, f"shmget(0x{key:08x}, {size}): Invalid argument")
        seg.attached += 1
        return seg

    def segment(self, key: int) -> FakeSegment:
        """The segment with ``key`` (KeyError when nobody attached it yet)."""
        return self._segments[key]

    def create(self, key: int, size: int | None = None, perm: int = 0o600) -> FakeSegment:
        """Make a segment as a writer (gpsd) would before the reader comes."""
        seg = self.attach(key, size if size is not None else self.layout.size, perm)
        seg.attached -= 1
        return seg
