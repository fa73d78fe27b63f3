"""What the NTP Pool's monitors would make of this server: points per check, the score, and why (pure).

The facts are the Pool's (its join pages and the monitor's scoring code,
summed up in the project's POOL.md):

- a **check** is SNTP-like: 3 requests 2 s apart, each waiting up to 3 s;
  the reply with the lowest round-trip delay is the one scored;
- **points** per check: no reply at all -5; a RATE Kiss-o'-Death -3.5, a
  DENY or RSTR one -10 (score floor -50); stratum 0 or 16 (unsynchronised),
  over 10, or 8 to 10 (a local clock) -4; otherwise by the offset against
  the monitor's trusted time: up to 25 ms +1, 25-100 ms from +1 down to
  +0.5, 100-750 ms from +0.5 down to -1, over 750 ms -2, over 3 s -4
  (score floor -20);
- the **score**: ``new = points + 0.95 * old``, so a server that earns +1
  every check tends to 20 (:func:`steady_score`); DNS hands out only
  servers above 10. Each address (IPv4, IPv6) has its own score.

:func:`score_check` turns one :class:`Check` (what the I/O layer,
:mod:`appliance.io.poolcheck`, measured) into a :class:`Verdict`: the
points, and a reason for every point lost. Offsets are the server's clock
minus the reference's (positive: the server is ahead); ns throughout.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

NS_PER_MS = 1_000_000
DECAY = 0.95
CEILING = 1 / (1 - DECAY)  # score per point of a steady stream of checks: 20
DNS_THRESHOLD = 10.0
SAMPLES = 3
SPACING_S = 2.0
TIMEOUT_S = 3.0
LOCAL_STRATA = range(8, 11)
#: Addresses the Pool does not take and its monitors cannot reach: a check of one meets none of what they meet
#: (the router's port forward, the ISP, the access lines for the outside world; the shipped config exempts
#: loopback from rate limiting, and a rendered one the private ranges too).
INSIDE_RANGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("loopback", ("127.0.0.0/8", "::1/128")),
    ("private (RFC 1918)", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    ("shared (RFC 6598, carrier-grade NAT)", ("100.64.0.0/10",)),
    ("link-local", ("169.254.0.0/16", "fe80::/10")),
    ("unique local (RFC 4193)", ("fc00::/7",)),
    ("unspecified", ("0.0.0.0/32", "::/128")),
)


@dataclass(frozen=True, slots=True)
class Sample:
    """One request of a check: ``outcome`` is "reply", "kod", "timeout" (nothing in 3 s) or "refused" (ICMP)."""

    outcome: str
    offset_ns: int | None = None  # the server minus this host's clock
    delay_ns: int | None = None
    stratum: int | None = None
    leap: int | None = None
    refid: str = ""
    kiss: str | None = None


@dataclass(frozen=True, slots=True)
class Check:
    """One monitor-style check of one address; ``reference_ns``: this host's clock minus trusted time (0: trusted)."""

    address: str
    samples: tuple[Sample, ...]
    reference_ns: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """The points one check earns, what was scored, and a reason for each point lost (and notes that cost none)."""

    points: float
    floor: float | None
    best: Sample | None
    offset_ns: int | None  # the kept sample's offset against the reference
    lost: tuple[str, ...]
    notes: tuple[str, ...]


