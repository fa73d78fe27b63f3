"""Everything a Raspberry Pi needs for one board profile, as file texts (pure).

:func:`render` turns a :class:`~appliance.refclock.profiles.Profile` into the files that
``python3 -m appliance.hw render`` writes; where each one goes on the board is :func:`install_map`.
The profile holds the board's facts (bus, PPS pin, rate, NMEA offset), each once; every line here is
derived from them, so a pin changed in the TOML changes the overlay, the config.txt line, the udev
rule and ``profile.json`` together.

Two kernels, two ways to say the same thing:

``upstream`` (the image): Debian's own kernel (trixie's 6.12) boots with the upstream device trees
(``bcm2837-rpi-3-b``, ``bcm2837-rpi-zero-2-w``, ``bcm2711-rpi-4-b``...: raspi-firmware writes
``upstream_kernel=1``). In those trees ``uart0`` (the PL011, ``ttyAMA0``, alias ``serial0``) drives
the Bluetooth chip on GPIO 32/33 through a ``bluetooth`` child node, and ``uart1`` (the mini UART)
has the header's GPIO 14/15. No Debian package ships overlays for these trees (raspi-firmware's
``overlays/`` has two unrelated ones), and Raspberry Pi's own overlays name labels the upstream
trees lack (``&bt``, ``&uart0_pins``), so the appliance ships its own, compiled with ``dtc -@``
against the trees' ``__symbols__`` (``uart0``, ``uart1``, ``uart0_gpio14``, ``i2c1``,
``i2c1_gpio2``, ``gpio``):

- ``stratum1-uart0``: the PL011 to GPIO 14/15, the mini UART and Bluetooth off (what
  Raspberry Pi's ``disable-bt`` does: the PL011 has a real baud-rate clock and a 32-byte FIFO, the
  mini UART neither);
- ``stratum1-pps-gpioN``: the ``pps-gpio`` driver on GPIO N, rising edge (``/dev/ppsN``; the
  kernel names the source ``pps-gpioN.-1`` after the node);
- ``stratum1-i2c1``: the header's I2C (GPIO 2/3) on, for the LCD, and aliased ``i2c1`` so that
  it is ``/dev/i2c-1`` (the upstream trees alias no I2C bus). ``dtparam=i2c_arm=on`` does
  nothing here: it is a parameter of Raspberry Pi's trees, which upstream trees do not define.

On Debian, raspi-firmware rewrites ``/boot/firmware/config.txt`` at every kernel or firmware
update, appending :data:`RASPI_FIRMWARE_CUSTOM`: the block goes there too (:func:`install_map`).

``raspios`` (the ``.deb`` on Raspberry Pi OS): Raspberry Pi's kernel and trees, which have the
standard overlays: ``dtoverlay=disable-bt``, ``dtoverlay=pps-gpio,gpiopin=N``,
``dtparam=i2c_arm=on`` (docs/gps.md quotes these lines).

The serial console: neither kernel must have a ``console=`` on the GPS UART (a getty would answer
the receiver and eat its sentences). :func:`strip_cmdline` removes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from appliance.refclock.profiles import Profile
from appliance.timebase import NS_PER_S

Kernel = Literal["upstream", "raspios"]
KERNELS: tuple[Kernel, ...] = ("upstream", "raspios")

#: The service's own group (the Debian package makes it, with the user): PPS devices go to it.
GROUP = "stratum1"
#: The group each kind of device goes to, mode 0660: one scheme for these rules, hw/udev/99-stratum1-gps.rules,
#: the units' SupplementaryGroups= (stratum1-lcd: i2c and gpio alone, so not the status socket's group) and
#: 'stratum1 unit-devices' (tests/unit/hw/test_device_groups.py reads them all). Serial ports to dialout as
#: Debian has them, GPIO chips and I2C buses to gpio and i2c as Raspberry Pi OS has them.
DEVICE_GROUPS = {"pps": GROUP, "serial": "dialout", "gpio": "gpio", "i2c": "i2c"}
#: Stable names the udev rules make and the generated ntp.conf uses.
GPS_LINK = "/dev/gps0"
PPS_LINK = "/dev/gpspps0"
#: The PL011 once the overlay gives it the header pins (alias serial0 in both kernels' trees).
HEADER_UART = "/dev/ttyAMA0"
#: The header UART's platform device, by SoC: the PL011 at 0x7e201000 on the VideoCore bus is
#: 0x3f201000 (BCM2837: Pi 3, Zero 2 W) or 0xfe201000 (BCM2711: Pi 4) on the ARM side; a Pi 5's
#: header UART is RP1's uart0, 0x1f00030000 (Raspberry Pi OS only: Debian's kernel has no RP1).
#: Matching the device, not ``ttyAMA0``, keeps the rule right whatever number the port gets.
HEADER_UART_DEVICES = ("3f201000.serial", "fe201000.serial", "1f00030000.serial")
#: The header's I2C bus (GPIO 2 SDA, 3 SCL): ``i2c1``, ``/dev/i2c-1``.
HEADER_I2C_BUS = 1
#: Its node in the upstream trees (BCM2837 and BCM2711 alike), which the I2C overlay names in /aliases.
HEADER_I2C_NODE = "/soc/i2c@7e804000"
#: Console names that would put a login on the header UART.
UART_CONSOLES = ("console=serial0", "console=ttyAMA0")
UART_OVERLAY = "stratum1-uart0"
I2C_OVERLAY = "stratum1-i2c1"

#: Debian's raspi-firmware regenerates /boot/firmware/config.txt whenever a kernel or the firmware is
#: installed ("Do not modify this file!"), appending this file: the appliance's block lives here too.
RASPI_FIRMWARE_CUSTOM = "/etc/default/raspi-firmware-custom"


def install_map(kernel: Kernel) -> dict[str, str]:
    """Where each rendered file goes on the board (a path under the root, or what to do with it)."""
    if kernel == "upstream":
        config = (
            f"merge (merge_config_txt) into {RASPI_FIRMWARE_CUSTOM}, which raspi-firmware appends to "
            "/boot/firmware/config.txt when it regenerates it, and into /boot/firmware/config.txt as it is now"
        )
    else:
        config = "merge (merge_config_txt) into /boot/firmware/config.txt"
    return {
        "config.txt": config,
        "cmdline-remove.txt": "remove these console= words (alone or with ,options) from /boot/firmware/cmdline.txt",
        "udev/99-stratum1.rules": "/etc/udev/rules.d/99-stratum1.rules",
        "modules-load.d/stratum1.conf": "/etc/modules-load.d/stratum1.conf",
        "ntp.conf": "/etc/stratum1/ntp.conf",
        "profile.json": "/etc/stratum1/profile.json",
        "overlays/NAME.dts": "dtc -@ -I dts -O dtb -o /boot/firmware/overlays/NAME.dtbo overlays/NAME.dts",
    }


@dataclass(frozen=True, slots=True)
class Overlay:
    """A device-tree overlay source: ``name`` is what ``dtoverlay=`` names, ``.dtbo`` once compiled."""

    name: str
    source: str


def pps_overlay_name(gpio: int) -> str:
    """The appliance's pps-gpio overlay for one pin (one per pin, so an image can carry every profile's)."""
    return f"stratum1-pps-gpio{gpio}"


def pps_source_name(gpio: int) -> str:
    """What the kernel calls the PPS source of :func:`pps_overlay_name`'s node (``/sys/class/pps/ppsN/name``).

    pps-gpio names its source ``<platform device>.<id>``; a device-tree node's platform device is
    named after the node, and its id is -1.
    """
    return f"pps-gpio{gpio}.-1"


def gps_config_txt(profile: Profile, kernel: Kernel) -> tuple[str, ...]:
    """The config.txt lines for the GPS alone (UART, Bluetooth, PPS), in order."""
    lines: list[str] = []
    if profile.serial_bus == "uart":
        lines.append("enable_uart=1")
        lines.append("dtoverlay=disable-bt" if kernel == "raspios" else f"dtoverlay={UART_OVERLAY}")
    if profile.pps_source == "kernel" and profile.pps_gpio is not None:
        if kernel == "raspios":
            lines.append(f"dtoverlay=pps-gpio,gpiopin={profile.pps_gpio}")
        else:
            lines.append(f"dtoverlay={pps_overlay_name(profile.pps_gpio)}")
    return tuple(lines)


def i2c_config_txt(kernel: Kernel) -> str:
    """The config.txt line that turns on the header's I2C (the LCD)."""
    return "dtparam=i2c_arm=on" if kernel == "raspios" else f"dtoverlay={I2C_OVERLAY}"


