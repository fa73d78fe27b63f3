"""``stratum1 doctor``: walk the GPS chain of a board link by link and say which one is broken (pure).

The chain, in the order a signal travels it and a person fixes it:

 1. ``profile``: which board this is (``/etc/stratum1/profile.json``, or ``--profile``);
 2. ``config.txt``: the lines the board needs are in ``/boot/firmware/config.txt``, and the
    overlays they name are on the boot partition (the firmware skips a missing one silently);
 3. ``GPS serial port``: the UART (or USB device) is there, ``/dev/gps0`` points at it;
 4. ``serial console``: no login console on it (``console=`` in the kernel's command line,
    ``serial-getty@`` enabled or running);
 5. ``Bluetooth``: the header UART is the PL011, not the mini UART (Bluetooth moved off it);
 6. ``pps-gpio``: the overlay is loaded on the pin the profile names (``/proc/device-tree``);
 7. ``PPS device``: the kernel made ``/dev/ppsN`` for it (``/sys/class/pps``), ``/dev/gpspps0``;
 8. ``PPS pulses``: one a second (``/sys/class/pps/ppsN/assert`` over a few seconds, as
    ``ppstest`` shows them);
 9. ``NMEA``: sentences arrive, decode (:mod:`appliance.nmea`), at which rate, with a fix;
10. ``pulse and second``: each burst follows a pulse at a steady delay, and the pulses fall on
    the seconds the sentences name;
11. ``I2C display``: an HD44780 backpack answers at 0x27 or 0x3F;
12. ``leftovers``: lines from old guides (a ``pps-gpio`` on another pin, ``nohz=off``).

Every check is a function of a :class:`Board` (file reads, a capture of the serial port and the
PPS for a few seconds, an I2C probe) and the profile, with no I/O of its own: the real board is
:class:`appliance.io.board.LiveBoard`, the fake :class:`appliance.fakes.board.FakeBoard`. A check
says ``ok``, ``fail`` (with what to type) or ``unknown`` (what it could not read, and why: the
doctor runs without root and says so instead of failing).
"""

from __future__ import annotations

import enum
import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from appliance.hw import boot
from appliance.nmea.rollover import RolloverPolicy
from appliance.nmea.stream import NmeaStream
from appliance.refclock.profiles import Profile
from appliance.timebase import NS_PER_S

PROFILE_JSON = "/etc/stratum1/profile.json"
CONFIG_TXT = ("/boot/firmware/config.txt", "/boot/config.txt")
CMDLINE_TXT = ("/boot/firmware/cmdline.txt", "/boot/cmdline.txt")
DT = "/proc/device-tree"
PPS_CLASS = "/sys/class/pps"
#: HD44780 LCD backpacks (PCF8574 at 0x27, PCF8574A at 0x3F).
LCD_ADDRESSES = (0x27, 0x3F)
#: How long the serial port and the PPS are watched.
CAPTURE_S = 3.0
#: Pulses this far from 1 s apart are not a PPS (the system clock's rate error is ppm, not ms).
PULSE_INTERVAL_TOLERANCE_NS = 20_000_000
#: A burst this long after a pulse belongs to it (refclock/gps.py pairs the same way).
MAX_NMEA_DELAY_NS = 950_000_000
#: Bursts whose delays after their pulses spread wider than this do not follow the pulses.
DELAY_SPREAD_NS = 200_000_000
#: Lines of old guides that are harmless but worth knowing about: word -> why.
OLD_GUIDE_WORDS = {
    "nohz=off": "from old NTP guides (a periodic tick for steadier timing); harmless, costs a little power",
}


class Status(enum.Enum):
    OK = "ok"
    FAIL = "fail"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Finding:
    """One link of the chain: what was seen and, when it is broken or unseen, what to type."""

    link: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class Capture:
    """What the serial port and the PPS gave over ``seconds``: the raw material of three checks.

    ``chunks`` are (local POSIX ns when noticed, bytes) as the serial driver reads them;
    ``asserts`` the distinct values ``/sys/class/pps/ppsN/assert`` showed
    (``SECONDS.NANOSECONDS#SEQUENCE``). An ``*_error`` says why a side could not be read
    (``serial_busy``: another program holds the port).
    """

    seconds: float
    chunks: tuple[tuple[int, bytes], ...] = ()
    asserts: tuple[str, ...] = ()
    serial_error: str | None = None
    serial_busy: bool = False
    pps_error: str | None = None


