"""What changed between two configurations, sorted by what a running daemon can do about it (pure).

``SIGHUP`` makes the daemon read its configuration again
(:meth:`appliance.daemon.Appliance.reload`). Some parts take effect at once,
others only at the next start:

==========================  ===================================================
applied on reload           ``restrict`` lines (the access table, both data
                            planes), ``discard`` (the rate limits), upstream
                            ``server``/``pool``/``peer`` lines (associations
                            added and removed), the local clock (``server
                            127.127.1.u``, its ``fudge``, ``refclock local``,
                            ``localclock``), ``holdover``, the keys
                            (``keys``: the key file read again, whether its
                            line changed or not; ``trustedkey``); the daemon
                            reads the leap-second file (``leapfile``) again
                            at every SIGHUP too
needs a restart             ``interface``/``nic`` (listen addresses), the
                            other reference clocks (GPS serial port, PPS,
                            their ``refclock``/``fudge``/``server 127.127.t.u``
                            lines), ``driftfile``, ``logfile``,
                            ``statsdir``
==========================  ===================================================

Lines are compared by what they say, not where they stand: moving a line or
adding a comment changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any

from appliance.config.model import REFCLOCK_TYPES, Config, Location

_LOCAL = "local"
_NOWHERE = Location("", 0)


@dataclass(frozen=True, slots=True)
class ConfigChanges:
    """Which parts differ: the ones a reload applies (flags) and the ones that need a restart (names)."""

    restricts: bool = False
    discard: bool = False
    servers: bool = False
    local_clock: bool = False
    holdover: bool = False
    keys: bool = False
    #: What changed that only a restart applies, in words ("interface listen lines", "driftfile"...).
    restart: tuple[str, ...] = ()

    @property
    def applied(self) -> tuple[str, ...]:
        """The parts a reload applies, in words, in a fixed order."""
        names = (
            (self.restricts, "restrict lines"),
            (self.discard, "rate limits (discard)"),
            (self.servers, "servers"),
            (self.local_clock, "local clock"),
            (self.holdover, "holdover"),
            (self.keys, "keys"),
        )
        return tuple(name for changed, name in names if changed)


#: How a reload names changed GPS and PPS lines: the unit's device list (DeviceAllow=, made by the generator
#: systemd runs at daemon-reload) follows the devices only after a daemon-reload, so a restart alone may
#: leave the new device shut out.
REFCLOCKS_RESTART = "reference clocks (GPS, PPS: systemctl daemon-reload first, for the unit's device list)"


def config_changes(old: Config, new: Config) -> ConfigChanges:
    """What differs from ``old`` to ``new`` (see the module docstring)."""
    restart = [
        name
        for name, a, b in (
            ("interface listen lines", old.listen, new.listen),
            (REFCLOCKS_RESTART, _refclocks(old, local=False), _refclocks(new, local=False)),
            ("driftfile", old.driftfile, new.driftfile),
            ("logfile", old.logfile, new.logfile),
            ("statsdir", old.statsdir, new.statsdir),
            ("statistics files (statistics, filegen)", old.filegens, new.filegens),
        )
        if _plain(a) != _plain(b)
    ]
    return ConfigChanges(
        restricts=_plain(old.restricts) != _plain(new.restricts),
        discard=old.discard != new.discard,
        servers=_plain(_upstream(old)) != _plain(_upstream(new)),
        local_clock=_plain((_refclocks(old, local=True), old.localclock))
        != _plain((_refclocks(new, local=True), new.localclock)),
        holdover=old.holdover_ns != new.holdover_ns,
        keys=old.keys != new.keys,
        restart=tuple(restart),
    )


def _upstream(config: Config) -> tuple[Any, ...]:
    return tuple(s for s in config.servers if s.refclock is None)


def _refclocks(config: Config, *, local: bool) -> tuple[Any, ...]:
    """The local clock's lines (``local``) or every other reference clock's: servers, fudges, refclocks."""

    def is_local(t: int) -> bool:
        return REFCLOCK_TYPES.get(t) == _LOCAL

    servers = tuple(s for s in config.servers if s.refclock is not None and is_local(s.refclock[0]) == local)
    fudges = tuple(f for f in config.fudges if is_local(int(f.host.split(".")[2])) == local)
    clocks = tuple(r for r in config.refclocks if (r.driver == _LOCAL) == local)
    return servers, fudges, clocks


def _plain(value: Any) -> Any:
    """``value`` with every ``location`` field blanked, recursively (tuples and dataclasses)."""
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        names = {f.name for f in fields(value)}
        if "location" in names and value.location is not None:  # type: ignore[attr-defined]
            value = replace(value, location=_NOWHERE)
        return value
    return value