#: The lines around the appliance's block in config.txt, so that a new board replaces it.
CONFIG_BEGIN = "# stratum1: begin (written by 'python3 -m appliance.hw'; replaced when the board changes)"
CONFIG_END = "# stratum1: end"


def config_txt(profile: Profile, kernel: Kernel) -> str:
    """The block to append to ``/boot/firmware/config.txt``, between :data:`CONFIG_BEGIN` and :data:`CONFIG_END`."""
    head = [CONFIG_BEGIN, f"# {profile.title} (profile {profile.name}, {kernel} kernel)", "[all]"]
    return "\n".join([*head, *gps_config_txt(profile, kernel), i2c_config_txt(kernel), CONFIG_END]) + "\n"


def merge_config_txt(current: str, block: str) -> str:
    """``current`` config.txt with any earlier appliance block taken out and ``block`` at the end.

    An unterminated block (a begin line without its end) runs to the end of the file.
    """
    kept: list[str] = []
    inside = False
    for line in current.splitlines():
        if line.strip() == CONFIG_BEGIN:
            inside = True
        elif inside and line.strip() == CONFIG_END:
            inside = False
        elif not inside:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept) + ("\n" if kept else "") + block


def cmdline_remove(profile: Profile) -> tuple[str, ...]:
    """The ``console=`` words that must not be in cmdline.txt: with or without ``,115200`` and the like."""
    return UART_CONSOLES if profile.serial_bus == "uart" else ()


