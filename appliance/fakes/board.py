"""A fake Raspberry Pi for ``stratum1 doctor``: its files, its GPS and PPS, its I2C bus, with verbs that break them.

:meth:`FakeBoard.working` builds a board set up as ``python3 -m appliance.hw render`` says for a
profile and kernel, on which every link of the doctor's chain works: the config.txt lines and
overlays, the PL011 on GPIO 14/15 with Bluetooth off, a pps-gpio node on the profile's pin, the
PPS device and the udev links, a receiver (:class:`appliance.fakes.gps.FakeGps`, the profile's
``fake_model``) with a fix, pulses at every true second, and an LCD at 0x27. The device tree is
laid out as the kernel shows it in ``/proc/device-tree`` (NUL-terminated strings, big-endian
cells, ``__symbols__``).

Verbs break one link each, as people break them: :meth:`~FakeBoard.add_console`,
:meth:`~FakeBoard.enable_getty`, :meth:`~FakeBoard.bluetooth_on_uart`,
:meth:`~FakeBoard.move_pps`, :meth:`~FakeBoard.remove`, :meth:`~FakeBoard.deny`, and the
signal's: ``pulses``, ``fix``, ``garbled``, ``silent``, ``busy``, ``jump_weeks_midway`` (after the first burst),
``lcd_addresses``, ``clock_offset_ns``, ``pulse_period_ns``. No clock is read: the capture runs on the virtual time
``now_ns`` given.
"""

from __future__ import annotations

import errno
import struct

from appliance.config import default_config_text
from appliance.fakes.gps import FakeGps
from appliance.hw import boot
from appliance.hw.doctor import Capture
from appliance.refclock.profiles import Profile
from appliance.timebase import NS_PER_S

DEBIAN_CMDLINE = "console=tty0 root=LABEL=RASPIROOT rw fsck.repair=yes net.ifnames=0 cma=64M rootwait\n"
DEBIAN_CONFIG_TXT = "arm_64bit=1\nenable_uart=1\nupstream_kernel=1\nkernel=vmlinuz\ninitramfs initrd.img\n"
RASPIOS_CMDLINE = "console=tty1 root=PARTUUID=12345678-02 rootfstype=ext4 fsck.repair=yes rootwait\n"
_UART0 = "/soc/serial@7e201000"
_GPIO = "/soc/gpio@7e200000"
_PHANDLES = {"gpio": 0x01, "uart0_gpio14": 0x10, "uart0_gpio32": 0x11}
_PL011 = "/sys/devices/platform/soc/fe201000.serial"
_STEP_NS = 10_000_000


def _cells(*values: int) -> bytes:
    return struct.pack(f">{len(values)}I", *values)


def _string(text: str) -> bytes:
    return text.encode() + b"\0"


