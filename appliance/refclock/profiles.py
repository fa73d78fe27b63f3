"""Hardware profiles: how a GPS HAT or receiver is wired and how it talks, as data.

A profile is a TOML file: the bus (the header UART or USB), serial device and
baud rate, where the PPS comes from (the kernel's ``/dev/ppsN`` via
``pps-gpio``, a GPIO line in user space, or none), the expected NMEA-to-PPS
offset, what the receiver sends, and the words of the HAT's ID EEPROM that
name it. These are the board's facts, each said once: what the Pi needs for
them (``config.txt`` lines, overlays, udev rules, the ntp.conf lines) is
derived from them by :mod:`appliance.hw.boot`. The built-in profiles
ship inside the package (``appliance/hw_profiles/*.toml``, package data, so
they are there on the appliance without the source tree); a profile file of
one's own is read with :func:`parse_profile` the same way.

Facts a profile could not check against the vendor's documents are listed in
its ``unverified`` key (``"pps.gpio"``...), so that tools can say so.

Parsing is pure (text in, frozen :class:`Profile` out, :class:`ProfileError`
naming the file and key on bad input); only :func:`load_builtin` and
:func:`builtin_names` read the package's files.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal, cast

from appliance.timebase import ns_from_seconds

PpsSource = Literal["kernel", "gpio", "none"]
PPS_SOURCES: tuple[PpsSource, ...] = ("kernel", "gpio", "none")
SerialBus = Literal["uart", "usb"]
#: ``uart``: the Pi's header UART (GPIO 14 TXD, 15 RXD), where a HAT sits; ``usb``: a USB serial device.
SERIAL_BUSES: tuple[SerialBus, ...] = ("uart", "usb")
_PACKAGE = "appliance"
#: Every key a profile may have, by table ("" is the top level): a misspelt or misplaced key is an error.
_SCHEMA: dict[str, frozenset[str]] = {
    "": frozenset({"name", "title", "receiver", "fake_model", "unverified", "serial", "pps", "nmea", "hat"}),
    "serial": frozenset({"bus", "device", "baud", "autobaud"}),
    "pps": frozenset({"source", "device", "gpio", "edge"}),
    "nmea": frozenset({"offset_s", "labels", "sentences", "notes"}),
    "hat": frozenset({"match"}),
}
_DIR = "hw_profiles"


class ProfileError(ValueError):
    """A profile is malformed; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class Profile:
    """One board or receiver; see the module docstring. Times are int ns."""

    name: str
    title: str
    receiver: str
    serial_bus: SerialBus
    #: The device as Raspberry Pi OS names it (``/dev/serial0``); the appliance's udev rules add ``/dev/gps0``.
    serial_device: str
    baud: int
    autobaud: bool
    pps_source: PpsSource
    #: ``/dev/ppsN`` for ``pps_source == "kernel"``.
    pps_device: str | None
    #: BCM GPIO number of the PPS line (kernel and gpio sources).
    pps_gpio: int | None
    pps_edge: Literal["assert", "clear"]
    #: First byte of the NMEA burst after the PPS edge it belongs to (ns, typical).
    nmea_offset_ns: int
    #: "current": the burst labels the second begun at the edge before it; "next": the edge after it.
    nmea_labels: Literal["current", "next"]
    sentences: tuple[str, ...]
    timing_notes: str
    #: Words that, all present (any case) in the HAT EEPROM's "vendor product", name this board.
    hat_match: tuple[str, ...]
    #: The :data:`appliance.fakes.gps.MODELS` entry that imitates this receiver, if any.
    fake_model: str | None
    #: Dotted keys not checked against the vendor's documents.
    unverified: tuple[str, ...]