def strip_cmdline(cmdline: str, remove: tuple[str, ...]) -> str:
    """``cmdline`` (one line) without the words of ``remove``: a word goes when it is one, or one plus ``,...``."""
    words = cmdline.split()
    kept = [w for w in words if not any(w == r or w.startswith(r + ",") for r in remove)]
    return " ".join(kept) + ("\n" if cmdline.endswith("\n") else "")


def overlays(profile: Profile, kernel: Kernel) -> tuple[Overlay, ...]:
    """The overlay sources ``config_txt`` names (none for ``raspios``: its overlays ship with it)."""
    if kernel == "raspios":
        return ()
    found: list[Overlay] = []
    if profile.serial_bus == "uart":
        found.append(Overlay(UART_OVERLAY, _UART_DTS))
    if profile.pps_source == "kernel" and profile.pps_gpio is not None:
        found.append(Overlay(pps_overlay_name(profile.pps_gpio), pps_overlay(profile.pps_gpio)))
    found.append(Overlay(I2C_OVERLAY, _I2C_DTS))
    return tuple(found)


_UART_DTS = """\
/*
 * stratum1-uart0: the PL011 (uart0, ttyAMA0) on the header's GPIO 14/15 for the GPS; the mini UART
 * (uart1) and Bluetooth off. For the upstream device trees Debian's kernel boots with (bcm2837-*,
 * bcm2711-*), where uart0 drives the Bluetooth chip on GPIO 32/33 and uart1 has the header pins.
 * Written by appliance/hw/boot.py; compile with: dtc -@ -I dts -O dtb -o stratum1-uart0.dtbo THIS
 */
/dts-v1/;
/plugin/;

/ {
\tcompatible = "brcm,bcm2835";

\tfragment@0 {
\t\ttarget = <&uart1>;
\t\t__overlay__ {
\t\t\tstatus = "disabled";
\t\t};
\t};

\tfragment@1 {
\t\ttarget = <&uart0>;
\t\t__overlay__ {
\t\t\tpinctrl-names = "default";
\t\t\tpinctrl-0 = <&uart0_gpio14>;
\t\t\tstatus = "okay";

\t\t\tbluetooth {
\t\t\t\tstatus = "disabled";
\t\t\t};
\t\t};
\t};
};
"""

