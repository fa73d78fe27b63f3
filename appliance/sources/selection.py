"""Source selection: which sources tell the truth, which one leads, what they say together (pure).

RFC 5905 section 11.2, with ntpd 4.2.8's refinements, on
:class:`~appliance.sources.source.SourceEstimate` values (int ns):

1. **Candidates** (11.2.1): usable sources (reach not 0, stratum below 16,
   leap not 3, root distance below MAXDIST) that are not ``noselect``. The
   local clock (kind LOCAL) takes no part: it only stands in when nothing
   else survives.
2. **Intersection** (11.2.1, Marzullo's algorithm as Mills adapted it). Each
   candidate's *correctness interval* is ``offset +- lambda`` (its root
   distance). For ``f = 0, 1, ...`` while ``2f < n``, find the smallest
   interval ``[low, high]`` that holds a point of at least ``n - f`` of
   them; the first ``f`` that gives one wins. Candidates whose interval
   meets ``[low, high]`` are *truechimers*, the rest *falsetickers*
   (ntpq's ``x``). Without a majority (``2f`` would reach ``n``: two
   candidates that disagree, say) there is no interval and every candidate
   is a falseticker: better no time than the wrong time.
3. **Cluster** (11.2.2). Truechimers are ranked by ``stratum * MAXDIST +
   lambda`` (a lower stratum first, then the shorter distance). While more
   than MINCLOCK (3) remain, the one whose *selection jitter* (RMS of the
   offset differences to the others) times its distance is the largest is
   dropped as an *outlier* (``-``), unless that selection jitter is already
   below the smallest peer jitter (pruning gains nothing) or it is a
   ``prefer`` source (ntpd's "immunity").
4. **System peer** (11.2.3). The first survivor; but a ``prefer`` survivor
   wins, and the previous system peer stays if it survives at the same
   stratum as the first (no clock hopping). **The PPS rule** comes first
   (ntpd's "pps peer", tally ``o``; chrony's PPS refclock with ``lock``): a
   surviving PPS refclock (kind REFCLOCK, refid ``PPS``: a ``pps`` line, or
   an NMEA receiver whose pulses its own seconds number) is the system peer
   when it is good: it survived, and its root distance is no longer than
   that of the source the other rules pick (the one that numbers its
   seconds: a gpsd SHM segment, an NMEA receiver without PPS, an upstream
   server), which it then replaces, ``prefer`` or not (once the peer, it
   stays while it survives: no hopping back and forth): its seconds come
   from that source, its edge is the better time. Among several good PPS
   survivors the same order applies (``prefer``, then the previous peer,
   then rank). A PPS that is not numbered hands up nothing, so it cannot
   survive unnumbered; one whose numbering disagrees with the other
   sources is a falseticker. The distance condition keeps a PPS whose
   filter has only begun to fill from taking over while its distance
   would still unsynchronise the system that numbers it (ntpd's ATOM asks
   for a ``prefer`` peer and a system offset under 0.4 s instead).
5. **Combine** (11.2.3). Survivors whose distance is at most COMBINE_LIMIT
   (3, chrony's ``combinelimit``) times the system peer's are averaged,
   weighted by ``1 / lambda``; the selection jitter is the weighted RMS of
   their offsets' differences to the peer's, and the system jitter is
   ``sqrt(peer jitter**2 + selection jitter**2)``. When the system peer is a
   refclock or ``prefer`` (ntpd's prefer/PPS rule) its offset is used alone:
   averaging a PPS with network servers would only add their noise.
6. **Leap**: a refclock or local peer's own; otherwise the warning more than
   half of the combined sources give (ntpd's leap vote), else none.

Tally codes, as ntpq prints them: ``*`` system peer (``o`` when it is a PPS
refclock), ``+`` survivor within the combine limit, ``#`` survivor beyond it
(and an unused local clock), ``-`` outlier, ``x`` falseticker, `` `` not a
candidate (unusable or ``noselect``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from appliance.ntp.packet import LEAP_DELETE, LEAP_INSERT, LEAP_NONE, LEAP_UNSYNC
from appliance.sources.source import MAXDIST_NS, SourceEstimate, SourceKind

#: Survivors the cluster step keeps at least (RFC 5905 "NMIN", ntpd's ``tos minclock``).
MINCLOCK = 3
#: Survivors within this factor of the system peer's root distance are combined (chrony's ``combinelimit``).
COMBINE_LIMIT = 3
#: Weights are ``_WEIGHT / lambda``: integers large enough to keep the combined offset to the ns.
_WEIGHT = 1 << 80
_PPS_REFID = b"PPS\0"

SYSTEM_PEER = "*"
PPS_PEER = "o"
CANDIDATE = "+"
BACKUP = "#"
OUTLIER = "-"
FALSETICKER = "x"
REJECTED = " "


@dataclass(frozen=True, slots=True)
class Selection:
    """The outcome of one selection at ``time_ns``.

    ``system_peer`` is the name of the chosen source (None: nothing to
    follow) and ``peer`` its estimate. ``offset_ns`` and ``jitter_ns`` are
    the combined offset (reference minus local: positive means the local
    clock is behind) and the system jitter. ``survivors`` are the cluster's
    survivors, best first; ``combined`` those averaged into ``offset_ns``.
    ``interval`` is the intersection ``(low, high)`` in ns of offset, None
    when there was none. ``tally`` maps every source's name to its ntpq
    tally code.
    """

    time_ns: int
    system_peer: str | None
    peer: SourceEstimate | None
    offset_ns: int
    jitter_ns: int
    leap: int
    truechimers: tuple[str, ...]
    falsetickers: tuple[str, ...]
    outliers: tuple[str, ...]
    survivors: tuple[str, ...]
    combined: tuple[str, ...]
    interval: tuple[int, int] | None
    tally: Mapping[str, str]
    estimates: tuple[SourceEstimate, ...] = field(default=())

    def tally_code(self, name: str) -> str:
        """The ntpq tally character of source ``name`` (`` `` when unknown)."""
        return self.tally.get(name, REJECTED)


def select(
    estimates: Sequence[SourceEstimate],
    now_ns: int,
    *,
    previous: str | None = None,
    min_survivors: int = MINCLOCK,
) -> Selection:
    """Select among ``estimates`` (all made at ``now_ns``); ``previous`` is the last system peer's name.

    See the module docstring for the steps. Names must be unique.
    """
    candidates = [e for e in estimates if e.usable and not e.noselect and e.kind is not SourceKind.LOCAL]
    locals_ = [e for e in estimates if e.usable and not e.noselect and e.kind is SourceKind.LOCAL]
    interval = intersection(candidates)
    if interval is None:
        truechimers: list[SourceEstimate] = []
    else:
        low, high = interval
        truechimers = [
            e for e in candidates if e.offset_ns + e.distance_ns >= low and e.offset_ns - e.distance_ns <= high
        ]
    true_names = {e.name for e in truechimers}
    falsetickers = [e for e in candidates if e.name not in true_names]
    survivors, outliers = cluster(truechimers, min_survivors)
    peer = _choose(survivors, previous)
    if peer is None and locals_:
        peer = min(locals_, key=lambda e: (e.stratum, e.name))
    combined = _combine_set(peer, survivors)
    offset, jitter = _combine(peer, combined)
    tally = _tally(estimates, peer, survivors, combined, outliers, falsetickers)
    return Selection(
        time_ns=now_ns,
        system_peer=peer.name if peer is not None else None,
        peer=peer,
        offset_ns=offset,
        jitter_ns=jitter,
        leap=_leap(peer, combined),
        truechimers=tuple(e.name for e in truechimers),
        falsetickers=tuple(e.name for e in falsetickers),
        outliers=tuple(e.name for e in outliers),
        survivors=tuple(e.name for e in survivors),
        combined=tuple(e.name for e in combined),
        interval=interval,
        tally=MappingProxyType(tally),
        estimates=tuple(estimates),
    )


def stood_aside(sel: Selection) -> Selection:
    """``sel`` with its system peer standing aside: no system peer, the peer tallied as the survivor it is.

    For holdover (:mod:`appliance.sources.timekeeper`): the clock runs on what the lost reference clock
    trained and nothing selected steers it, so no source may show as the system peer (ntpq ``*``,
    mode 6 ``peer``), though the local clock or a server was chosen: the local clock shows ``#`` (a local
    clock unused), a server ``+``. The combined offset and jitter stay: what the survivors say of the clock
    running on.
    """
    peer = sel.peer
    if peer is None:
        return sel
    tally = dict(sel.tally)
    tally[peer.name] = BACKUP if peer.kind is SourceKind.LOCAL else CANDIDATE
    return replace(sel, system_peer=None, peer=None, tally=MappingProxyType(tally))


def intersection(candidates: Sequence[SourceEstimate]) -> tuple[int, int] | None:
    """The intersection interval ``(low, high)`` of a majority of correctness intervals, or None.

    Step 2 of the module docstring. Intervals that only touch count as
    overlapping.
    """
    n = len(candidates)
    if n == 0:
        return None
    # (edge, kind): kind -1 opens an interval, +1 closes it; at equal edges openings sort first
    edges = sorted(
        [(e.offset_ns - e.distance_ns, -1) for e in candidates] + [(e.offset_ns + e.distance_ns, 1) for e in candidates]
    )
    allow = 0
    while 2 * allow < n:
        need = n - allow
        low = _sweep(edges, need, -1)
        high = _sweep(list(reversed(edges)), need, 1)
        if low is not None and high is not None and low <= high:
            return low, high
        allow += 1
    return None


def _sweep(edges: Sequence[tuple[int, int]], need: int, opening: int) -> int | None:
    """The first edge (in the given order) at which ``need`` intervals are open at once."""
    depth = 0
    for value, kind in edges:
        depth += 1 if kind == opening else -1
        if depth >= need:
            return value
    return None


def cluster(
    truechimers: Sequence[SourceEstimate], min_survivors: int = MINCLOCK
) -> tuple[list[SourceEstimate], list[SourceEstimate]]:
    """Rank the truechimers and prune outliers; return ``(survivors best first, outliers)`` (step 3)."""
    survivors = sorted(truechimers, key=lambda e: (e.stratum * MAXDIST_NS + e.distance_ns, e.name))
    outliers: list[SourceEstimate] = []
    while len(survivors) > max(1, min_survivors):
        n = len(survivors)
        jitters = [math.isqrt(sum((o.offset_ns - e.offset_ns) ** 2 for o in survivors) // (n - 1)) for e in survivors]
        worst = max(range(n), key=lambda i: (jitters[i] * survivors[i].distance_ns, i))
        if jitters[worst] <= min(e.jitter_ns for e in survivors) or survivors[worst].prefer:
            break
        outliers.append(survivors.pop(worst))
    return survivors, outliers


def is_pps(e: SourceEstimate) -> bool:
    """Whether ``e`` is a PPS refclock (its samples are pulse edges numbered by another source's seconds).

    >>> from dataclasses import replace
    >>> from appliance.ntp.packet import refid_from_text
    >>> e = SourceEstimate("PPS(0)", SourceKind.REFCLOCK, 0, 0, 0, 0, 0, 0, 0, 0, refid_from_text("PPS"), 0, 1, True)
    >>> is_pps(e), is_pps(replace(e, refid=refid_from_text("SHM")))
    (True, False)
    """
    return e.kind is SourceKind.REFCLOCK and e.refid == _PPS_REFID


def _choose(survivors: Sequence[SourceEstimate], previous: str | None) -> SourceEstimate | None:
    """The system peer among ``survivors`` (best first): the PPS rule, then prefer, then no hopping."""
    other = _choose_among([e for e in survivors if not is_pps(e)], previous)
    limit = other.distance_ns if other is not None else None
    good = [e for e in survivors if is_pps(e) and (limit is None or e.distance_ns <= limit or e.name == previous)]
    return _choose_among(good, previous) or other


def _choose_among(survivors: Sequence[SourceEstimate], previous: str | None) -> SourceEstimate | None:
    if not survivors:
        return None
    for e in survivors:
        if e.prefer:
            return e
    best = survivors[0]
    for e in survivors:
        if e.name == previous and e.stratum == best.stratum:
            return e
    return best


def _combine_set(peer: SourceEstimate | None, survivors: Sequence[SourceEstimate]) -> list[SourceEstimate]:
    if peer is None:
        return []
    limit = COMBINE_LIMIT * peer.distance_ns
    return [peer] + [e for e in survivors if e.name != peer.name and e.distance_ns <= limit]


def _combine(peer: SourceEstimate | None, combined: Sequence[SourceEstimate]) -> tuple[int, int]:
    """Combined offset and system jitter (step 5)."""
    if peer is None:
        return 0, 0
    if peer.kind is not SourceKind.SERVER or peer.prefer or len(combined) == 1:
        return peer.offset_ns, peer.jitter_ns
    weights = [_WEIGHT // max(1, e.distance_ns) for e in combined]
    total = sum(weights)
    offset = _div_round(sum(w * e.offset_ns for w, e in zip(weights, combined, strict=True)), total)
    spread = sum(w * (e.offset_ns - peer.offset_ns) ** 2 for w, e in zip(weights, combined, strict=True)) // total
    return offset, math.isqrt(peer.jitter_ns**2 + spread)


def _leap(peer: SourceEstimate | None, combined: Sequence[SourceEstimate]) -> int:
    if peer is None:
        return LEAP_UNSYNC
    if peer.kind is not SourceKind.SERVER:
        return peer.leap
    for warning in (LEAP_INSERT, LEAP_DELETE):
        if 2 * sum(1 for e in combined if e.leap == warning) > len(combined):
            return warning
    return LEAP_NONE


def _tally(
    estimates: Sequence[SourceEstimate],
    peer: SourceEstimate | None,
    survivors: Sequence[SourceEstimate],
    combined: Sequence[SourceEstimate],
    outliers: Sequence[SourceEstimate],
    falsetickers: Sequence[SourceEstimate],
) -> dict[str, str]:
    tally = {e.name: REJECTED for e in estimates}
    for e in estimates:
        if e.usable and not e.noselect and e.kind is SourceKind.LOCAL:
            tally[e.name] = BACKUP
    for e in falsetickers:
        tally[e.name] = FALSETICKER
    for e in outliers:
        tally[e.name] = OUTLIER
    combined_names = {e.name for e in combined}
    limit = COMBINE_LIMIT * peer.distance_ns if peer is not None else 0
    for e in survivors:
        tally[e.name] = CANDIDATE if e.name in combined_names or e.distance_ns <= limit else BACKUP
    if peer is not None:
        tally[peer.name] = PPS_PEER if is_pps(peer) else SYSTEM_PEER
    return tally


def _div_round(a: int, b: int) -> int:
    """``a / b`` rounded to the nearest integer (b > 0)."""
    return (2 * a + b) // (2 * b)