class Board(Protocol):
    """What the doctor reads of a board. File reads raise :class:`OSError` as the real ones do."""

    def read(self, path: str) -> bytes: ...

    def listdir(self, path: str) -> list[str]: ...

    def resolve(self, path: str) -> str:
        """The path with its symbolic links followed; :class:`FileNotFoundError` when it leads nowhere."""
        ...

    def capture(self, serial: str | None, baud: int, pps_assert: str | None, seconds: float) -> Capture:
        """Read ``serial`` at ``baud`` and poll the sysfs ``pps_assert`` file for ``seconds``."""
        ...

    def i2c_probe(self, bus: int, address: int) -> bool:
        """Whether a device acknowledges ``address`` on ``/dev/i2c-<bus>``; :class:`OSError` if the bus won't open."""
        ...


@dataclass(frozen=True, slots=True)
class Plan:
    """What the board should look like: the profile and the kernel it was set up for."""

    profile: Profile
    kernel: boot.Kernel
    source: str

    @property
    def pin(self) -> int | None:
        return self.profile.pps_gpio if self.profile.pps_source == "kernel" else None


@dataclass(slots=True)
class _Seen:
    """Facts one check finds and a later one uses (the serial device, the PPS source)."""

    serial: str | None = None
    config_txt: Status | None = None  # what check_config_txt found: the UART's fix depends on it
    pps_node: bool = False
    pps_dir: str | None = None
    capture: Capture | None = None


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip()