_I2C_DTS = f"""\
/*
 * stratum1-i2c1: the header's I2C (i2c1 on GPIO 2 SDA, 3 SCL) on, for the status LCD, and named
 * i2c1 in /aliases: the upstream trees name no I2C bus, so the kernel would number it in probe
 * order; with the alias it is /dev/i2c-{HEADER_I2C_BUS}, as on Raspberry Pi OS.
 * Written by appliance/hw/boot.py; compile with: dtc -@ -I dts -O dtb -o stratum1-i2c1.dtbo THIS
 */
/dts-v1/;
/plugin/;

/ {{
\tcompatible = "brcm,bcm2835";

\tfragment@0 {{
\t\ttarget = <&i2c1>;
\t\t__overlay__ {{
\t\t\tpinctrl-names = "default";
\t\t\tpinctrl-0 = <&i2c1_gpio2>;
\t\t\tstatus = "okay";
\t\t}};
\t}};

\tfragment@1 {{
\t\ttarget-path = "/aliases";
\t\t__overlay__ {{
\t\t\ti2c{HEADER_I2C_BUS} = "{HEADER_I2C_NODE}";
\t\t}};
\t}};
}};
"""


def pps_overlay(gpio: int) -> str:
    """The pps-gpio overlay source for ``gpio`` (BCM number): rising edge, the pin an input, no pull."""
    name = pps_overlay_name(gpio)
    return f"""\
/*
 * {name}: kernel PPS (the pps-gpio driver, /dev/ppsN) on GPIO {gpio}, the rising edge; the pin an
 * input with no pull (the receiver drives it). The source is named "{pps_source_name(gpio)}".
 * Written by appliance/hw/boot.py; compile with: dtc -@ -I dts -O dtb -o {name}.dtbo THIS
 */
/dts-v1/;
/plugin/;

/ {{
\tcompatible = "brcm,bcm2835";

\tfragment@0 {{
\t\ttarget-path = "/";
\t\t__overlay__ {{
\t\t\tpps-gpio{gpio} {{
\t\t\t\tcompatible = "pps-gpio";
\t\t\t\tpinctrl-names = "default";
\t\t\t\tpinctrl-0 = <&stratum1_pps_pins>;
\t\t\t\tgpios = <&gpio {gpio} 0>;
\t\t\t\tstatus = "okay";
\t\t\t}};
\t\t}};
\t}};

\tfragment@1 {{
\t\ttarget = <&gpio>;
\t\t__overlay__ {{
\t\t\tstratum1_pps_pins: stratum1-pps-gpio{gpio} {{
\t\t\t\tbrcm,pins = <{gpio}>;
\t\t\t\tbrcm,function = <0>;
\t\t\t\tbrcm,pull = <0>;
\t\t\t}};
\t\t}};
\t}};
}};
"""


