"""A snapshot as Prometheus metrics (pure): names, types, help and samples; no client library needed here.

The exporter process (:mod:`appliance.exporter`) hands these to ``prometheus_client``, which writes the text
exposition. Names follow Prometheus conventions: a ``stratum1_`` prefix, base units (``_seconds``, ratios
not ppm), counters end in ``_total`` (``prometheus_client`` adds it to a counter family's name), a source or
an outcome is a label, not a name.

================================================  =======  ===================================================
metric                                            type     meaning
================================================  =======  ===================================================
stratum1_synchronised                             gauge    1 when the time served is synchronised (leap != 3)
stratum1_stratum                                  gauge    the stratum served
stratum1_leap_indicator                           gauge    the leap indicator served (1, 2: a leap second due today)
stratum1_offset_seconds                           gauge    combined offset of the last selection (+: behind)
stratum1_system_jitter_seconds                    gauge    the selection's jitter
stratum1_clock_jitter_seconds                     gauge    the discipline's measured jitter
stratum1_estimated_error_seconds                  gauge    the discipline's error estimate (1 sigma)
stratum1_root_distance_seconds                    gauge    root delay / 2 + root dispersion served
stratum1_frequency_ratio                          gauge    the clock's frequency correction (1e-6 = 1 ppm)
stratum1_basis_info{basis}                        gauge    1 for the basis in use, 0 for each other (refclock...)
stratum1_source_offset_seconds{source,kind}       gauge    each source's offset
stratum1_source_jitter_seconds{source,kind}       gauge    each source's jitter
stratum1_source_delay_seconds{source,kind}        gauge    each source's round-trip delay
stratum1_source_reach{source,kind}                gauge    the reach register (0..255)
stratum1_source_state{source,state}               gauge    1 for the source's selection state, 0 for the others
stratum1_requests_total{outcome}                  counter  served, kod, rate_limited, refused, dropped
stratum1_control_requests_total                   counter  mode 6 requests
stratum1_dropped_requests_total{reason}           counter  requests not answered, by the server's reason
stratum1_receive_queue_drops_total                counter  requests the kernel dropped (receive queue full)
stratum1_authenticated_replies_total{result}      counter  replies to requests with a MAC: signed, crypto_nak
stratum1_interleaved_replies_total                counter  time replies in interleaved mode (RFC 9769: chrony's xleave)
stratum1_gps_fix                                  gauge    1 when the receiver reports a fix
stratum1_gps_satellites_used                      gauge    satellites in the fix
stratum1_gps_satellites_visible                   gauge    satellites in view
stratum1_gps_locked                               gauge    1 while the receiver's seconds are checked (numbering pulses)
stratum1_pps_ok                                   gauge    1 while pulses arrive (numbered yet or not)
stratum1_pps_pulses_total                         counter  pulses seen
stratum1_gps_lock_breaks_total                    counter  times the receiver's seconds jumped and the lock broke
stratum1_pps_unpaired_pulses_total                counter  pulses not paired with a second (misses)
stratum1_gps_nmea_dropped_lines_total{reason}     counter  NMEA lines dropped: bad_checksum, no_checksum, truncated,
                                                           too_long, decode_error
stratum1_gps_garbage_bytes_total                  counter  bytes read outside any NMEA sentence
stratum1_gps_undated_epochs_total                 counter  receiver epochs with no date known (or refused)
stratum1_gps_rollover_dates_total{result}         counter  dates the GPS week rollover repair repaired or refused
stratum1_gps_serial_events_total{event}           counter  the serial port's loss, open_failure, baud_switch,
                                                           baud_search
stratum1_leap_table_expiry_timestamp_seconds      gauge    when the leap-second table expires (POSIX)
stratum1_start_time_seconds                       gauge    when the daemon started (POSIX)
stratum1_alarm{code,severity}                     gauge    1 for each alarm raised, 0 for each known one not
================================================  =======  ===================================================

The three state-like families list every state, 0 but for the current one (as prometheus_client's ``Enum``
and OpenMetrics' StateSet do): a series that vanished when its state ended would never read 0, so
``stratum1_basis_info{basis="refclock"} == 0`` could not fire when the GPS is lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from appliance.sources.timekeeper import Basis
from appliance.status.snapshot import ReceiverCounters, Snapshot

#: The selection state names, by ntpq tally code.
STATE_NAMES = {
    "*": "sys_peer",
    "o": "pps_peer",
    "+": "candidate",
    "#": "backup",
    "-": "outlier",
    "x": "falseticker",
    ".": "excess",
    " ": "rejected",
}


#: Every alarm the snapshot may carry (appliance/status/collect.py raises them), with its severity.
ALARMS = {
    "unsynchronised": "critical",
    "holdover": "warning",
    "local-clock": "warning",
    "gps-no-fix": "warning",
    "gps-gone": "warning",
    "gps-silent": "warning",
    "gps-unknown-rate": "warning",
    "gps-unselected": "warning",
    "pps-missing": "warning",
    "gps-not-locked": "warning",
    "falseticker": "warning",
    "leapfile-expiry": "warning",
}


def _known(n: int | None) -> float:
    """A count, or NaN when it is not known (Prometheus's "no value": a stale number would mislead)."""
    return math.nan if n is None else float(n)


def _one_of(current: str, every: list[str]) -> tuple[tuple[str, float], ...]:
    """Each of ``every`` (and ``current``, when it is new) with 1.0 for ``current`` and 0.0 for the others."""
    names = every if current in every else [*every, current]
    return tuple((name, 1.0 if name == current else 0.0) for name in names)


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family: ``kind`` is ``gauge`` or ``counter`` (``name`` without ``_total`` for a counter)."""

    name: str
    kind: str
    help: str
    labels: tuple[str, ...]
    samples: tuple[tuple[tuple[str, ...], float], ...]


def _g(name: str, help_: str, value: float) -> Family:
    return Family(name, "gauge", help_, (), (((), value),))


def families(snap: Snapshot) -> list[Family]:
    """Every metric of ``snap`` (see the module docstring's table)."""
    s = snap.system
    out = [
        _g("stratum1_synchronised", "1 when the time served is synchronised", 0.0 if s.leap == 3 else 1.0),
        _g("stratum1_stratum", "The stratum served", float(s.stratum)),
        _g(
            "stratum1_leap_indicator",
            "The leap indicator served (1 insert, 2 delete: at the end of the UTC day)",
            float(s.leap),
        ),
        _g(
            "stratum1_offset_seconds",
            "Combined offset of the last selection (positive: clock behind)",
            s.offset_ns / 1e9,
        ),
        _g("stratum1_system_jitter_seconds", "Jitter of the last selection", s.sys_jitter_ns / 1e9),
        _g("stratum1_clock_jitter_seconds", "The discipline's measured jitter", s.clock_jitter_ns / 1e9),
        _g("stratum1_estimated_error_seconds", "The discipline's estimated error (1 sigma)", s.error_ns / 1e9),
        _g(
            "stratum1_root_distance_seconds",
            "Root delay / 2 + root dispersion served",
            (s.root_delay_ns / 2 + s.root_dispersion_ns) / 1e9,
        ),
        _g("stratum1_frequency_ratio", "The clock's frequency correction (1e-6 is 1 ppm)", s.frequency_ppb / 1e9),
        Family(
            "stratum1_basis_info",
            "gauge",
            "1 for the basis of the time served, 0 for the others",
            ("basis",),
            tuple(((b,), v) for b, v in _one_of(s.basis, [b.value for b in Basis])),
        ),
        _g("stratum1_start_time_seconds", "When the daemon started (POSIX seconds)", snap.started_ns / 1e9),
    ]
    per_source = (
        ("stratum1_source_offset_seconds", "Each source's offset (positive: clock behind)", "offset_ns", 1e-9),
        ("stratum1_source_jitter_seconds", "Each source's jitter", "jitter_ns", 1e-9),
        ("stratum1_source_delay_seconds", "Each source's round-trip delay", "delay_ns", 1e-9),
        ("stratum1_source_reach", "Each source's reach register (0..255)", "reach", 1.0),
    )
    for name, help_, field, scale in per_source:
        samples = tuple(((src.name, src.kind), getattr(src, field) * scale) for src in snap.sources)
        out.append(Family(name, "gauge", help_, ("source", "kind"), samples))
    every_state = list(dict.fromkeys(STATE_NAMES.values()))
    states = tuple(
        ((src.name, state), v)
        for src in snap.sources
        for state, v in _one_of(STATE_NAMES.get(src.tally, "rejected"), every_state)
    )
    out.append(
        Family(
            "stratum1_source_state",
            "gauge",
            "1 for each source's selection state, 0 for the others",
            ("source", "state"),
            states,
        )
    )
    c = snap.counters
    outcomes = (
        (("served",), float(c.served)),
        (("kod",), float(c.kod)),
        (("rate_limited",), float(c.rate_limited)),
        (("refused",), float(c.refused)),
        (("dropped",), float(c.dropped)),
    )
    out.append(Family("stratum1_requests", "counter", "NTP requests by outcome", ("outcome",), outcomes))
    out.append(Family("stratum1_control_requests", "counter", "Mode 6 (ntpq) requests", (), (((), float(c.control)),)))
    out.append(
        Family(
            "stratum1_dropped_requests",
            "counter",
            "Requests not answered, by reason (rate, noquery, control-rate, control-nonce, short, mode7...)",
            ("reason",),
            tuple(((reason,), float(n)) for reason, n in c.drops),
        )
    )
    out.append(
        Family(
            "stratum1_receive_queue_drops",
            "counter",
            "Requests the kernel dropped before the server read them (its sockets' receive queues were full)",
            (),
            (((), float(c.queue_drops)),),
        )
    )
    signed = ((("signed",), float(c.authenticated)), (("crypto_nak",), float(c.crypto_nak)))
    out.append(
        Family("stratum1_authenticated_replies", "counter", "Replies to requests with a MAC", ("result",), signed)
    )
    out.append(
        Family(
            "stratum1_interleaved_replies",
            "counter",
            "Time replies in interleaved mode",
            (),
            (((), float(c.interleaved)),),
        )
    )
    g = snap.gps
    if g is not None:
        sats_used = g.satellites_used if g.fix else None  # the last fix's count is not the count now
        out += [
            _g("stratum1_gps_fix", "1 when the GPS reports a fix", 1.0 if g.fix else 0.0),
            _g("stratum1_gps_satellites_used", "Satellites in the fix (NaN: no fix, unknown)", _known(sats_used)),
            _g("stratum1_gps_satellites_visible", "Satellites in view (NaN: unknown)", _known(g.satellites_in_view)),
            _g("stratum1_gps_locked", "1 while the GPS seconds number the pulses", 1.0 if g.locked else 0.0),
            _g("stratum1_pps_ok", "1 while PPS pulses arrive (numbered yet or not)", 1.0 if g.pps else 0.0),
            Family("stratum1_pps_pulses", "counter", "PPS pulses seen", (), (((), float(g.pulses)),)),
            Family(
                "stratum1_gps_lock_breaks",
                "counter",
                "Times the GPS seconds jumped and the lock broke",
                (),
                (((), float(g.lock_breaks)),),
            ),
            Family(
                "stratum1_pps_unpaired_pulses",
                "counter",
                "PPS pulses not paired",
                (),
                (((), float(g.pulses_unpaired)),),
            ),
        ]
    if g is not None:
        out += _receiver_counters(g.counters)
    if snap.leap is not None:
        out.append(
            _g(
                "stratum1_leap_table_expiry_timestamp_seconds",
                "When the leap table expires",
                snap.leap.expires_ns / 1e9,
            )
        )
    raised = {a.code: a.severity for a in snap.alarms}
    alarms = tuple(((code, severity), 1.0) for code, severity in raised.items()) + tuple(
        ((code, severity), 0.0) for code, severity in ALARMS.items() if code not in raised
    )
    out.append(
        Family("stratum1_alarm", "gauge", "1 for each alarm raised, 0 for each not", ("code", "severity"), alarms)
    )
    return out


def _receiver_counters(c: ReceiverCounters) -> list[Family]:
    """The NMEA decoder's and the serial driver's counters: one family per kind of thing, the reason a label."""
    dropped = tuple(
        ((reason,), float(getattr(c, reason)))
        for reason in ("bad_checksum", "no_checksum", "truncated", "too_long", "decode_error")
    )
    dates = ((("repaired",), float(c.rollover_repaired)), (("refused",), float(c.rollover_refused)))
    events = (
        (("loss",), float(c.losses)),
        (("open_failure",), float(c.open_failures)),
        (("baud_switch",), float(c.baud_switches)),
        (("baud_search",), float(c.baud_searches)),
    )
    return [
        Family("stratum1_gps_nmea_dropped_lines", "counter", "NMEA lines dropped, by reason", ("reason",), dropped),
        Family(
            "stratum1_gps_garbage_bytes",
            "counter",
            "Bytes outside any NMEA sentence",
            (),
            (((), float(c.garbage_bytes)),),
        ),
        Family(
            "stratum1_gps_undated_epochs",
            "counter",
            "Receiver epochs with no date known (or refused)",
            (),
            (((), float(c.undated_epochs)),),
        ),
        Family(
            "stratum1_gps_rollover_dates",
            "counter",
            "Dates the GPS week rollover repair moved forward or refused",
            ("result",),
            dates,
        ),
        Family("stratum1_gps_serial_events", "counter", "The GPS serial port's events", ("event",), events),
    ]
