"""Whether a kernel can carry the appliance's overlays: pps-gpio built, the Pi trees there, with their labels (pure).

The image's overlays (:mod:`appliance.hw.boot`) work only with a kernel that has
``CONFIG_PPS_CLIENT_GPIO`` (the pps-gpio driver) and with device trees compiled with
``__symbols__`` (the label table an overlay's ``&uart0`` is resolved against at boot), holding
every label the overlays name. Debian 13's 6.12 kernel has all three; Debian 12's 6.1 has none
(``shared/IMAGE-NOTES.md``). :func:`check` says what is missing, in words a build can stop on.

The device-tree blob format (the "flattened device tree", Devicetree Specification v0.4 ch. 5):
a header of big-endian 32-bit words (magic ``0xd00dfeed``, total size, offset of the structure
block, offset of the strings block, ...), then a structure block of tokens (``BEGIN_NODE`` name,
``PROP`` length + name offset + value, ``END_NODE``, ``NOP``, ``END``), each padded to 4 octets.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping

from appliance.hw.boot import HEADER_I2C_NODE

FDT_MAGIC = 0xD00DFEED
_BEGIN_NODE, _END_NODE, _PROP, _NOP, _END = 1, 2, 3, 4, 9
#: The kernel option behind ``/dev/ppsN`` on a GPIO pin.
PPS_OPTION = "CONFIG_PPS_CLIENT_GPIO"
#: The trees of the boards the image is for (Debian's names; raspi-firmware's ``upstream_kernel=1``).
REQUIRED_TREES = ("bcm2837-rpi-3-b.dtb", "bcm2837-rpi-zero-2-w.dtb", "bcm2711-rpi-4-b.dtb")


class FdtError(ValueError):
    """Not a device-tree blob, or a broken one."""


def _align(n: int) -> int:
    return (n + 3) & ~3


def nodes(blob: bytes) -> dict[str, dict[str, bytes]]:
    """Every node of a device-tree blob by path (``/``, ``/soc/serial@7e201000``), with its properties' raw values.

    The same tree the kernel shows as files under ``/proc/device-tree`` (a node a directory, a
    property a file holding its value).
    """
    if len(blob) < 40:
        raise FdtError("shorter than a device-tree header")
    magic, total, off_struct, off_strings = struct.unpack_from(">4I", blob, 0)
    if magic != FDT_MAGIC:
        raise FdtError(f"not a device-tree blob (magic 0x{magic:08x})")
    if total > len(blob) or off_struct >= total or off_strings >= total:
        raise FdtError("header offsets outside the blob")
    path: list[str] = []
    found: dict[str, dict[str, bytes]] = {}
    pos = off_struct
    while pos + 4 <= total:
        (token,) = struct.unpack_from(">I", blob, pos)
        pos += 4
        if token == _BEGIN_NODE:
            end = blob.index(b"\0", pos)
            path.append(blob[pos:end].decode("ascii", "replace"))
            pos = _align(end + 1)
            found["/" + "/".join(path[1:])] = {}
        elif token == _END_NODE:
            if not path:
                raise FdtError("unbalanced END_NODE")
            path.pop()
        elif token == _PROP:
            if not path:
                raise FdtError("a property outside any node")
            length, name_off = struct.unpack_from(">2I", blob, pos)
            pos += 8
            name_end = blob.index(b"\0", off_strings + name_off)
            name = blob[off_strings + name_off : name_end].decode("ascii", "replace")
            found["/" + "/".join(path[1:])][name] = blob[pos : pos + length]
            pos = _align(pos + length)
        elif token == _NOP:
            continue
        elif token == _END:
            return found
        else:
            raise FdtError(f"unknown token {token} at offset {pos - 4}")
    raise FdtError("no END token")


def symbols(blob: bytes) -> dict[str, str] | None:
    """The ``/__symbols__`` table of a device-tree blob (label -> node path), or None when it has none."""
    table = nodes(blob).get("/__symbols__")
    if table is None:
        return None
    return {label: value.split(b"\0", 1)[0].decode("ascii", "replace") for label, value in table.items()}


def config_value(config_text: str, option: str) -> str | None:
    """The value of ``option`` in a kernel ``.config`` text (``y``, ``m``...), None when not set."""
    for line in config_text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name == option:
            return value
    return None


def overlay_labels(source: str) -> set[str]:
    """The base tree's labels an overlay source refers to (``&uart0``), not counting its own."""
    source = re.sub(r"/\*.*?\*/|//[^\n]*", "", source, flags=re.S)
    own = set(re.findall(r"(?<![\w-])([A-Za-z_][A-Za-z0-9_]*):\s", source))
    return set(re.findall(r"&([A-Za-z_][A-Za-z0-9_]*)", source)) - own


def check(config_texts: Mapping[str, str], trees: Mapping[str, bytes], overlays: Iterable[str]) -> list[str]:
    """What keeps the image's overlays from working: one line each, empty when nothing does.

    ``config_texts``: the kernel configs (``/boot/config-*``) by name; ``trees``: the Pi device-tree
    blobs by file name; ``overlays``: the overlay sources whose labels the trees must have.
    """
    problems: list[str] = []
    if not config_texts:
        problems.append("no kernel config (/boot/config-*): is a kernel installed?")
    for name, text in sorted(config_texts.items()):
        value = config_value(text, PPS_OPTION)
        if value not in ("y", "m"):
            problems.append(
                f"{name}: {PPS_OPTION} is not set: this kernel has no pps-gpio driver (Debian 13's has it as a module)"
            )
    labels = set().union(*(overlay_labels(o) for o in overlays))
    for name in REQUIRED_TREES:
        if name not in trees:
            problems.append(f"no {name}: the kernel package has no device tree for this board")
    for name, blob in sorted(trees.items()):
        try:
            table = symbols(blob)
        except FdtError as e:
            problems.append(f"{name}: {e}")
            continue
        if table is None:
            problems.append(f"{name}: no __symbols__ (built without dtc -@): overlays cannot be applied to it")
            continue
        missing = sorted(labels - set(table))
        if missing:
            problems.append(f"{name}: lacks the labels the overlays use: {', '.join(missing)}")
        elif "i2c1" in labels and table.get("i2c1") != HEADER_I2C_NODE:
            problems.append(
                f"{name}: i2c1 is {table.get('i2c1')}, not {HEADER_I2C_NODE}, which the I2C overlay names in /aliases"
            )
    return problems