def udev_rules(profile: Profile, kernel: Kernel) -> str:
    """``99-stratum1.rules``: the devices into their groups (:data:`DEVICE_GROUPS`), and the stable names."""
    lines = [
        f"# stratum1: device permissions and stable names for {profile.title} (profile {profile.name}).",
        "# Written by 'python3 -m appliance.hw render'; installed as /etc/udev/rules.d/99-stratum1.rules.",
        f"# Groups, mode 0660: PPS {DEVICE_GROUPS['pps']} (the service's own), serial {DEVICE_GROUPS['serial']}, "
        f"GPIO {DEVICE_GROUPS['gpio']}, I2C {DEVICE_GROUPS['i2c']}",
        "# (as hw/udev/99-stratum1-gps.rules, which this file overrides, and the units' SupplementaryGroups=). Reload:",
        "#   udevadm control --reload && udevadm trigger",
        "",
        "# Kernel PPS devices (PPS_SETPARAMS still needs CAP_SYS_TIME, which the service has).",
        f'SUBSYSTEM=="pps", KERNEL=="pps[0-9]*", GROUP="{DEVICE_GROUPS["pps"]}", MODE="0660"',
    ]
    if profile.pps_source == "kernel" and profile.pps_gpio is not None:
        if kernel == "upstream":
            lines.append(f"# {PPS_LINK}: the pps-gpio source of overlay {pps_overlay_name(profile.pps_gpio)}.")
            name = pps_source_name(profile.pps_gpio)
            lines.append(f'SUBSYSTEM=="pps", ATTR{{name}}=="{name}", SYMLINK+="{PPS_LINK.removeprefix("/dev/")}"')
        else:
            lines.append(
                f"# {PPS_LINK}: the pps-gpio source (overlay pps-gpio,gpiopin={profile.pps_gpio}; Raspberry Pi's "
                "overlay names its node pps@..., whatever the pin)."
            )
            lines.append(f'SUBSYSTEM=="pps", ATTR{{name}}=="pps@*", SYMLINK+="{PPS_LINK.removeprefix("/dev/")}"')
    gps = GPS_LINK.removeprefix("/dev/")
    if profile.serial_bus == "uart":
        lines.append(f"# {GPS_LINK}: the PL011 UART on the header's GPIO 14/15, where the HAT's receiver sits.")
        lines.append(
            f'SUBSYSTEM=="tty", KERNEL=="ttyAMA[0-9]*", KERNELS=="{"|".join(HEADER_UART_DEVICES)}", '
            f'SYMLINK+="{gps}", GROUP="{DEVICE_GROUPS["serial"]}", MODE="0660"'
        )
    else:
        tty = profile.serial_device.removeprefix("/dev/")
        lines.append(f"# {GPS_LINK}: the USB receiver ({profile.serial_device}).")
        lines.append(
            f'SUBSYSTEM=="tty", KERNEL=="{tty}", SYMLINK+="{gps}", GROUP="{DEVICE_GROUPS["serial"]}", MODE="0660"'
        )
    lines += [
        "# GPIO lines (PPS timestamped through libgpiod where the kernel has no pps-gpio) and I2C (the LCD).",
        f'SUBSYSTEM=="gpio", KERNEL=="gpiochip[0-9]*", GROUP="{DEVICE_GROUPS["gpio"]}", MODE="0660"',
        f'SUBSYSTEM=="i2c-dev", KERNEL=="i2c-[0-9]*", GROUP="{DEVICE_GROUPS["i2c"]}", MODE="0660"',
    ]
    return "\n".join(lines) + "\n"


def modules_load() -> str:
    """``/etc/modules-load.d/stratum1.conf``: i2c-dev, which nothing else loads (pps-gpio loads itself)."""
    return "# stratum1: /dev/i2c-N for the status LCD.\ni2c-dev\n"


def refclock_line(profile: Profile) -> str:
    """The ``refclock nmea`` line for the board, on the stable device names the udev rules make."""
    baud = "auto" if profile.autobaud else str(profile.baud)
    words = ["refclock nmea unit 0", f"path {GPS_LINK}", f"baud {baud}"]
    if profile.pps_source == "kernel":
        words.append(f"ppspath {PPS_LINK}")
    elif profile.pps_source == "gpio" and profile.pps_gpio is not None:
        words.append(f"ppspath gpio:{profile.pps_gpio}")
    words.append(f"time2 {profile.nmea_offset_ns / NS_PER_S:g}")
    words.append("refid GPS")
    return " ".join(words)


#: The paragraph of the default configuration that the board's lines replace: from this line ...
_GPS_FIRST = "# The GPS receiver. Its NMEA sentences number the seconds, its PPS output"
#: ... to this one.
_GPS_LAST = "# `fudge 127.127.20.0 time2 0.350 refid GPS`, means the same.)"


#: The default's example of a LAN line, after which the appliance's LAN lines go.
_LAN_EXAMPLE = "#   restrict 192.168.0.0 mask 255.255.255.0 nomodify notrap"
#: The private address ranges (RFC 1918; IPv6 unique-local, RFC 4193, and link-local): the appliance's LAN.
LAN_NETWORKS = (
    ("10.0.0.0", "255.0.0.0"),
    ("172.16.0.0", "255.240.0.0"),
    ("192.168.0.0", "255.255.0.0"),
    ("fc00::", "fe00::"),
    ("fe80::", "ffc0::"),
)