class _Reader:
    """Typed access to a parsed TOML table, with errors that name the key."""

    def __init__(self, data: dict[str, Any], source: str) -> None:
        self._data = data
        self._source = source

    def error(self, key: str, message: str) -> ProfileError:
        return ProfileError(f"{self._source}: {key}: {message}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        node: Any = self._data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                if default is ...:
                    raise self.error(key, "missing")
                return default
            node = node[part]
        if isinstance(node, bool) and kind in (int, float, (int, float)):
            raise self.error(key, f"expected {_kind_name(kind)}, got a boolean")
        if not isinstance(node, kind):
            raise self.error(key, f"expected {_kind_name(kind)}, got {type(node).__name__}")
        return node

    def strings(self, key: str, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
        value = self.get(key, list, default=... if default is None else list(default))
        if not all(isinstance(v, str) for v in value):
            raise self.error(key, "expected a list of strings")
        return tuple(value)

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value: str = self.get(key, str, default=... if default is None else default)
        if value not in choices:
            raise self.error(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list"}
    if isinstance(kind, tuple):
        return "a number"
    return names.get(kind, kind.__name__)


def parse_profile(text: str, source: str = "<profile>") -> Profile:
    """Parse one profile's TOML ``text``; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{source}: {e}") from None
    _check_keys(data, source)
    r = _Reader(data, source)
    pps_source = cast(PpsSource, r.choice("pps.source", PPS_SOURCES))
    pps_device: str | None = r.get("pps.device", str, None)
    pps_gpio: int | None = r.get("pps.gpio", int, None)
    if pps_source == "kernel" and pps_device is None:
        raise r.error("pps.device", "required when pps.source is 'kernel'")
    if pps_source == "gpio" and pps_gpio is None:
        raise r.error("pps.gpio", "required when pps.source is 'gpio'")
    if pps_gpio is not None and not 0 <= pps_gpio <= 53:
        raise r.error("pps.gpio", f"not a Raspberry Pi GPIO number: {pps_gpio}")
    if pps_source == "kernel" and pps_gpio is None:
        raise r.error("pps.gpio", "required when pps.source is 'kernel' (the pin the pps-gpio overlay watches)")
    serial_bus = cast(SerialBus, r.choice("serial.bus", SERIAL_BUSES))
    hat_match = tuple(w.lower() for w in r.strings("hat.match", ()))
    if hat_match and serial_bus != "uart":
        raise r.error("hat.match", "only a HAT (serial.bus = 'uart') has an ID EEPROM")
    baud: int = r.get("serial.baud", int)
    if baud <= 0:
        raise r.error("serial.baud", "must be positive")
    offset_s: float = r.get("nmea.offset_s", (int, float))
    if not -1.0 < offset_s < 1.0:
        raise r.error("nmea.offset_s", "must be within (-1, 1) s")
    return Profile(
        name=r.get("name", str),
        title=r.get("title", str),
        receiver=r.get("receiver", str, ""),
        serial_bus=serial_bus,
        serial_device=r.get("serial.device", str),
        baud=baud,
        autobaud=r.get("serial.autobaud", bool, False),
        pps_source=pps_source,
        pps_device=pps_device,
        pps_gpio=pps_gpio,
        pps_edge=cast(Literal["assert", "clear"], r.choice("pps.edge", ("assert", "clear"), "assert")),
        nmea_offset_ns=ns_from_seconds(offset_s),
        nmea_labels=cast(Literal["current", "next"], r.choice("nmea.labels", ("current", "next"), "current")),
        sentences=r.strings("nmea.sentences", ()),
        timing_notes=r.get("nmea.notes", str, ""),
        hat_match=hat_match,
        fake_model=r.get("fake_model", str, None),
        unverified=r.strings("unverified", ()),
    )


def _check_keys(data: dict[str, Any], source: str) -> None:
    for table, allowed in _SCHEMA.items():
        node = data if not table else data.get(table, {})
        if not isinstance(node, dict):
            raise ProfileError(f"{source}: {table}: expected a table")
        for key in node:
            if key not in allowed:
                where = f"{table}.{key}" if table else key
                raise ProfileError(f"{source}: {where}: unknown key (allowed: {', '.join(sorted(allowed))})")


def builtin_names() -> list[str]:
    """Return the names of the profiles shipped in the package, sorted."""
    folder = resources.files(_PACKAGE).joinpath(_DIR)
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_builtin(name: str) -> Profile:
    """Return the built-in profile ``name`` (its file name without ``.toml``); :class:`ProfileError` if none.

    >>> hat = load_builtin("adafruit-ultimate-gps-hat")
    >>> hat.baud, hat.pps_gpio, hat.pps_edge
    (9600, 4, 'assert')
    """
    if name not in builtin_names():
        raise ProfileError(f"no built-in hardware profile {name!r} (there are: {', '.join(builtin_names())})")
    path = resources.files(_PACKAGE).joinpath(_DIR, name + ".toml")
    profile = parse_profile(path.read_text(encoding="utf-8"), f"{_DIR}/{name}.toml")
    if profile.name != name:
        raise ProfileError(f"{_DIR}/{name}.toml: name: {profile.name!r} differs from the file name")
    return profile


def builtin_profiles() -> dict[str, Profile]:
    """Return every built-in profile by name."""
    return {n: load_builtin(n) for n in builtin_names()}
