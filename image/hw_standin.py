"""STAND-IN for ``python3 -m appliance.hw render`` (issue 12, part 1, built on another branch).

image/build calls ``python3 -m appliance.hw render --profile NAME --out DIR`` when that module exists
and falls back to this file otherwise. At merge this file goes: appliance/hw is the one place for the
per-HAT facts. It knows one board, the Adafruit Ultimate GPS HAT (UART /dev/ttyAMA0 at 9600, PPS on
GPIO 4, I2C bus 1), and writes the same files as the real renderer:

- ``config.txt``: lines appended to the Pi's config.txt;
- ``cmdline-remove.txt``: console= parameters that must not be on the GPS UART, one a line;
- ``udev/99-stratum1.rules``;
- ``ntp.conf``: /etc/stratum1/ntp.conf for the board;
- ``overlays/*.dts``: device-tree overlays to compile with dtc (against Debian's upstream trees);
- ``profile.json``: name, uart, baud, pps pin, i2c bus.

Usage: python3 image/hw_standin.py render --profile adafruit-ultimate-gps-hat --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROFILES = {
    "adafruit-ultimate-gps-hat": {
        "name": "adafruit-ultimate-gps-hat",
        "uart": "/dev/ttyAMA0",
        "baud": 9600,
        "pps_gpio": 4,
        "i2c_bus": 1,
        "time2": 0.5,
    },
}

# pps-gpio on a BCM283x/BCM2711 pin, written against the labels of the upstream device trees
# (&gpio), which Debian's kernel ships with __symbols__. Raspberry Pi OS's own pps-gpio overlay
# is not in any trixie package.
PPS_DTS = """/dts-v1/;
/plugin/;

/* PPS from the GPS HAT on GPIO {pin}: /dev/pps0 through the kernel's pps-gpio driver. */
/ {{
\tcompatible = "brcm,bcm2835";

\tfragment@0 {{
\t\ttarget-path = "/";
\t\t__overlay__ {{
\t\t\tpps@{pin} {{
\t\t\t\tcompatible = "pps-gpio";
\t\t\t\tpinctrl-names = "default";
\t\t\t\tpinctrl-0 = <&stratum1_pps_pins>;
\t\t\t\tgpios = <&gpio {pin} 0>;
\t\t\t\tstatus = "okay";
\t\t\t}};
\t\t}};
\t}};

\tfragment@1 {{
\t\ttarget = <&gpio>;
\t\t__overlay__ {{
\t\t\tstratum1_pps_pins: stratum1_pps_pins@{pin} {{
\t\t\t\tbrcm,pins = <{pin}>;
\t\t\t\tbrcm,function = <0>; /* input */
\t\t\t\tbrcm,pull = <0>; /* none: the HAT drives the line */
\t\t\t}};
\t\t}};
\t}};
}};
"""

UDEV = """# stratum1 (stand-in render for {name}): the GPS UART and the PPS device.
SUBSYSTEM=="pps", KERNEL=="pps[0-9]*", GROUP="stratum1", MODE="0660"
SUBSYSTEM=="pps", KERNEL=="pps[0-9]*", ATTR{{name}}=="pps@*", SYMLINK+="gpspps0"
SUBSYSTEM=="tty", KERNEL=="{tty}", SYMLINK+="gps0", GROUP="dialout", MODE="0660"
"""


def ntp_conf(p: dict[str, object]) -> str:
    """The packaged default configuration with the board's refclock line and LAN access added."""
    base = (ROOT / "appliance" / "config" / "default.conf").read_text()
    gps = (
        "# The GPS HAT ({name}): NMEA on {uart}, PPS on GPIO {pps} (/dev/pps0 from the pps-gpio overlay).\n"
        "refclock nmea unit 0 path {uart} baud {baud} ppspath /dev/pps0 time2 {time2} refid GPS\n\n"
    ).format(name=p["name"], uart=p["uart"], baud=p["baud"], pps=p["pps_gpio"], time2=p["time2"])
    lan = (
        "\n# The image's LAN: the private networks may query the server (ntpq) and get\n"
        "# the local clock's time while the GPS has no fix.\n"
        "restrict 10.0.0.0 mask 255.0.0.0 nomodify notrap\n"
        "restrict 172.16.0.0 mask 255.240.0.0 nomodify notrap\n"
        "restrict 192.168.0.0 mask 255.255.0.0 nomodify notrap\n"
    )
    marker = "# --- Time sources -----------------------------------------------------------\n\n"
    if marker not in base:
        raise SystemExit("hw_standin: default.conf has no '--- Time sources' header to put the GPS under")
    return base.replace(marker, marker + gps, 1) + lan


def render(name: str, out: Path) -> None:
    if name not in PROFILES:
        raise SystemExit(f"hw_standin: unknown profile {name!r} (the stand-in knows {', '.join(PROFILES)})")
    p = PROFILES[name]
    tty = str(p["uart"]).removeprefix("/dev/")
    (out / "udev").mkdir(parents=True, exist_ok=True)
    (out / "overlays").mkdir(exist_ok=True)
    (out / "config.txt").write_text(
        f"# stratum1: {name} (stand-in render)\n"
        "enable_uart=1\n"
        f"dtparam=i2c_arm=on\n"
        f"dtoverlay=stratum1-pps-gpio{p['pps_gpio']}\n"
    )
    (out / "cmdline-remove.txt").write_text(f"console={tty}\nconsole=serial0\nconsole=serial0,115200\n")
    (out / "udev" / "99-stratum1.rules").write_text(UDEV.format(name=name, tty=tty))
    (out / "ntp.conf").write_text(ntp_conf(p))
    (out / "overlays" / f"stratum1-pps-gpio{p['pps_gpio']}.dts").write_text(PPS_DTS.format(pin=p["pps_gpio"]))
    (out / "profile.json").write_text(
        json.dumps({"name": name, "uart": p["uart"], "pps_gpio": p["pps_gpio"], "i2c_bus": p["i2c_bus"]}) + "\n"
    )


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="hw_standin")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render")
    r.add_argument("--profile", default="adafruit-ultimate-gps-hat")
    r.add_argument("--out", required=True, type=Path)
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    render(a.profile, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