class FakeBoard:
    """A board as files, links and signals; see the module docstring."""

    def __init__(self, profile: Profile, kernel: boot.Kernel, now_ns: int) -> None:
        self.profile = profile
        self.kernel = kernel
        self.now_ns = now_ns
        self.files: dict[str, bytes] = {}
        self.links: dict[str, str] = {}
        self.denied: set[str] = set()
        # the signals
        self.pulses = True
        self.fix = True
        self.garbled = False
        self.silent = False
        self.busy = False
        self.jump_weeks_midway = False
        self.clock_offset_ns = 0
        #: Time between edges: a PPS has 1 s; noise on the pin has anything else.
        self.pulse_period_ns = NS_PER_S
        self.lcd_addresses: set[int] = {0x27}
        self.captures: list[tuple[str | None, int, str | None, float]] = []

    # -- building --------------------------------------------------------------------------

    @classmethod
    def working(
        cls, profile: Profile, kernel: boot.Kernel = "upstream", now_ns: int = 1_800_000_000 * NS_PER_S
    ) -> FakeBoard:
        """A board on which every link works, set up for ``profile`` on ``kernel``."""
        b = cls(profile, kernel, now_ns)
        files = boot.render(profile, kernel, default_config_text())
        b.files["/etc/stratum1/profile.json"] = files["profile.json"].encode()
        base_config = DEBIAN_CONFIG_TXT if kernel == "upstream" else "dtparam=audio=on\n"
        b.files["/boot/firmware/config.txt"] = (base_config + files["config.txt"]).encode()
        if kernel == "upstream":
            b.files[boot.RASPI_FIRMWARE_CUSTOM] = files["config.txt"].encode()
        for o in boot.overlays(profile, kernel):
            b.files[f"/boot/firmware/overlays/{o.name}.dtbo"] = b"\xd0\x0d\xfe\xed"
        cmdline = DEBIAN_CMDLINE if kernel == "upstream" else RASPIOS_CMDLINE
        b.files["/boot/firmware/cmdline.txt"] = cmdline.encode()
        b.files["/proc/cmdline"] = cmdline.encode()
        b.files["/lib/systemd/system/serial-getty@.service"] = b"[Unit]\n"
        b._device_tree()
        if profile.serial_bus == "uart":
            b.files["/dev/ttyAMA0"] = b""
            b.files[f"{_PL011}/uevent"] = b"DRIVER=uart-pl011\n"
            b.links["/sys/class/tty/ttyAMA0/device"] = _PL011
            b.links[boot.GPS_LINK] = "/dev/ttyAMA0"
        else:
            b.files[profile.serial_device] = b""
            b.links[boot.GPS_LINK] = profile.serial_device
        if profile.pps_source == "kernel" and profile.pps_gpio is not None:
            name = boot.pps_source_name(profile.pps_gpio) if kernel == "upstream" else "pps@12.-1"
            b.files["/sys/class/pps/pps0/name"] = (name + "\n").encode()
            b.files["/sys/class/pps/pps0/assert"] = b"0.000000000#0\n"
            b.files["/dev/pps0"] = b""
            b.links[boot.PPS_LINK] = "/dev/pps0"
        b.files["/dev/i2c-1"] = b""
        return b

    def _device_tree(self) -> None:
        dt = "/proc/device-tree"
        f = self.files
        f[f"{dt}/compatible"] = _string("raspberrypi,4-model-b") + _string("brcm,bcm2711")
        for label, path in (
            ("gpio", _GPIO),
            ("uart0", _UART0),
            ("uart0_gpio14", f"{_GPIO}/uart0-gpio14"),
            ("uart0_gpio32", f"{_GPIO}/uart0-gpio32"),
        ):
            f[f"{dt}/__symbols__/{label}"] = _string(path)
            if label in _PHANDLES:
                f[f"{dt}{path}/phandle"] = _cells(_PHANDLES[label])
        f[f"{dt}{_GPIO}/uart0-gpio14/brcm,pins"] = _cells(14, 15)
        f[f"{dt}{_GPIO}/uart0-gpio32/brcm,pins"] = _cells(32, 33)
        f[f"{dt}{_UART0}/status"] = _string("okay")
        if self.profile.serial_bus == "uart":
            f[f"{dt}{_UART0}/pinctrl-0"] = _cells(_PHANDLES["uart0_gpio14"])
            f[f"{dt}{_UART0}/bluetooth/status"] = _string("disabled")
        else:
            f[f"{dt}{_UART0}/pinctrl-0"] = _cells(_PHANDLES["uart0_gpio32"])
            f[f"{dt}{_UART0}/bluetooth/status"] = _string("okay")
        if self.profile.pps_source == "kernel" and self.profile.pps_gpio is not None:
            self.move_pps(self.profile.pps_gpio)

    # -- verbs that break a link ----------------------------------------------------------

    def add_console(self, word: str = "console=serial0,115200") -> None:
        """A login console on the GPS UART, in cmdline.txt and so in the running kernel's command line."""
        for path in ("/boot/firmware/cmdline.txt", "/proc/cmdline"):
            self.files[path] = (word + " " + self.files[path].decode()).encode()

    def enable_getty(self) -> None:
        """``systemctl enable serial-getty@ttyAMA0`` (and started: its cgroup exists)."""
        unit = "serial-getty@ttyAMA0.service"
        self.links[f"/etc/systemd/system/getty.target.wants/{unit}"] = "/lib/systemd/system/serial-getty@.service"
        self.files[f"/sys/fs/cgroup/system.slice/system-serial\\x2dgetty.slice/{unit}/cgroup.procs"] = b"612\n"

    def bluetooth_on_uart(self) -> None:
        """The UART overlay did not apply: the PL011 stays on GPIO 32/33 with Bluetooth."""
        self.files[f"/proc/device-tree{_UART0}/pinctrl-0"] = _cells(_PHANDLES["uart0_gpio32"])
        self.files[f"/proc/device-tree{_UART0}/bluetooth/status"] = _string("okay")

    def move_pps(self, pin: int | None) -> None:
        """The pps-gpio node on another ``pin`` (an old line in config.txt), or none at all."""
        for path in [p for p in self.files if p.startswith("/proc/device-tree/pps")]:
            del self.files[path]
        if pin is None:
            return
        node = f"/proc/device-tree/pps-gpio{pin}" if self.kernel == "upstream" else "/proc/device-tree/pps@12"
        self.files[f"{node}/compatible"] = _string("pps-gpio")
        self.files[f"{node}/gpios"] = _cells(_PHANDLES["gpio"], pin, 0)
        self.files[f"{node}/status"] = _string("okay")

    def set_config_txt(self, text: str) -> None:
        self.files["/boot/firmware/config.txt"] = text.encode()

    def config_txt(self) -> str:
        return self.files["/boot/firmware/config.txt"].decode()

    def remove(self, path: str) -> None:
        """Take away a file, a link, or everything under a directory."""
        self.files.pop(path, None)
        self.links.pop(path, None)
        for p in [p for p in (*self.files, *self.links) if p.startswith(path.rstrip("/") + "/")]:
            self.files.pop(p, None)
            self.links.pop(p, None)

    def deny(self, path: str) -> None:
        """Reading ``path`` (or anything under it) fails with EACCES, as for a user outside its group."""
        self.denied.add(path)

    # -- the Board interface --------------------------------------------------------------

    def _check(self, path: str) -> None:
        if any(path == d or path.startswith(d.rstrip("/") + "/") for d in self.denied):
            raise PermissionError(errno.EACCES, "Permission denied", path)

    def read(self, path: str) -> bytes:
        path = self.resolve(path)
        self._check(path)
        if path in self.files:
            return self.files[path]
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)

    def listdir(self, path: str) -> list[str]:
        self._check(path)
        prefix = path.rstrip("/") + "/"
        names = {p[len(prefix) :].split("/", 1)[0] for p in (*self.files, *self.links) if p.startswith(prefix)}
        if not names:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return sorted(names)

    def resolve(self, path: str) -> str:
        self._check(path)
        for _ in range(40):
            if path in self.links:
                path = self.links[path]
                continue
            parent, _, name = path.rpartition("/")
            if parent and parent in self.links:
                path = self.links[parent] + "/" + name
                continue
            break
        prefix = path.rstrip("/") + "/"
        if path in self.files or any(p.startswith(prefix) for p in (*self.files, *self.links)):
            return path
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)

    def capture(self, serial: str | None, baud: int, pps_assert: str | None, seconds: float) -> Capture:
        self.captures.append((serial, baud, pps_assert, seconds))
        serial_error: str | None = None
        if serial is None:
            serial_error = "no serial device"
        elif self.busy:
            return self._capture_pps(pps_assert, seconds, serial_error=f"{serial}: in use", busy=True)
        else:
            try:
                self.read(serial)
            except OSError as e:
                serial_error = f"{serial}: {e.strerror}"
        chunks: list[tuple[int, bytes]] = []
        if serial_error is None and not self.silent:
            chunks = self._nmea(seconds)
        return self._capture_pps(pps_assert, seconds, serial_error=serial_error, chunks=tuple(chunks))

    def _nmea(self, seconds: float) -> list[tuple[int, bytes]]:
        model = self.profile.fake_model or "mtk3339"
        gps = FakeGps(model, start_ns=self.now_ns)
        if not self.fix:
            gps.lose_fix()
        out: list[tuple[int, bytes]] = []
        end = self.now_ns + int(seconds * NS_PER_S)
        t = self.now_ns
        jumped = False
        while t <= end:
            if self.jump_weeks_midway and not jumped and gps.bursts >= 1:
                gps.jump_weeks(1)
                jumped = True
            for chunk in gps.tick(t):
                data = bytes((b * 7 + 3) & 0xFF for b in chunk.data) if self.garbled else chunk.data
                out.append((chunk.at_ns + self.clock_offset_ns, data))
            t += _STEP_NS
        return out

    def _capture_pps(
        self,
        pps_assert: str | None,
        seconds: float,
        *,
        serial_error: str | None,
        busy: bool = False,
        chunks: tuple[tuple[int, bytes], ...] = (),
    ) -> Capture:
        asserts: list[str] = []
        pps_error: str | None = None
        if pps_assert is None:
            pps_error = "no PPS device"
        else:
            try:
                asserts.append(self.read(pps_assert).decode().strip())
            except OSError as e:
                pps_error = e.strerror
        if pps_error is None and self.pulses and self.fix:
            edge = (self.now_ns // NS_PER_S + 1) * NS_PER_S
            seq = 0
            while edge <= self.now_ns + int(seconds * NS_PER_S):
                seq += 1
                local = edge + self.clock_offset_ns
                asserts.append(f"{local // NS_PER_S}.{local % NS_PER_S:09d}#{seq}")
                edge += self.pulse_period_ns
        return Capture(
            seconds=seconds,
            chunks=chunks,
            asserts=tuple(asserts),
            serial_error=serial_error,
            serial_busy=busy,
            pps_error=pps_error,
        )

    def i2c_probe(self, bus: int, address: int) -> bool:
        device = f"/dev/i2c-{bus}"
        self._check(device)
        if device not in self.files:
            raise FileNotFoundError(errno.ENOENT, "No such device", device)
        return address in self.lcd_addresses