def lan_lines() -> list[str]:
    """The ``restrict`` lines that make the private address ranges the appliance's LAN."""
    return [
        "",
        "# The appliance's LAN: the private address ranges (RFC 1918, IPv6 unique-local and link-local) may",
        "# query it with ntpq and get its own clock while it has nothing better. Clients from the Internet",
        "# (the NTP Pool's among them) get 'restrict default': rate limits, no queries, no local clock.",
        *(f"restrict {net} mask {mask} nomodify notrap" for net, mask in LAN_NETWORKS),
    ]


def ntp_conf(profile: Profile, default_text: str) -> str:
    """``/etc/stratum1/ntp.conf``: ``default_text`` (the shipped default) with the board's GPS and LAN lines in."""
    lines = default_text.splitlines()
    try:
        first, last = lines.index(_GPS_FIRST), lines.index(_GPS_LAST)
        lan = lines.index(_LAN_EXAMPLE)
    except ValueError:
        raise ValueError(
            "the default configuration no longer has its GPS paragraph or LAN example: update appliance/hw/boot.py"
        ) from None
    gps = [
        f"# The GPS receiver: {profile.title} ({profile.receiver or 'receiver'}), profile {profile.name}.",
        "# Its NMEA sentences number the seconds"
        + (", its PPS output marks them." if profile.pps_source != "none" else "; it has no PPS output."),
        f"# {GPS_LINK} and {PPS_LINK} are the links the appliance's udev rules make."
        if profile.pps_source == "kernel"
        else f"# {GPS_LINK} is the link the appliance's udev rules make.",
        f"# time2 is where the NMEA offset's calibration starts ({profile.nmea_offset_ns / NS_PER_S:g} s is typical).",
        refclock_line(profile),
    ]
    return "\n".join([*lines[:first], *gps, *lines[last + 1 : lan + 1], *lan_lines(), *lines[lan + 1 :]]) + "\n"


def profile_json(profile: Profile, kernel: Kernel) -> str:
    """``profile.json``: the facts the rest of the build and ``stratum1 doctor`` read, as JSON."""
    data = {
        "name": profile.name,
        "title": profile.title,
        "kernel": kernel,
        "bus": profile.serial_bus,
        "uart": HEADER_UART if profile.serial_bus == "uart" else profile.serial_device,
        "serial_link": GPS_LINK,
        "baud": profile.baud,
        "autobaud": profile.autobaud,
        "pps_source": profile.pps_source,
        "pps_pin": profile.pps_gpio,
        "pps_device": PPS_LINK if profile.pps_source == "kernel" else None,
        "pps_name": pps_source_name(profile.pps_gpio)
        if profile.pps_source == "kernel" and profile.pps_gpio is not None and kernel == "upstream"
        else None,
        "nmea_offset_s": profile.nmea_offset_ns / NS_PER_S,
        "i2c_bus": HEADER_I2C_BUS,
        "groups": dict(DEVICE_GROUPS),
        "overlays": [o.name for o in overlays(profile, kernel)],
        "cmdline_remove": list(cmdline_remove(profile)),
        "unverified": list(profile.unverified),
        "install": install_map(kernel),
    }
    return json.dumps(data, indent=2) + "\n"


def render(profile: Profile, kernel: Kernel, default_text: str) -> dict[str, str]:
    """Every file for ``profile``, by path relative to the output directory (see :func:`install_map`)."""
    files = {
        "config.txt": config_txt(profile, kernel),
        "cmdline-remove.txt": "".join(w + "\n" for w in cmdline_remove(profile)),
        "udev/99-stratum1.rules": udev_rules(profile, kernel),
        "modules-load.d/stratum1.conf": modules_load(),
        "ntp.conf": ntp_conf(profile, default_text),
        "profile.json": profile_json(profile, kernel),
    }
    for o in overlays(profile, kernel):
        files[f"overlays/{o.name}.dts"] = o.source
    return files
