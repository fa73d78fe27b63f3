"""``python3 -m appliance.hw`` (and ``stratum1 hw``): list, render, apply, overlays, detect, check-kernel, doctor.

``render`` runs on a build host from the source tree, as any user: it only writes files into the
directory it is given. ``apply`` writes them where they go in a root file system and its boot
partition (an image's, or ``/`` at first boot), idempotently: config.txt keeps one appliance block.
``detect`` and ``doctor`` read a board (``--root`` for a copy of one).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from appliance.config import default_config_text
from appliance.hw import boot, kernel
from appliance.hw.detect import HAT_DIR, hat_strings, match_hat
from appliance.refclock.profiles import ProfileError, builtin_profiles, load_builtin
from appliance.usage import number_in

EXIT_OK = 0
EXIT_FAILURE = 1


#: The subcommands, in the order build_parser adds them (``stratum1 --help`` lists them).
SUBCOMMANDS = ("list", "render", "apply", "overlays", "detect", "check-kernel", "doctor")


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the subcommands to ``parser`` (this module's own, or ``stratum1 hw``)."""
    sub = parser.add_subparsers(dest="hw_command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="the board profiles").set_defaults(hw_func=cmd_list)

    r = sub.add_parser("render", help="write the files a board needs for a profile into a directory")
    r.add_argument("--profile", required=True, metavar="NAME", help="a profile name ('list' shows them)")
    r.add_argument("--out", required=True, metavar="DIR", help="directory to write into (made if missing)")
    r.add_argument(
        "--kernel",
        choices=boot.KERNELS,
        default="upstream",
        help="upstream: Debian's kernel and device trees, the image (default); raspios: Raspberry Pi OS",
    )
    r.set_defaults(hw_func=cmd_render)

    a = sub.add_parser(
        "apply", help="set a board (or an image's root) up for a profile: config.txt, cmdline.txt, overlays, files"
    )
    which = a.add_mutually_exclusive_group(required=True)
    which.add_argument("--profile", metavar="NAME", help="a profile name ('list' shows them)")
    which.add_argument("--detect", action="store_true", help="the profile the HAT's ID EEPROM names (as 'detect')")
    a.add_argument("--root", default="/", help="the root file system to set up (default /)")
    a.add_argument("--boot", help="its boot partition (default ROOT/boot/firmware)")
    a.add_argument("--kernel", choices=boot.KERNELS, default="upstream", help="as for render (default upstream)")
    a.add_argument("--keep-ntp-conf", action="store_true", help="leave an existing /etc/stratum1/ntp.conf as it is")
    a.set_defaults(hw_func=cmd_apply)

    o = sub.add_parser("overlays", help="write every profile's overlay sources (an image can carry them all)")
    o.add_argument("--out", required=True, metavar="DIR")
    o.set_defaults(hw_func=cmd_overlays)

    d = sub.add_parser("detect", help="name the profile of the HAT whose ID EEPROM the firmware read")
    d.add_argument("--root", default="/", help="root of the board's file system (default /)")
    d.set_defaults(hw_func=cmd_detect)

    k = sub.add_parser(
        "check-kernel", help="check that a root file system's kernel and Pi device trees can take the overlays"
    )
    k.add_argument("--root", required=True, help="the root file system (an image build's chroot)")
    k.add_argument("--dtbs", help="the directory of the Pi device trees (default: ROOT/usr/lib/linux-image-*/broadcom)")
    k.set_defaults(hw_func=cmd_check_kernel)

    doc = sub.add_parser("doctor", help="check the GPS chain of this board, link by link")
    add_doctor_arguments(doc)
    return parser


# doctor's default capture (appliance.hw.doctor.CAPTURE_S, tested equal): doctor is imported only to run it,
# because it needs pynmea2 and `render` runs on the image build host with a bare python3.
DOCTOR_CAPTURE_S = 3.0


CAPTURE_MIN_S = 0.1
CAPTURE_MAX_S = 600.0


def capture_seconds(text: str) -> float:
    """``doctor --seconds`` (argparse type): from CAPTURE_MIN_S to CAPTURE_MAX_S, not nan or inf."""
    return number_in(text, CAPTURE_MIN_S, CAPTURE_MAX_S, "a number of seconds")


def add_doctor_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``doctor`` (also ``stratum1 doctor``)."""
    p.add_argument("--profile", metavar="NAME", help="the board (default: /etc/stratum1/profile.json's)")
    p.add_argument("--kernel", choices=boot.KERNELS, help="how the board was set up (default: profile.json's)")
    p.add_argument("--root", default="/", help="read the board's files under this directory (default /)")
    p.add_argument(
        "--seconds",
        type=capture_seconds,
        default=DOCTOR_CAPTURE_S,
        help=f"how long to watch NMEA and PPS ({CAPTURE_MIN_S:g} to {CAPTURE_MAX_S:g}; default {DOCTOR_CAPTURE_S:g})",
    )
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.add_argument("--ascii", action="store_true", help="[ok]/[!!]/[??] instead of ✓/✗/?")
    p.set_defaults(hw_func=cmd_doctor)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argparse.ArgumentParser(prog="python3 -m appliance.hw", description=__doc__))
    args = parser.parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    command = getattr(args, "command", "hw")  # stratum1 doctor, or stratum1 hw / python3 -m appliance.hw
    prog = f"stratum1 {command} {args.hw_command}" if command == "hw" else f"stratum1 {command}"
    root = getattr(args, "root", None)
    if root is not None and args.hw_func is not cmd_apply and not os.path.isdir(root):
        print(f"{prog}: --root {root}: no such directory", file=sys.stderr)
        return EXIT_FAILURE
    try:
        return int(args.hw_func(args))
    except (ProfileError, OSError, ValueError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return EXIT_FAILURE


def cmd_list(args: argparse.Namespace) -> int:
    for name, p in builtin_profiles().items():
        pps = f"PPS on GPIO {p.pps_gpio}" if p.pps_gpio is not None else "no PPS"
        where = "header UART" if p.serial_bus == "uart" else p.serial_device
        print(f"{name:28} {p.title}: {where}, {p.baud} baud, {pps}")
    return EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    profile = load_builtin(args.profile)
    out = Path(args.out)
    for rel, text in boot.render(profile, args.kernel, default_config_text()).items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(path)
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from appliance.daemon import BUILD_DATE_NS
    from appliance.hw import doctor
    from appliance.io.board import LiveBoard

    board = LiveBoard(args.root)
    shown = os.path.join(args.root, doctor.PROFILE_JSON.lstrip("/"))
    plan = doctor.plan_from(board, builtin_profiles(), args.profile, args.kernel, shown_as=shown)
    findings = doctor.examine(board, plan, BUILD_DATE_NS, args.seconds)
    if args.json:
        sys.stdout.write(doctor.format_json(findings, plan))
    else:
        sys.stdout.write(doctor.format_text(findings, ascii_only=args.ascii or not _can_print("✓✗→")))
    return EXIT_FAILURE if any(f.status is doctor.Status.FAIL for f in findings) else EXIT_OK


def _can_print(text: str) -> bool:
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def all_overlays() -> dict[str, str]:
    """Every built-in profile's overlays for the image's kernel, by name (an image may carry them all)."""
    found: dict[str, str] = {}
    for profile in builtin_profiles().values():
        for o in boot.overlays(profile, "upstream"):
            found[o.name] = o.source
    return found


def cmd_check_kernel(args: argparse.Namespace) -> int:
    root = Path(args.root)
    configs = {str(p): p.read_text(encoding="utf-8", errors="replace") for p in sorted(root.glob("boot/config-*"))}
    folders = [Path(args.dtbs)] if args.dtbs else sorted(root.glob("usr/lib/linux-image-*/broadcom"))
    trees = {
        p.name: p.read_bytes()
        for folder in folders
        for p in sorted(folder.glob("*.dtb"))
        if p.name.startswith(("bcm2837-rpi-", "bcm2711-rpi-"))
    }
    overlays = all_overlays()
    problems = kernel.check(configs, trees, overlays.values())
    for line in problems:
        print(f"stratum1 hw: {line}", file=sys.stderr)
    if problems:
        return EXIT_FAILURE
    labels = sorted(set().union(*(kernel.overlay_labels(o) for o in overlays.values())))
    print(
        f"{', '.join(configs)}: {kernel.PPS_OPTION} set; {len(trees)} Pi device trees with __symbols__ "
        f"and every label the overlays use ({', '.join(labels)})"
    )
    return EXIT_OK


def cmd_overlays(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, source in sorted(all_overlays().items()):
        (out / f"{name}.dts").write_text(source, encoding="utf-8")
        print(out / f"{name}.dts")
    return EXIT_OK


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def _compile_overlay(source: str, dtbo: Path) -> None:
    dtc = shutil.which("dtc")
    if dtc is None:
        raise ValueError(
            f"{dtbo} is missing and dtc is not installed (apt-get install device-tree-compiler), "
            "or compile the sources 'overlays' writes into that folder beforehand"
        )
    dtbo.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        dts = Path(tmp) / (dtbo.stem + ".dts")
        dts.write_text(source, encoding="utf-8")
        done = subprocess.run(
            [dtc, "-@", "-q", "-I", "dts", "-O", "dtb", "-o", str(dtbo), str(dts)], text=True, capture_output=True
        )
    if done.returncode != 0:
        raise ValueError(f"dtc failed on {dtbo.stem}: {done.stderr.strip()}")


def cmd_apply(args: argparse.Namespace) -> int:
    root = Path(args.root)
    boot_dir = Path(args.boot) if args.boot else root / "boot" / "firmware"
    name = args.profile
    if args.detect:
        name = _detected(root)
        if name is None:
            return EXIT_FAILURE
    profile = load_builtin(name)
    files = boot.render(profile, args.kernel, default_config_text())
    changed: list[str] = []
    reboot = False
    configs = [boot_dir / "config.txt"]
    if args.kernel == "upstream":
        configs.append(root / boot.RASPI_FIRMWARE_CUSTOM.lstrip("/"))
    for config in configs:
        current = config.read_text(encoding="utf-8") if config.exists() else ""
        if _write_if_changed(config, boot.merge_config_txt(current, files["config.txt"])):
            changed.append(str(config))
            reboot = True
    cmdline = boot_dir / "cmdline.txt"
    if cmdline.exists():
        text = cmdline.read_text(encoding="utf-8")
        if _write_if_changed(cmdline, boot.strip_cmdline(text, boot.cmdline_remove(profile))):
            changed.append(str(cmdline))
            reboot = True
    for o in boot.overlays(profile, args.kernel):
        dtbo = boot_dir / "overlays" / f"{o.name}.dtbo"
        if not dtbo.exists():
            _compile_overlay(o.source, dtbo)
            changed.append(str(dtbo))
            reboot = True
    targets = {
        "udev/99-stratum1.rules": "etc/udev/rules.d/99-stratum1.rules",
        "modules-load.d/stratum1.conf": "etc/modules-load.d/stratum1.conf",
        "profile.json": "etc/stratum1/profile.json",
        "ntp.conf": "etc/stratum1/ntp.conf",
    }
    for rel, dest in targets.items():
        path = root / dest
        if rel == "ntp.conf" and args.keep_ntp_conf and path.exists():
            continue
        if _write_if_changed(path, files[rel]):
            changed.append(str(path))
    for written in changed:
        print(written)
    print(f"{profile.name}: {'reboot for the firmware to load it' if reboot else 'the boot files were already so'}")
    return EXIT_OK


def _detected(root: Path) -> str | None:
    """The one profile the HAT's EEPROM under ``root`` names; None (and a line on stderr) otherwise."""
    hat = root / HAT_DIR

    def read(name: str) -> bytes | None:
        try:
            return (hat / name).read_bytes()
        except FileNotFoundError:
            return None

    ident = hat_strings(read("vendor"), read("product"))
    if ident is None:
        print(f"stratum1 hw: no HAT ID EEPROM ({hat}/product is missing): choose the profile", file=sys.stderr)
        return None
    names = match_hat(ident, builtin_profiles())
    if len(names) != 1:
        what = "no profile matches" if not names else f"several profiles match ({', '.join(names)})"
        print(f"stratum1 hw: HAT {ident.vendor!r} {ident.product!r}: {what}: choose the profile", file=sys.stderr)
        return None
    return names[0]


def cmd_detect(args: argparse.Namespace) -> int:
    name = _detected(Path(args.root))
    if name is None:
        return EXIT_FAILURE
    print(name)
    return EXIT_OK
