"""The live board for ``stratum1 doctor``: files under /proc, /sys, /boot/firmware and /dev, the serial port, I2C.

:class:`LiveBoard` is the real :class:`appliance.hw.doctor.Board`. File reads go under ``root``
(``/`` on the board; a copy of one elsewhere). :meth:`LiveBoard.capture` reads the GPS's serial port
the way :class:`appliance.io.serial.SerialGps` does (noting the time before each read) while it
polls the PPS source's sysfs ``assert`` file, which holds the kernel's timestamp of the last edge:
how often it is polled changes when an edge is seen, not the time it carries.
"""

from __future__ import annotations

import errno
import os
import select
import time
from pathlib import Path

from appliance.hw.doctor import Capture
from appliance.io.serial import READ_SIZE, open_error_hint, open_serial

#: How often the sysfs assert file is read while the serial port is quiet.
PPS_POLL_S = 0.05


class LiveBoard:
    """The board this process runs on (or a copy of its files under ``root``)."""

    def __init__(self, root: str = "/") -> None:
        self._root = Path(root)

    def _path(self, path: str) -> Path:
        return self._root / path.lstrip("/")

    def read(self, path: str) -> bytes:
        return self._path(path).read_bytes()

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(self._path(path)))

    def resolve(self, path: str) -> str:
        full = self._path(path)
        if not os.path.lexists(full):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        real = Path(os.path.realpath(full))
        if not real.exists():
            raise FileNotFoundError(errno.ENOENT, "dangling link", path)
        try:
            return "/" + str(real.relative_to(self._root.resolve()))
        except ValueError:
            return str(real)

    def capture(self, serial: str | None, baud: int, pps_assert: str | None, seconds: float) -> Capture:
        chunks: list[tuple[int, bytes]] = []
        asserts: list[str] = []
        serial_error: str | None = None
        busy = False
        pps_error: str | None = None
        port = None
        if serial is not None:
            try:
                port = open_serial(str(self._path(serial)), baud)
            except OSError as e:
                busy = e.errno in (errno.EAGAIN, errno.EBUSY)
                serial_error = open_error_hint(serial, e)
        else:
            serial_error = "no serial device"
        pps_file = self._path(pps_assert) if pps_assert else None
        if pps_file is None:
            pps_error = "no PPS device"
        deadline = time.monotonic() + seconds
        try:
            while (left := deadline - time.monotonic()) > 0:
                if pps_file is not None and pps_error is None:
                    try:
                        value = pps_file.read_text().strip()
                        if not asserts or asserts[-1] != value:
                            asserts.append(value)
                    except OSError as e:
                        pps_error = e.strerror or str(e)
                wait = min(left, PPS_POLL_S)
                if port is None:
                    time.sleep(wait)
                    continue
                ready, _, _ = select.select([port.fileno()], [], [], wait)
                if ready:
                    now = time.time_ns()
                    try:
                        data = os.read(port.fileno(), READ_SIZE)
                    except OSError as e:
                        serial_error = f"{serial}: {e.strerror or e}"
                        port.close()
                        port = None
                        continue
                    if data:
                        chunks.append((now, data))
        finally:
            if port is not None:
                port.close()
        return Capture(
            seconds=seconds,
            chunks=tuple(chunks),
            asserts=tuple(asserts),
            serial_error=serial_error if not chunks or busy else None,
            serial_busy=busy,
            pps_error=pps_error,
        )

    def i2c_probe(self, bus: int, address: int) -> bool:
        device = self._path(f"/dev/i2c-{bus}")
        if not device.exists():
            raise FileNotFoundError(errno.ENOENT, "No such device", str(device))
        import smbus2  # type: ignore[import-untyped,unused-ignore]

        with smbus2.SMBus(str(device)) as i2c:
            try:
                i2c.read_byte(address)
            except OSError as e:
                if e.errno in (errno.ENXIO, errno.EREMOTEIO, errno.EIO, errno.ETIMEDOUT):
                    return False
                raise
        return True