def inside_kind(address: str) -> str | None:
    """What kind of address ``address`` is when no Pool monitor can reach it ("loopback"...), else None."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        ip = ipaddress.IPv6Address(str(ip).partition("%")[0])
    for kind, networks in INSIDE_RANGES:
        if any(ip.version == (net := ipaddress.ip_network(n)).version and ip in net for n in networks):
            return kind
    return None


def offset_points(offset_ns: int) -> tuple[float, float | None]:
    """Points for an offset (either sign) and the score floor it sets (None: none)."""
    ms = abs(offset_ns) / NS_PER_MS
    if ms <= 25:
        return 1.0, None
    if ms <= 100:
        return 1.0 - 0.5 * (ms - 25) / 75, None
    if ms <= 750:
        return 0.5 - 1.5 * (ms - 100) / 650, None
    if ms <= 3000:
        return -2.0, None
    return -4.0, -20.0


def _ms(ns: int) -> str:
    return f"{ns / NS_PER_MS:+.3f} ms"


def score_check(check: Check) -> Verdict:
    """The points the monitors would give ``check``, with reasons (see the module docstring)."""
    replies = [s for s in check.samples if s.outcome == "reply"]
    kods = [s for s in check.samples if s.outcome == "kod"]
    silent = [i + 1 for i, s in enumerate(check.samples) if s.outcome in ("timeout", "refused")]
    notes: list[str] = []
    if silent and (replies or kods):
        which = ", ".join(map(str, silent))
        later = min(silent) > 1
        notes.append(
            f"request {which} of {len(check.samples)} unanswered (costs nothing while one reply comes): "
            + ("rate limiting dropping the monitor's later requests, or packet loss" if later else "packet loss")
        )
    if kods:
        code = kods[0].kiss or "?"
        if code == "RATE":
            return Verdict(
                -3.5,
                None,
                None,
                None,
                (
                    f"a RATE Kiss-o'-Death answered request {check.samples.index(kods[0]) + 1}: the rate limit trips "
                    f"the monitor's {len(check.samples)} requests {SPACING_S:g} s apart ('discard' must let a client "
                    "send 3 requests 2 s apart: 'burst' 3 or more; the default average 3 minimum 2 burst 8 does)",
                ),
                tuple(notes),
            )
        return Verdict(
            -10.0,
            -50.0,
            None,
            None,
            (f"a {code} Kiss-o'-Death: the restrict lines refuse the monitor (the Pool needs 'restrict default'"
             " to serve time: 'restrict default kod limited nomodify notrap nopeer noquery')",),
            tuple(notes),
        )  # fmt: skip
    if not replies:
        refused = any(s.outcome == "refused" for s in check.samples)
        why = (
            "ICMP port unreachable: nothing serves NTP on this address"
            if refused
            else f"nothing within {TIMEOUT_S:g} s: a firewall dropping the requests or the replies, "
            "or no route to this address"
        )
        family = "IPv6" if ":" in check.address else "IPv4"
        return Verdict(-5.0, None, None, None, (f"no answer on {family} ({why})",), tuple(notes))
    best = min(replies, key=lambda s: s.delay_ns if s.delay_ns is not None else math.inf)
    assert best.offset_ns is not None and best.stratum is not None
    offset = best.offset_ns + check.reference_ns  # (server - host) + (host - trusted)
    stratum = best.stratum
    if best.leap == 3 or stratum in (0, 16):
        return Verdict(
            -4.0,
            None,
            best,
            offset,
            (f"the server says it is not synchronised (stratum {stratum}, leap {best.leap})",),
            tuple(notes),
        )
    if stratum > 10:
        return Verdict(-4.0, None, best, offset, (f"stratum {stratum} is over 10",), tuple(notes))
    if stratum in LOCAL_STRATA:
        what = (
            "the local clock served publicly"
            if best.refid == "LOCL" or stratum == 10
            else "a stratum the monitors treat as a local clock"
        )
        return Verdict(
            -4.0,
            None,
            best,
            offset,
            (
                f"stratum {stratum}, refid {best.refid or '?'}: {what}; the Pool asks members not to serve it "
                "(drop 'localclock public serve', or the local clock, from a Pool server's config)",
            ),
            tuple(notes),
        )
    points, floor = offset_points(offset)
    lost: tuple[str, ...] = ()
    if points < 1.0:
        lost = (
            f"offset {_ms(offset)} against the reference is over 25 ms "
            "(a fudge time1/time2 off, a wrong PPS offset, or a bad upstream)",
        )
    return Verdict(points, floor, best, offset, lost, tuple(notes))


def next_score(old: float, points: float, floor: float | None = None) -> float:
    """The monitor's recursion: ``points + 0.95 * old``, held at or above ``floor`` when one applies."""
    new = points + DECAY * old
    return max(new, floor) if floor is not None else new


def steady_score(points: float, floor: float | None = None) -> float:
    """The score a server tends to when every check earns ``points`` (20 for +1)."""
    s = points * CEILING
    return max(s, floor) if floor is not None else s


def checks_to_reach(points: float, threshold: float = DNS_THRESHOLD, start: float = 0.0) -> int | None:
    """Checks from score ``start`` until the score is above ``threshold`` (None: never)."""
    if steady_score(points) <= threshold:
        return None if start <= threshold else 0
    score, n = start, 0
    while score <= threshold:
        score, n = next_score(score, points), n + 1
    return n


def describe_sample(i: int, s: Sample) -> str:
    if s.outcome == "reply":
        assert s.offset_ns is not None and s.delay_ns is not None
        return (
            f"request {i}: stratum {s.stratum}, refid {s.refid or '-'}, offset {_ms(s.offset_ns)}, "
            f"delay {s.delay_ns / NS_PER_MS:.3f} ms"
        )
    if s.outcome == "kod":
        return f"request {i}: Kiss-o'-Death {s.kiss}"
    return f"request {i}: " + ("no reply" if s.outcome == "timeout" else "port unreachable")


def report(checks: list[Check], reference: str) -> tuple[list[str], float]:
    """The lines pool-check prints for the checks of one or more addresses, and the lowest predicted score."""
    by_address: dict[str, list[Check]] = {}
    for c in checks:
        by_address.setdefault(c.address, []).append(c)
    out: list[str] = [f"offsets against {reference}"]
    lowest = math.inf
    for address, mine in by_address.items():
        family = "IPv6" if ":" in address else "IPv4"
        out.append(f"{address} ({family}): {len(mine)} check{'s' if len(mine) > 1 else ''} as a Pool monitor runs it")
        verdicts = [score_check(c) for c in mine]
        for n, (c, v) in enumerate(zip(mine, verdicts, strict=True), 1):
            if len(mine) > 1:
                out.append(f"  check {n}:")
            out += [f"  {describe_sample(i, s)}" for i, s in enumerate(c.samples, 1)]
            if v.best is not None and v.offset_ns is not None:
                out.append(f"  kept: request {c.samples.index(v.best) + 1} (lowest delay), offset {_ms(v.offset_ns)}")
            out.append(f"  points: {v.points:+.2f} of +1")
            out += [f"  lost {1 - v.points:.2f} points: {why}" for why in v.lost]
            out += [f"  note: {why}" for why in v.notes]
        points = sum(v.points for v in verdicts) / len(verdicts)
        floors = [v.floor for v in verdicts if v.floor is not None]
        score = steady_score(points, min(floors) if floors else None)
        lowest = min(lowest, score)
        reach = checks_to_reach(points)
        when = (
            f"a new server passes {DNS_THRESHOLD:g} (DNS) after {reach} checks"
            if reach is not None
            else f"never above {DNS_THRESHOLD:g}: the Pool's DNS would not hand it out"
        )
        out.append(f"  predicted score: {score:.1f} of {CEILING:.0f} (every check like this); {when}")
    return out, lowest