def _cells(raw: bytes) -> list[int]:
    return list(struct.unpack(f">{len(raw) // 4}I", raw[: len(raw) // 4 * 4]))


def _why(e: OSError) -> str:
    return e.strerror or type(e).__name__


def _first_readable(board: Board, paths: Sequence[str]) -> tuple[str, str] | None:
    for p in paths:
        try:
            return p, board.read(p).decode("utf-8", "replace")
        except FileNotFoundError:
            continue
    return None


def _active_lines(text: str) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def _unknown(link: str, what: str, e: OSError) -> Finding:
    fix = "sudo stratum1 doctor" if isinstance(e, PermissionError) else ""
    return Finding(link, Status.UNKNOWN, f"could not read {what}: {_why(e)}", fix)


# -- the links ------------------------------------------------------------------------------


def check_config_txt(board: Board, plan: Plan, seen: _Seen) -> Finding:
    finding = _config_txt(board, plan)
    seen.config_txt = finding.status
    return finding


def _config_txt(board: Board, plan: Plan) -> Finding:
    link = "config.txt"
    try:
        found = _first_readable(board, CONFIG_TXT)
    except OSError as e:
        return _unknown(link, CONFIG_TXT[0], e)
    if found is None:
        return Finding(
            link, Status.UNKNOWN, f"no {CONFIG_TXT[0]} (not a Raspberry Pi, or the boot partition is not mounted)"
        )
    path, text = found
    lines = _active_lines(text)
    want = [*boot.gps_config_txt(plan.profile, plan.kernel), boot.i2c_config_txt(plan.kernel)]
    missing = [w for w in want if w not in lines]
    if missing:
        add = "\\n".join(missing)
        return Finding(
            link,
            Status.FAIL,
            f"{path} lacks {', '.join(missing)}",
            f"printf '{add}\\n' | sudo tee -a {path} && sudo reboot",
        )
    if plan.kernel == "upstream":
        custom = boot.RASPI_FIRMWARE_CUSTOM
        try:
            kept = _active_lines(board.read(custom).decode("utf-8", "replace"))
        except FileNotFoundError:
            kept = []
        except OSError:
            kept = want
        lost = [w for w in want if w not in kept]
        if lost:
            add = "\\n".join(lost)
            return Finding(
                link,
                Status.FAIL,
                f"{path} has the lines, but {custom} lacks {', '.join(lost)}: Debian's raspi-firmware rewrites "
                "config.txt from it at the next kernel update, and they would be gone",
                f"printf '{add}\\n' | sudo tee -a {custom}",
            )
        folder = path.rsplit("/", 1)[0] + "/overlays"
        absent = []
        for line in lines:
            if line.startswith("dtoverlay="):
                name = line.removeprefix("dtoverlay=").split(",", 1)[0]
                try:
                    board.read(f"{folder}/{name}.dtbo")
                except FileNotFoundError:
                    absent.append(name)
                except OSError:
                    pass
        if absent:
            names = " ".join(absent)
            return Finding(
                link,
                Status.FAIL,
                f"{path} names overlays that {folder} lacks, so the firmware skips them: {', '.join(absent)}",
                f"python3 -m appliance.hw render --profile {plan.profile.name} --out /tmp/hw && "
                f"for o in {names}; do sudo dtc -@ -q -I dts -O dtb -o {folder}/$o.dtbo /tmp/hw/overlays/$o.dts; done"
                " && sudo reboot",
            )
    return Finding(link, Status.OK, f"{path} has {', '.join(want)}")


def check_serial_port(board: Board, plan: Plan, seen: _Seen) -> Finding:
    link = "GPS serial port"
    p = plan.profile
    device = boot.HEADER_UART if p.serial_bus == "uart" else p.serial_device
    try:
        target = board.resolve(boot.GPS_LINK)
    except FileNotFoundError:
        target = None
    except OSError as e:
        return _unknown(link, boot.GPS_LINK, e)
    if p.serial_bus == "uart":
        tty = device.removeprefix("/dev/")
        try:
            parent = board.resolve(f"/sys/class/tty/{tty}/device").rsplit("/", 1)[-1]
        except FileNotFoundError:
            parent = None
        except OSError as e:
            return _unknown(link, f"/sys/class/tty/{tty}", e)
        if parent is None:
            return _no_uart(plan, device, seen.config_txt)
        if parent not in boot.HEADER_UART_DEVICES:
            return Finding(link, Status.FAIL, f"{device} is {parent}, not the PL011 at 0x7e201000")
    elif target is None:
        try:
            board.read(device)
        except FileNotFoundError:
            return Finding(
                link,
                Status.FAIL,
                f"no {device} and no {boot.GPS_LINK}: the USB receiver is not plugged in or has another name",
                "ls -l /dev/ttyACM* /dev/ttyUSB*",
            )
        except OSError:
            pass
    if target is None:
        seen.serial = device
        return Finding(
            link,
            Status.FAIL,
            f"{device} is there but {boot.GPS_LINK} is not: the appliance's udev rules are not installed",
            "python3 -m appliance.hw render --profile "
            f"{p.name} --out /tmp/hw && sudo cp /tmp/hw/udev/99-stratum1.rules /etc/udev/rules.d/ && "
            "sudo udevadm control --reload && sudo udevadm trigger",
        )
    seen.serial = boot.GPS_LINK
    return Finding(link, Status.OK, f"{boot.GPS_LINK} -> {target}")


def _no_uart(plan: Plan, device: str, config_txt: Status | None) -> Finding:
    """No header UART: its fix follows what the config.txt link found (lines there: a reboot, not them again)."""
    link = "GPS serial port"
    if config_txt is Status.OK:
        return Finding(
            link,
            Status.FAIL,
            f"no {device}, though config.txt has the lines: not rebooted since they went in (or the firmware "
            "did not apply them: see 'dmesg | grep -i uart' after the reboot)",
            "sudo reboot",
        )
    if config_txt is Status.UNKNOWN:
        return Finding(link, Status.UNKNOWN, f"no {device}, and config.txt could not be read (above)")
    return Finding(link, Status.FAIL, f"no {device}: the PL011 UART is not enabled (config.txt: the fix above)")


def check_console(board: Board, plan: Plan, seen: _Seen) -> Finding:
    link = "serial console"
    if plan.profile.serial_bus != "uart":
        return Finding(link, Status.OK, "the receiver is on USB: no console to clash with")
    remove = boot.cmdline_remove(plan.profile)
    problems: list[str] = []
    fixes: list[str] = []
    found = None
    try:
        found = _first_readable(board, CMDLINE_TXT)
    except OSError as e:
        problems.append(f"could not read {CMDLINE_TXT[0]}: {_why(e)}")
    if found is not None:
        path, text = found
        for word in text.split():
            if boot.strip_cmdline(word, remove) == "":
                problems.append(f"{word} in {path}")
                fixes.append(f"sudo sed -i 's/ *{word}//' {path}")
    try:
        running = board.read("/proc/cmdline").decode("utf-8", "replace")
        for word in running.split():
            if boot.strip_cmdline(word, remove) == "" and not any(word in p for p in problems):
                problems.append(f"{word} in the running kernel's command line (/proc/cmdline)")
    except OSError:
        pass
    if plan.kernel == "upstream":
        _debian_sources(board, remove, problems, fixes)
    tty = boot.HEADER_UART.removeprefix("/dev/")
    getty = f"serial-getty@{tty}.service"
    for where, what in (
        (f"/etc/systemd/system/getty.target.wants/{getty}", "enabled"),
        (f"/sys/fs/cgroup/system.slice/system-serial\\x2dgetty.slice/{getty}", "running"),
    ):
        try:
            board.resolve(where)
        except OSError:
            continue
        problems.append(f"{getty} {what}")
        if f"sudo systemctl disable --now {getty}" not in fixes:
            fixes.append(f"sudo systemctl disable --now {getty}")
    if any(p.startswith("could not") for p in problems) and len(problems) == 1:
        return Finding(link, Status.UNKNOWN, problems[0])
    if problems:
        if any(" in " in p for p in problems):
            fixes.append("sudo reboot")
        return Finding(link, Status.FAIL, "a login console on the GPS UART: " + "; ".join(problems), " && ".join(fixes))
    return Finding(link, Status.OK, f"no console on {tty}, no {getty}")


#: Where Debian's raspi-firmware takes cmdline.txt from when it rewrites it (at every kernel update).
RASPI_FIRMWARE = "/etc/default/raspi-firmware"
RASPI_EXTRA_CMDLINE = "/etc/default/raspi-extra-cmdline"


def _debian_sources(board: Board, remove: tuple[str, ...], problems: list[str], fixes: list[str]) -> None:
    """Console words in the files Debian's raspi-firmware writes cmdline.txt from: they would come back."""
    try:
        extra = board.read(RASPI_EXTRA_CMDLINE).decode("utf-8", "replace")
    except OSError:
        extra = ""
    for word in extra.split():
        if boot.strip_cmdline(word, remove) == "":
            problems.append(f"{word} in {RASPI_EXTRA_CMDLINE} (raspi-firmware puts it back at kernel updates)")
            fixes.append(f"sudo sed -i 's/ *{word}//' {RASPI_EXTRA_CMDLINE}")
    try:
        settings = board.read(RASPI_FIRMWARE).decode("utf-8", "replace")
    except OSError:
        settings = ""
    for line in _active_lines(settings):
        name, _, value = line.partition("=")
        if name.strip() != "CONSOLES":
            continue
        consoles = value.strip().strip("\"'").split()
        if any(boot.strip_cmdline(f"console={c}", remove) == "" for c in consoles):
            problems.append(f"CONSOLES={value.strip()} in {RASPI_FIRMWARE} (raspi-firmware writes it into cmdline.txt)")
            fixes.append(f"sudo sed -i 's/^CONSOLES=.*/CONSOLES=\"tty0\"/' {RASPI_FIRMWARE}")


def _node_of_label(board: Board, label: str) -> str:
    return DT + _text(board.read(f"{DT}/__symbols__/{label}"))


def _pins_of(board: Board, phandles: list[int]) -> list[int]:
    """The ``brcm,pins`` of the pin groups with these phandles (labelled nodes only)."""
    pins: list[int] = []
    for label in board.listdir(f"{DT}/__symbols__"):
        try:
            node = _node_of_label(board, label)
            if _cells(board.read(node + "/phandle"))[0] in phandles:
                pins += _cells(board.read(node + "/brcm,pins"))
        except (OSError, IndexError):
            continue
    return pins


def check_bluetooth(board: Board, plan: Plan, seen: _Seen) -> Finding:
    link = "Bluetooth off the UART"
    if plan.profile.serial_bus != "uart":
        return Finding(link, Status.OK, "the receiver is on USB")
    fix_line = "dtoverlay=disable-bt" if plan.kernel == "raspios" else f"dtoverlay={boot.UART_OVERLAY}"
    fix = f"echo '{fix_line}' | sudo tee -a {CONFIG_TXT[0]} && sudo reboot"
    if plan.kernel == "raspios":
        fix = fix.replace(" && sudo reboot", " && sudo systemctl disable hciuart && sudo reboot")
    try:
        uart0 = _node_of_label(board, "uart0")
        phandles = _cells(board.read(uart0 + "/pinctrl-0"))
        pins = _pins_of(board, phandles)
    except OSError as e:
        return _unknown(link, f"the device tree ({DT}/__symbols__/uart0)", e)
    try:
        bt = _text(board.read(uart0 + "/bluetooth/status"))
    except FileNotFoundError:
        bt = "absent"
    except OSError:
        bt = "?"
    if 14 in pins and 15 in pins:
        return Finding(link, Status.OK, f"the PL011 (uart0) is on GPIO 14/15; its Bluetooth node: {bt}")
    where = f"GPIO {'/'.join(map(str, sorted(set(pins))))}" if pins else "pins this check could not find"
    return Finding(
        link,
        Status.FAIL,
        f"the PL011 (uart0) is on {where} (Bluetooth's): the header has the mini UART, whose rate drifts",
        fix,
    )


def _pps_nodes(board: Board) -> list[tuple[str, int | None, bool]]:
    """(node, pin, enabled) of every pps-gpio node at the device tree's top level."""
    found = []
    for name in board.listdir(DT):
        try:
            compatible = board.read(f"{DT}/{name}/compatible")
        except OSError:
            continue
        if b"pps-gpio" not in compatible.split(b"\0"):
            continue
        try:
            cells = _cells(board.read(f"{DT}/{name}/gpios"))
            pin: int | None = cells[1]
        except (OSError, IndexError):
            pin = None
        try:
            enabled = _text(board.read(f"{DT}/{name}/status")) in ("okay", "ok")
        except FileNotFoundError:
            enabled = True
        except OSError:
            enabled = False
        found.append((name, pin, enabled))
    return found


def _pps_line(plan: Plan) -> str:
    assert plan.pin is not None
    return next(line for line in boot.gps_config_txt(plan.profile, plan.kernel) if "pps" in line)


def check_pps_overlay(board: Board, plan: Plan, seen: _Seen) -> Finding:
    link = "pps-gpio overlay"
    if plan.pin is None:
        return Finding(link, Status.OK, f"the profile has no kernel PPS ({plan.profile.pps_source})")
    try:
        nodes = _pps_nodes(board)
    except OSError as e:
        return _unknown(link, DT, e)
    on_pin = [n for n in nodes if n[1] == plan.pin and n[2]]
    seen.pps_node = bool(nodes)
    if on_pin:
        return Finding(link, Status.OK, f"{DT}/{on_pin[0][0]} watches GPIO {plan.pin}")
    line = _pps_line(plan)
    others = ", ".join(f"GPIO {pin}" for _, pin, on in nodes if on)
    if others:
        return Finding(
            link,
            Status.FAIL,
            f"pps-gpio watches {others}, but the {plan.profile.title}'s PPS is on GPIO {plan.pin}",
            f"sudo nano {CONFIG_TXT[0]}   # replace the pps-gpio line with: {line}; then sudo reboot",
        )
    return Finding(
        link,
        Status.FAIL,
        f"no pps-gpio node in the device tree: the overlay was not loaded (GPIO {plan.pin})",
        f"echo '{line}' | sudo tee -a {CONFIG_TXT[0]} && sudo reboot",
    )


def check_pps_device(board: Board, plan: Plan, seen: _Seen) -> Finding:
    link = "PPS device"
    if plan.pin is None:
        return Finding(link, Status.OK, "no kernel PPS in this profile")
    if not seen.pps_node:
        return Finding(link, Status.UNKNOWN, "no pps-gpio node to make one (see above)")
    try:
        entries = sorted(board.listdir(PPS_CLASS))
    except FileNotFoundError:
        entries = []
    except OSError as e:
        return _unknown(link, PPS_CLASS, e)
    wanted = boot.pps_source_name(plan.pin) if plan.kernel == "upstream" else None
    names: dict[str, str] = {}
    for entry in entries:
        try:
            names[entry] = _text(board.read(f"{PPS_CLASS}/{entry}/name"))
        except OSError:
            continue
    match = [e for e, n in names.items() if (n == wanted if wanted else n.startswith("pps@"))]
    if not match:
        said = ", ".join(f"{e} ({n})" for e, n in names.items()) or "none"
        return Finding(
            link,
            Status.FAIL,
            f"no PPS source {wanted or 'pps@...'} in {PPS_CLASS} (there: {said}): the pps-gpio driver is not bound",
            "sudo modprobe pps-gpio   # if that fails, the kernel lacks CONFIG_PPS_CLIENT_GPIO: put "
            f"'ppspath gpio:{plan.pin}' in /etc/stratum1/ntp.conf to timestamp the pin through libgpiod",
        )
    entry = match[0]
    seen.pps_dir = f"{PPS_CLASS}/{entry}"
    try:
        board.resolve(f"/dev/{entry}")
    except OSError:
        return Finding(link, Status.FAIL, f"{PPS_CLASS}/{entry} but no /dev/{entry}", "sudo udevadm trigger")
    try:
        link_target = board.resolve(boot.PPS_LINK)
    except OSError:
        return Finding(
            link,
            Status.FAIL,
            f"/dev/{entry} ({names[entry]}) but no {boot.PPS_LINK}: the appliance's udev rules are not installed",
            f"python3 -m appliance.hw render --profile {plan.profile.name} --out /tmp/hw && "
            "sudo cp /tmp/hw/udev/99-stratum1.rules /etc/udev/rules.d/ && sudo udevadm trigger",
        )
    return Finding(link, Status.OK, f"/dev/{entry} ({names[entry]}), {boot.PPS_LINK} -> {link_target}")


def parse_assert(text: str) -> tuple[int, int] | None:
    """``SECONDS.NANOSECONDS#SEQUENCE`` (sysfs) as (POSIX ns, sequence); None for no edge yet (``0.000000000#0``)."""
    try:
        stamp, seq = text.strip().split("#")
        sec, frac = stamp.split(".")
        ns = int(sec) * NS_PER_S + int(frac.ljust(9, "0")[:9])
        return (ns, int(seq)) if int(seq) > 0 else None
    except ValueError:
        return None


def _pulses(capture: Capture) -> list[int]:
    seen: dict[int, int] = {}
    for text in capture.asserts:
        parsed = parse_assert(text)
        if parsed is not None:
            seen[parsed[1]] = parsed[0]
    return [seen[k] for k in sorted(seen)]


def check_pulses(board: Board, plan: Plan, seen: _Seen) -> Finding:
    link = "PPS pulses"
    if plan.pin is None:
        return Finding(link, Status.OK, "no PPS in this profile")
    capture = seen.capture
    if capture is None or seen.pps_dir is None:
        return Finding(link, Status.UNKNOWN, "no PPS device to watch (see above)")
    if capture.pps_error:
        return Finding(link, Status.UNKNOWN, f"could not read {seen.pps_dir}/assert: {capture.pps_error}")
    pulses = _pulses(capture)
    if not pulses:
        return Finding(
            link,
            Status.FAIL,
            f"no pulse in {capture.seconds:g} s: the receiver sends PPS only with a fix (see NMEA below); "
            f"with a fix, the pulse is not on GPIO {plan.pin}",
            f"sudo ppstest /dev/{seen.pps_dir.rsplit('/', 1)[-1]}",
        )
    gaps = [b - a for a, b in zip(pulses, pulses[1:], strict=False)]
    bad = [
        g for g in gaps if abs(g - round(g / NS_PER_S) * NS_PER_S) > PULSE_INTERVAL_TOLERANCE_NS or g < NS_PER_S // 2
    ]
    if bad:
        return Finding(
            link,
            Status.FAIL,
            f"{len(pulses)} edges in {capture.seconds:g} s, {bad[0] / NS_PER_S:.3f} s apart: not a pulse per second "
            "(noise on the pin, or another signal)",
            "check the wiring of the PPS pin; gpiomon shows every edge",
        )
    if len(pulses) == 1:
        return Finding(link, Status.FAIL, f"one pulse in {capture.seconds:g} s", f"sudo ppstest {seen.pps_dir}")
    span = ", ".join(f"{g / NS_PER_S:.6f}" for g in gaps)
    return Finding(link, Status.OK, f"{len(pulses)} pulses in {capture.seconds:g} s, {span} s apart")


@dataclass(frozen=True, slots=True)
class _Nmea:
    epochs: int
    valid: int
    sentences: int
    bytes: int
    garbage: int
    arrivals: tuple[tuple[int, int | None], ...]  # (arrival ns, utc ns) of valid epochs
    best: str


def _decode(capture: Capture, build_date_ns: int) -> _Nmea:
    stream = NmeaStream(RolloverPolicy(build_date_ns))
    fixes = []
    for at, data in capture.chunks:
        fixes += stream.feed(data, at)
    fixes += stream.flush()
    c = stream.counters
    valid = [f for f in fixes if f.valid]
    best = ""
    if valid:
        f = valid[-1]
        best = f"{f.mode.name.replace('_', '').replace('TWOD', '2D').replace('THREED', '3D')} fix"
        if f.sats_used is not None:
            best += f", {f.sats_used} satellites"
    return _Nmea(
        epochs=len(fixes),
        valid=len(valid),
        sentences=c.decoded + c.ignored + c.proprietary,
        bytes=c.bytes_in,
        garbage=c.garbage_bytes + c.bad_checksum,
        arrivals=tuple((f.arrival_ns, f.utc_ns) for f in valid),
        best=best,
    )


def check_nmea(board: Board, plan: Plan, seen: _Seen, build_date_ns: int) -> Finding:
    link = "NMEA"
    capture = seen.capture
    if capture is None or seen.serial is None:
        return Finding(link, Status.UNKNOWN, "no serial device to read (see above)")
    if capture.serial_busy:
        return Finding(
            link,
            Status.UNKNOWN,
            f"{seen.serial} is held by another program (the stratum1 service holds it while it runs)",
            "sudo systemctl stop stratum1 && sudo stratum1 doctor; sudo systemctl start stratum1",
        )
    if capture.serial_error:
        return Finding(link, Status.UNKNOWN, f"could not read {capture.serial_error}", "sudo stratum1 doctor")
    n = _decode(capture, build_date_ns)
    rate = f"{plan.profile.baud} baud"
    if n.bytes == 0:
        return Finding(
            link,
            Status.FAIL,
            f"nothing on {seen.serial} in {capture.seconds:g} s: no power, TX not on the Pi's RXD (GPIO 15), "
            "or the wrong UART",
            f"stty -F {seen.serial} {plan.profile.baud} raw -echo && timeout 5 cat {seen.serial}",
        )
    if n.sentences == 0:
        return Finding(
            link,
            Status.FAIL,
            f"{n.bytes} bytes in {capture.seconds:g} s at {rate}, none of them a sentence: the wrong baud rate",
            f"for b in 4800 9600 38400 115200; do echo $b; stty -F {seen.serial} $b raw -echo; "
            f"timeout 3 cat {seen.serial}; done",
        )
    per_s = f"{n.sentences / capture.seconds:.1f} sentences and {n.bytes / capture.seconds:.0f} bytes a second"
    if n.valid == 0:
        return Finding(
            link,
            Status.FAIL,
            f"{per_s} at {rate}, {n.epochs} epochs, no fix: the receiver does not see enough satellites",
            "put the antenna where it sees the sky and wait (a cold start takes minutes)",
        )
    return Finding(link, Status.OK, f"{per_s} at {rate}; {n.epochs} epochs, {n.valid} with a fix ({n.best})")


def check_agreement(board: Board, plan: Plan, seen: _Seen, build_date_ns: int) -> Finding:
    link = "pulse and second"
    if plan.pin is None:
        return Finding(link, Status.OK, "no PPS: the NMEA alone gives the time")
    capture = seen.capture
    if capture is None or capture.serial_error or capture.pps_error or seen.pps_dir is None:
        return Finding(link, Status.UNKNOWN, "needs both the pulses and the sentences (see above)")
    pulses = _pulses(capture)
    epochs = [(a, u) for a, u in _decode(capture, build_date_ns).arrivals if u is not None]
    if not pulses or not epochs:
        return Finding(link, Status.UNKNOWN, "needs pulses and dated sentences with a fix (see above)")
    delays: list[int] = []
    offsets: list[int] = []
    for arrival, utc in epochs:
        before = [p for p in pulses if 0 <= arrival - p < MAX_NMEA_DELAY_NS]
        if before:
            delays.append(arrival - before[-1])
            offsets.append(before[-1] - utc)
    if not delays:
        return Finding(
            link,
            Status.FAIL,
            f"no burst of sentences came within {MAX_NMEA_DELAY_NS / NS_PER_S:g} s after a pulse",
            "check that the PPS pin is this receiver's",
        )
    spread = max(delays) - min(delays)
    steps = {round(o / NS_PER_S) for o in offsets}
    if spread > DELAY_SPREAD_NS or len(steps) > 1:
        return Finding(
            link,
            Status.FAIL,
            f"the bursts follow the pulses by {min(delays) / NS_PER_S:.3f}-{max(delays) / NS_PER_S:.3f} s: not one "
            "receiver's pulse and sentences, or a receiver that drops seconds",
            "check that the PPS pin is this receiver's",
        )
    offset = sum(offsets) / len(offsets) / NS_PER_S
    clock = f"the clock reads {offset:+.6f} s at the pulses"
    if abs(offset) >= 0.5:
        clock += " (not set yet, or a receiver that names the next second: then it is -1 s)"
    return Finding(
        link,
        Status.OK,
        f"each burst follows its pulse by {min(delays) / NS_PER_S:.3f}-{max(delays) / NS_PER_S:.3f} s; {clock}",
    )


def check_display(board: Board, plan: Plan, seen: _Seen) -> Finding:
    link = "I2C display"
    bus = boot.HEADER_I2C_BUS
    answered = []
    for address in LCD_ADDRESSES:
        try:
            if board.i2c_probe(bus, address):
                answered.append(address)
        except FileNotFoundError:
            module = "echo i2c-dev | sudo tee /etc/modules-load.d/stratum1.conf && sudo modprobe i2c-dev"
            line = boot.i2c_config_txt(plan.kernel)
            return Finding(
                link,
                Status.FAIL,
                f"no /dev/i2c-{bus}: the header's I2C is off, or i2c-dev is not loaded",
                f"{module}; grep -q '^{line}' {CONFIG_TXT[0]} || "
                f"(echo '{line}' | sudo tee -a {CONFIG_TXT[0]} && sudo reboot)",
            )
        except OSError as e:
            return _unknown(link, f"/dev/i2c-{bus}", e)
    if answered:
        return Finding(
            link, Status.OK, f"an LCD answers at {', '.join(f'0x{a:02X}' for a in answered)} on /dev/i2c-{bus}"
        )
    return Finding(
        link,
        Status.FAIL,
        f"nothing answers at {' or '.join(f'0x{a:02X}' for a in LCD_ADDRESSES)} on /dev/i2c-{bus} "
        "(no display, or its wiring: SDA GPIO 2 pin 3, SCL GPIO 3 pin 5, 5 V, GND)",
        f"sudo i2cdetect -y {bus}",
    )


def check_leftovers(board: Board, plan: Plan, seen: _Seen) -> Finding:
    link = "leftovers"
    wrong: list[str] = []
    notes: list[str] = []
    try:
        found = _first_readable(board, CONFIG_TXT)
    except OSError:
        found = None
    if found is not None and plan.pin is not None:
        path, text = found
        for line in _active_lines(text):
            if line.startswith("dtoverlay=pps-gpio"):
                params = dict(p.partition("=")[::2] for p in line.split(",")[1:])
                pin = int(params.get("gpiopin", "18")) if params.get("gpiopin", "18").isdigit() else None
                if pin != plan.pin:
                    wrong.append(f"'{line}' in {path} (PPS on GPIO {pin}; the profile's is GPIO {plan.pin})")
    for where in (*CMDLINE_TXT[:1], "/proc/cmdline"):
        try:
            words = board.read(where).decode("utf-8", "replace").split()
        except OSError:
            continue
        for word in words:
            if word in OLD_GUIDE_WORDS and f"{word}" not in " ".join(notes):
                notes.append(f"{word} in {where}: {OLD_GUIDE_WORDS[word]}")
    if wrong:
        return Finding(
            link,
            Status.FAIL,
            "a line from an old guide: " + "; ".join(wrong),
            f"sudo nano {found[0] if found else CONFIG_TXT[0]}   # delete it, then sudo reboot",
        )
    return Finding(link, Status.OK, "; ".join(notes) if notes else "nothing from old guides")


# -- the walk -------------------------------------------------------------------------------


def plan_from(
    board: Board,
    profiles: dict[str, Profile],
    name: str | None,
    kernel: boot.Kernel | None,
    *,
    shown_as: str = PROFILE_JSON,
) -> Plan:
    """The plan: ``name``/``kernel`` when given, else ``/etc/stratum1/profile.json``; ValueError if neither.

    ``shown_as``: that file's name in the errors (under ``--root``, the path read, for the operator to fix).
    """
    info: dict[str, object] = {}
    source = "--profile"
    if name is None or kernel is None:
        try:
            info = json.loads(board.read(PROFILE_JSON))
            source = PROFILE_JSON
        except FileNotFoundError:
            if name is None:
                raise ValueError(
                    f"no {shown_as}: name the board with --profile ({', '.join(sorted(profiles))})"
                ) from None
        except (OSError, ValueError) as e:
            raise ValueError(f"{shown_as}: {e}") from None
    chosen = name or str(info.get("name"))
    if chosen not in profiles:
        raise ValueError(f"no profile {chosen!r} (there are: {', '.join(sorted(profiles))})")
    k = kernel or str(info.get("kernel", "upstream"))
    if k not in boot.KERNELS:
        raise ValueError(f"{shown_as}: kernel {k!r} is neither of {', '.join(boot.KERNELS)}")
    return Plan(profiles[chosen], "upstream" if k == "upstream" else "raspios", source)


def examine(board: Board, plan: Plan, build_date_ns: int, capture_s: float = CAPTURE_S) -> list[Finding]:
    """Walk the chain: one :class:`Finding` per link, in order."""
    seen = _Seen()
    steps: list[Callable[[Board, Plan, _Seen], Finding]] = [
        check_config_txt,
        check_serial_port,
        check_console,
        check_bluetooth,
        check_pps_overlay,
        check_pps_device,
    ]
    found = [Finding("profile", Status.OK, f"{plan.profile.name} ({plan.kernel} kernel), from {plan.source}")]
    found += [step(board, plan, seen) for step in steps]
    pps_assert = f"{seen.pps_dir}/assert" if seen.pps_dir else None
    if seen.serial is not None or pps_assert is not None:
        seen.capture = board.capture(seen.serial, plan.profile.baud, pps_assert, capture_s)
    found.append(check_pulses(board, plan, seen))
    found.append(check_nmea(board, plan, seen, build_date_ns))
    found.append(check_agreement(board, plan, seen, build_date_ns))
    found.append(check_display(board, plan, seen))
    found.append(check_leftovers(board, plan, seen))
    return found


MARKS = {Status.OK: "✓", Status.FAIL: "✗", Status.UNKNOWN: "?"}
ASCII_MARKS = {Status.OK: "[ok]", Status.FAIL: "[!!]", Status.UNKNOWN: "[??]"}


def format_text(findings: Sequence[Finding], ascii_only: bool = False) -> str:
    """One line per link (mark, link, what was seen), the command to type indented under it."""
    marks = ASCII_MARKS if ascii_only else MARKS
    arrow = "->" if ascii_only else "→"
    width = max(len(f.link) for f in findings)
    out = []
    for f in findings:
        out.append(f"{marks[f.status]} {f.link:<{width}}  {f.detail}")
        if f.fix and f.status is not Status.OK:
            out.append(f"  {' ' * len(marks[f.status])}{arrow} {f.fix}")
    broken = next((f for f in findings if f.status is Status.FAIL), None)
    if broken is not None:
        out.append(f"first broken link: {broken.link}")
    elif any(f.status is Status.UNKNOWN for f in findings):
        out.append("no broken link found; some could not be checked (above)")
    else:
        out.append("every link works")
    return "\n".join(out) + "\n"


def format_json(findings: Sequence[Finding], plan: Plan) -> str:
    broken = next((f.link for f in findings if f.status is Status.FAIL), None)
    data = {
        "profile": plan.profile.name,
        "kernel": plan.kernel,
        "broken": broken,
        "links": [{"link": f.link, "status": f.status.value, "detail": f.detail, "fix": f.fix} for f in findings],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
