"""A snapshot as mode 6 variables: what ntpq's ``rv``, ``cv``, ``peers`` and ntpstat read (RFC 9327; pure).

ntpq reads the system variables (READVAR, association 0), each association's peer variables (READVAR,
association N) and a clock's variables (READCLOCK). Values are written as ntpd writes them, so NTPsec's ntpq
and Debian's ntpstat parse them as they parse ntpd's (``tests/data/mode6/`` holds a real ntpd's answers):

- durations in milliseconds with 3 or 6 decimals (``rootdelay``, ``rootdisp``, ``offset``, ``delay``,
  ``jitter``, ``dispersion``, ``sys_jitter``, ``clk_jitter``), frequencies in ppm;
- timestamps as NTP 32.32 in hex (``reftime=0xeeba1da7.0cda1b54``); the reach register in hex;
- strings in double quotes; a reference ID bare (``refid=GPS``), as ntpq shows it.

:func:`encode` joins ``name=value`` pairs as ntpd does: ``", "`` between them, a CR LF line break before a
line would pass 72 octets, and CR LF at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.status.snapshot import ClockStatus, GpsStatus, Snapshot, SourceStatus, SystemStatus
from appliance.timebase import NS_PER_S, ntp64_from_ns

Variables = list[tuple[str, str]]

#: ntpd's ``hmode`` for a client association (ntpq shows refclocks, servers and pools with it).
MODE_CLIENT = 3
#: A data line is broken before it passes this many octets (ntpd's width).
LINE_WIDTH = 72


def _ms(d_ns: float, places: int = 6) -> str:
    return f"{d_ns / 1e6:.{places}f}"


def _ts(t_ns: int | None) -> str:
    if t_ns is None:
        return "0x00000000.00000000"
    v = ntp64_from_ns(t_ns)
    return f"0x{v >> 32:08x}.{v & 0xFFFFFFFF:08x}"


def system_variables(
    snap: Snapshot, system: SystemStatus, now_ns: int, version: str, host: tuple[str, str] = ("", "")
) -> Variables:
    """The system variables (ntpq ``rv``, ntpstat): ``system`` is what this client is told (leap, stratum...).

    ``host`` is (processor, system) as ntpd's ``processor`` and ``system`` say them (``x86_64``, ``Linux/6.1.0``).
    """
    return [
        ("leap", str(system.leap)),
        ("stratum", str(system.stratum)),
        ("precision", str(system.precision)),
        ("rootdelay", _ms(system.root_delay_ns, 3)),
        ("rootdisp", _ms(system.root_dispersion_ns, 3)),
        ("refid", system.refid or "INIT"),
        ("reftime", _ts(system.reference_ns)),
        ("tc", str(system.poll)),
        ("peer", str(system.peer)),
        ("offset", _ms(system.offset_ns)),
        ("frequency", f"{system.frequency_ppb / 1000:.6f}"),
        ("sys_jitter", _ms(system.sys_jitter_ns)),
        ("clk_jitter", _ms(system.clock_jitter_ns)),
        ("clock", _ts(now_ns)),
        ("processor", f'"{host[0]}"'),
        ("system", f'"{host[1]}"'),
        ("version", f'"{version}"'),
        ("clk_wander", f"{system.frequency_sd_ppb / 1000:.6f}"),  # the frequency's uncertainty (1 sigma)
        ("uptime", str(max(0, (now_ns - snap.started_ns) // NS_PER_S))),
    ]


@dataclass(frozen=True, slots=True)
class MruFigures:
    """The MRU list's size for ``monstats``: entries held, the most it holds, the oldest entry's last-seen time."""

    depth: int
    maxdepth: int
    oldest_ns: int | None


def system_named_variables(
    snap: Snapshot, system: SystemStatus, now_ns: int, mru: MruFigures | None = None
) -> Variables:
    """System variables ntpd gives only when asked by name (ntpq ``sysinfo``, ``sysstats``, ``monstats``,
    ``iostats``), from what the appliance keeps; what it does not keep is left out (ntpq prints ``?``).

    ``system`` is what this client is told (as for :func:`system_variables`). The counters are never reset,
    so each ``ss_X_r`` (ntpd's "since reset") equals ``ss_X``. ``ss_restricted`` is the requests access control
    refused, ``ss_limited`` those the rate limit caught (a KoD or nothing), ``ss_badauth`` those whose MAC no
    trusted key made, ``ss_processed`` the time replies.
    """
    peer = snap.system_peer
    uptime = str(max(0, (now_ns - snap.started_ns) // NS_PER_S))
    c = snap.counters
    out = [
        ("peeradr", f"{peer.address}:{peer_port(peer)}" if peer is not None else "0.0.0.0:0"),
        ("peermode", str(MODE_CLIENT if peer is not None else 0)),
        ("rootdist", _ms(system.root_delay_ns / 2 + system.root_dispersion_ns, 3)),
        ("authdelay", "0.000"),  # stratum1 adds no authentication delay to its timestamps
        ("ss_uptime", uptime),
        ("ss_numctlreq", str(c.control)),
        ("ss_reset", uptime),
        ("ss_reset_r", uptime),
        ("iostats_reset", uptime),
        ("io_received", str(c.received)),
    ]
    for name, value in (
        ("ss_received", c.received),
        ("ss_restricted", c.refused),
        ("ss_limited", c.rate_limited + c.kod),
        ("ss_kodsent", c.kod),
        ("ss_badauth", c.crypto_nak),
        ("ss_processed", c.served),
    ):
        out += [(name, str(value)), (f"{name}_r", str(value))]
    if mru is not None:
        oldest = str(max(0, (now_ns - mru.oldest_ns) // NS_PER_S)) if mru.oldest_ns is not None else "0"
        out += [
            ("mru_enabled", "1"),
            ("mru_depth", str(mru.depth)),
            ("mru_maxdepth", str(mru.maxdepth)),
            ("mru_oldest_age", oldest),
        ]
    return out


def peer_port(s: SourceStatus) -> int:
    """The port a source is asked on: a server's own (its name says ``address:port`` when not 123), else 123."""
    if s.kind == "server" and s.name != s.address:
        head, sep, tail = s.name.rpartition(":")
        if sep and tail.isdigit() and head.strip("[]") == s.address:
            return int(tail)
    return 123


def peer_variables(s: SourceStatus, precision: int) -> Variables:
    """One association's variables (ntpq ``rv ASSOC``, ``peers``, ``associations``)."""
    out = [
        ("srcadr", s.address),
        ("srcport", str(peer_port(s))),
        ("dstadr", "127.0.0.1" if s.kind != "server" else "0.0.0.0"),
        ("dstport", "123"),
        ("leap", str(s.leap)),
        ("hmode", str(MODE_CLIENT)),
        ("stratum", str(s.stratum)),
        ("ppoll", str(s.poll)),
        ("hpoll", str(s.poll)),
        ("precision", str(precision)),
        ("rootdelay", _ms(s.root_delay_ns, 3)),
        ("rootdisp", _ms(s.root_dispersion_ns, 3)),
        ("refid", s.refid or "INIT"),
        ("reftime", _ts(s.updated_ns)),
        ("rec", _ts(s.updated_ns)),
        ("reach", f"0x{s.reach:x}"),
        ("unreach", "0"),
        ("delay", _ms(s.delay_ns)),
        ("offset", _ms(s.offset_ns)),
        ("jitter", _ms(s.jitter_ns)),
        ("dispersion", _ms(s.dispersion_ns)),
        ("keyid", str(s.keyid)),
        ("flash", "0x0" if s.usable else "0x400"),
        ("mode", "0"),
        ("headway", "0"),
    ]
    if s.kind != "server" or s.name != s.address:
        out.append(("srchost", f'"{s.name}"'))
    return out


def clock_variables(s: SourceStatus, clock: ClockStatus | None = None, gps: GpsStatus | None = None) -> Variables:
    """A reference clock's variables (ntpq ``cv``): ntpd's generic ones from that clock's own state ``clock``
    (:class:`ClockStatus`; a count nothing keeps, or a ``time1``/``time2`` not configured, is left out, as
    ntpd leaves out a fudge time not set), and the GPS's fix and pulses when ``gps`` (the receiver's) is given.
    """
    name = s.name.split("(")[0]
    out = [
        ("name", f'"{name}"'),
        ("timecode", f'"{_timecode(s.updated_ns)}"'),
    ]
    if clock is not None:
        for var, count in (
            ("poll", clock.polls),
            ("noreply", clock.noreply),
            ("badformat", clock.badformat),
            ("baddata", clock.baddata),
        ):
            if count is not None:
                out.append((var, str(count)))
        if clock.time1_ns is not None:
            out.append(("fudgetime1", _ms(clock.time1_ns, 3)))
        if clock.time2_ns is not None:
            out.append(("fudgetime2", _ms(clock.time2_ns, 3)))
    out += [
        ("stratum", str(s.stratum)),
        ("refid", s.refid or "INIT"),
        ("flags", str(clock.flags if clock is not None else 0)),
        ("device", f'"{clock.device if clock is not None else s.name}"'),
    ]
    if gps is not None and s.kind == "refclock":
        out += [
            ("fix", f'"{gps.fix_mode}"' if gps.fix else '"none"'),
            ("satellites", str(gps.satellites_used if gps.satellites_used is not None else -1)),
            ("satellites_in_view", str(gps.satellites_in_view if gps.satellites_in_view is not None else -1)),
            ("pps", "1" if gps.pps else "0"),
            ("locked", "1" if gps.locked else "0"),
            ("nmea_delay", _ms(gps.nmea_delay_ns, 3) if gps.nmea_delay_ns is not None else "-1"),
            ("pulses", str(gps.pulses)),
            ("receiver", f'"{gps.link}"'),
        ]
    return out


def _timecode(t_ns: int | None) -> str:
    if t_ns is None:
        return ""
    return f"{t_ns // NS_PER_S}.{t_ns % NS_PER_S:09d}"


def select(variables: Variables, names: list[str]) -> Variables | None:
    """The variables named, in the order asked; None when one of them is unknown (ntpd's "unknown variable")."""
    by_name = dict(variables)
    out = []
    for n in names:
        if n not in by_name:
            return None
        out.append((n, by_name[n]))
    return out


def encode(variables: Variables) -> bytes:
    """``name=value`` pairs as ntpd writes them (see the module docstring)."""
    out = bytearray()
    line = 0
    for i, (name, value) in enumerate(variables):
        item = f"{name}={value}".encode("ascii", "replace")
        if i:
            if line + 2 + len(item) + 1 > LINE_WIDTH:
                out += b",\r\n"
                line = 0
            else:
                out += b", "
                line += 2
        out += item
        line += len(item)
    if variables:
        out += b"\r\n"
    return bytes(out)


def parse_names(data: bytes) -> list[str]:
    """The variable names of a READVAR request's data (``a,b=1, c``: values are ignored; empty: all)."""
    text = data.decode("ascii", "replace")
    names = []
    for part in text.split(","):
        name = part.split("=", 1)[0].strip().strip("\0")
        if name:
            names.append(name)
    return names
