"""Build a :class:`~appliance.status.snapshot.Snapshot` from the running parts (pure: the time is passed in).

This is the one place that knows the timekeeper, the server and the drivers; everything else reads snapshots.
:func:`snapshot_from` reads the timekeeper's last selection (:meth:`Timekeeper.status`: every source's
estimate and tally), its discipline, the GPS driver's state, the server's counters and the leap table.

Association IDs (mode 6) must stay the same while a source exists, so ntpq's READSTAT and the READVARs that
follow it agree: :class:`AssocIds` hands out one per source name, in order of first sight, from 1.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from appliance.leap import LeapTable, expiry_warning
from appliance.nmea.link import LinkState, SerialLink, link_state
from appliance.ntp.packet import LEAP_UNSYNC, refid_text
from appliance.ntp.server import ServerCounters
from appliance.refclock.gps import GpsClock
from appliance.sources.source import SourceEstimate, SourceKind
from appliance.sources.timekeeper import Basis, Timekeeper
from appliance.state import SystemState
from appliance.status.snapshot import (
    Alarm,
    ClockStatus,
    Counters,
    GpsStatus,
    LeapStatus,
    ReceiverCounters,
    SatelliteStatus,
    Snapshot,
    SourceStatus,
    SystemStatus,
)
from appliance.timebase import NS_PER_S

#: ntpd's refclock driver numbers, for the pseudo-address 127.127.T.U that ntpq shows as ``srcadr``.
DRIVER_TYPES = {"LOCAL": 1, "GPS": 20, "NMEA": 20, "GPSD": 46, "PPS": 22, "SHM": 28}
#: Drop reasons that are access control's refusals; ``rate`` is the rate limiter's.
_REFUSED = frozenset({"ignore", "noserve", "noquery", "peer", "notrust", "version-restricted"})
_CLOCK_NAME = re.compile(r"^([A-Za-z]+)\((\d+)\)$")
#: A sky older than this is not shown (MediaTek receivers send GSV every 5 s; an unplugged one sends none).
SKY_MAX_AGE_NS = 30 * NS_PER_S


class AssocIds:
    """Association IDs by source name: stable while the appliance runs (see the module docstring)."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def id_for(self, name: str) -> int:
        if name not in self._ids:
            self._ids[name] = len(self._ids) + 1
        return self._ids[name]


def pseudo_address(name: str, kind: SourceKind) -> str:
    """ntpd's ``127.127.T.U`` for a clock named ``NAME(U)`` (unknown drivers get type 0)."""
    m = _CLOCK_NAME.match(name)
    if m is None:
        return "127.127.1.0" if kind is SourceKind.LOCAL else "127.127.0.0"
    return f"127.127.{DRIVER_TYPES.get(m.group(1).upper(), 0)}.{int(m.group(2)) & 0xFF}"


def source_status(e: SourceEstimate, tally: str, assoc_id: int) -> SourceStatus:
    """One source's row from its selection estimate."""
    if e.kind is SourceKind.SERVER:
        address = e.address or e.name
        refid = refid_text(e.refid, e.stratum)
    else:
        address = pseudo_address(e.name, e.kind)
        refid = refid_text(e.refid, 0)
    return SourceStatus(
        assoc_id=assoc_id,
        name=e.name,
        kind=e.kind.value,
        address=address,
        tally=tally,
        stratum=e.stratum,
        refid=refid,
        reach=e.reach,
        poll=e.poll,
        offset_ns=e.offset_ns,
        delay_ns=e.delay_ns,
        jitter_ns=e.jitter_ns,
        dispersion_ns=e.dispersion_ns,
        root_delay_ns=e.root_delay_ns,
        root_dispersion_ns=e.root_dispersion_ns,
        leap=e.leap,
        usable=e.usable,
        updated_ns=e.updated_ns,  # the newest sample: ntpq's "when" is the time since the last packet
        prefer=e.prefer,
        noselect=e.noselect,
        why=e.why_unusable,
        keyid=e.keyid,
    )


def counters_from(c: ServerCounters, previous: Snapshot | None = None, now_ns: int = 0) -> Counters:
    """The server's counters, drops sorted into refused, rate limited and the rest; the rate since ``previous``."""
    refused = sum(n for reason, n in c.dropped.items() if reason in _REFUSED)
    limited = c.dropped.get("rate", 0)
    return Counters(
        received=c.received,
        served=c.served,
        kod=c.kod_sent,
        rate_limited=limited,
        refused=refused,
        dropped=c.dropped_total - refused - limited,
        control=c.control,
        drops=tuple(sorted(c.dropped.items())),
        served_per_s=_per_s(c.served, previous, now_ns),
        authenticated=c.authenticated,
        crypto_nak=c.crypto_nak,
        interleaved=c.interleaved,
    )


def _per_s(served: int, previous: Snapshot | None, now_ns: int) -> float:
    if previous is None or now_ns <= previous.time_ns or served < previous.counters.served:
        return 0.0
    return (served - previous.counters.served) * NS_PER_S / (now_ns - previous.time_ns)


def snapshot_from(
    tk: Timekeeper | None,
    counters: ServerCounters,
    now_ns: int,
    *,
    ids: AssocIds,
    started_ns: int,
    version: str,
    precision: int,
    leap_table: LeapTable | None = None,
    previous: Snapshot | None = None,
    served: SystemState | None = None,
    gps: GpsClock | None = None,
    serial: SerialLink | None = None,
    clocks: tuple[ClockStatus, ...] = (),
    queue_drops: int = 0,
) -> Snapshot:
    """The appliance at ``now_ns`` (a reading of the served clock); ``tk`` None: no clock is steered.

    ``previous`` is the last snapshot (for the rates); ``served`` the state the server serves, which is the
    whole story when there is no timekeeper (the local clock's state, or unsynchronised); ``gps`` the
    pairing of the first NMEA receiver (its fix, satellites, pulses), if one is configured; ``serial`` its
    serial port (whether the receiver is heard at all), when its driver says; ``clocks`` each reference
    clock's own state (:func:`appliance.status.clocks.clock_statuses`); ``queue_drops`` the requests the
    kernel dropped before the server saw them.
    """
    leap = None
    alarms: list[Alarm] = []
    if leap_table is not None:
        leap = LeapStatus(leap_table.path, leap_table.tai_offset(now_ns), leap_table.expires_ns)
        warning = expiry_warning(leap_table, now_ns)
        if warning is not None:
            message = warning.removeprefix("WARNING: ").split(": leap seconds announced")[0]
            alarms.append(
                Alarm("leapfile-expiry", "warning", message, "install a current tzdata package or leap-seconds.list")
            )
    if tk is None:
        st = served if served is not None else SystemState(precision=precision)
        system = SystemStatus(
            leap=st.leap,
            stratum=st.stratum,
            precision=st.precision,
            root_delay_ns=st.root_delay_ns,
            root_dispersion_ns=st.root_dispersion_at(now_ns),  # aged, as the clients are told it now
            refid=refid_text(st.refid, 0),  # the local clock's code (LOCL) or INIT: never an address
            reference_ns=st.reference_ns,
            basis=(Basis.LOCAL if st.leap != LEAP_UNSYNC else Basis.UNSYNCHRONISED).value,
            peer=0,
            offset_ns=0,
            frequency_ppb=0.0,
            frequency_sd_ppb=0.0,
            sys_jitter_ns=0,
            clock_jitter_ns=0,
            error_ns=0,
            poll=6,
            discipline="none",
        )
        tallies = replace(counters_from(counters, previous, now_ns), queue_drops=queue_drops)
        return Snapshot(now_ns, started_ns, version, system, (), tallies, None, leap, tuple(alarms))
    status = tk.status()
    selection = status.selection
    sources = tuple(source_status(e, selection.tally_code(e.name), ids.id_for(e.name)) for e in selection.estimates)
    peer = next((s for s in sources if s.name == selection.system_peer), None)
    d = tk.discipline.status(now_ns)
    state = status.state
    system = SystemStatus(
        leap=state.leap,
        stratum=state.stratum,
        precision=state.precision,
        root_delay_ns=state.root_delay_ns,
        root_dispersion_ns=state.root_dispersion_at(now_ns),  # aged, as the clients are told it now
        # an address only when an upstream server is the reason; a code (PPS, GPS, LOCL, INIT) otherwise
        refid=refid_text(state.refid, state.stratum if status.basis is Basis.UPSTREAM else 0),
        reference_ns=state.reference_ns,
        basis=status.basis.value,
        peer=peer.assoc_id if peer else 0,
        offset_ns=selection.offset_ns,
        frequency_ppb=d.frequency_ppb,
        frequency_sd_ppb=d.frequency_sd_ppb,
        sys_jitter_ns=selection.jitter_ns,
        clock_jitter_ns=round(d.jitter_ns),
        error_ns=status.error_ns,
        poll=peer.poll if peer else 6,
        discipline=d.mode.value if hasattr(d.mode, "value") else str(d.mode),
    )
    gps_status = None
    if gps is not None:
        g = gps.status(now_ns)
        fix = g.last_fix
        fresh = g.satellites is not None and g.satellites_ns is not None and now_ns - g.satellites_ns < SKY_MAX_AGE_NS
        sky = tuple(
            SatelliteStatus(s.system, s.prn, s.elevation_deg, s.azimuth_deg, s.snr_dbhz, s.used)
            for s in ((g.satellites or ()) if fresh else ())
        )
        in_view = fix.sats_in_view if fix and fix.sats_in_view is not None else len(sky) if fresh else None
        gps_status = GpsStatus(
            fix=g.fix_ok,
            pps=g.pps_ok,
            locked=g.locked,
            fix_mode=fix.mode.name.lower() if fix else "unknown",
            satellites_used=fix.sats_used if fix else None,
            satellites_in_view=in_view,
            nmea_delay_ns=g.nmea_delay_ns,
            last_fix_ns=g.last_timed_ns,  # the last epoch with a fix, not the last one heard
            pps_samples=gps.counters.pps_samples,
            nmea_samples=gps.counters.nmea_samples,
            pulses=gps.counters.pulses,
            pulses_unpaired=gps.counters.pulses_rejected,
            sky=sky,
            sky_ns=g.satellites_ns if fresh else None,
            lock_breaks=gps.counters.lock_breaks,
            leap_jumps=gps.counters.leap_jumps,
            link=link_state(serial, now_ns).value if serial is not None else LinkState.TALKING.value,
            device=serial.path if serial is not None else "",
            baud=serial.baud if serial is not None else None,
            searching=serial.searching if serial is not None else False,
            link_why=serial.closed_why if serial is not None else "",
            autobaud=serial.autobaud if serial is not None else False,
            counters=receiver_counters(serial) if serial is not None else ReceiverCounters(),
        )
    alarms[:0] = _alarms(system, sources, gps_status)  # the time's own troubles first, the leap table's after
    tallies = replace(counters_from(counters, previous, now_ns), queue_drops=queue_drops)
    return Snapshot(now_ns, started_ns, version, system, sources, tallies, gps_status, leap, tuple(alarms), clocks)


def receiver_counters(link: SerialLink) -> ReceiverCounters:
    """The decoder's and the serial driver's counts, as the snapshot carries them."""
    n = link.nmea
    return ReceiverCounters(
        bytes_in=n.bytes_in,
        garbage_bytes=n.garbage_bytes,
        lines=n.lines,
        bad_checksum=n.bad_checksum,
        no_checksum=n.no_checksum,
        truncated=n.truncated,
        too_long=n.too_long,
        decode_error=n.decode_error,
        epochs=n.epochs,
        undated_epochs=n.undated_epochs,
        rollover_repaired=n.rollover_repaired,
        rollover_refused=n.rollover_refused,
        losses=link.losses,
        open_failures=link.open_failures,
        baud_switches=link.baud_switches,
        baud_searches=link.baud_searches,
        unselected=n.unselected,
    )


def _alarms(system: SystemStatus, sources: Iterable[SourceStatus], gps: GpsStatus | None) -> list[Alarm]:
    """What is wrong now, each with what to do about it."""
    out = []
    if system.leap == LEAP_UNSYNC:
        out.append(
            Alarm(
                "unsynchronised",
                "critical",
                "not synchronised: clients are told so (leap 3, stratum 16)",
                "check the GPS antenna ('stratum1 status' GPS lines) and the upstream servers ('stratum1 peers')",
            )
        )
    if system.basis == Basis.HOLDOVER.value:
        out.append(
            Alarm(
                "holdover",
                "warning",
                f"GPS lost: in holdover, estimated error {system.error_ns / 1000:.1f} us",
                "check the antenna and its cable; the appliance falls back to upstream servers when the bound is hit",
            )
        )
    if system.basis == Basis.LOCAL.value:
        out.append(
            Alarm(
                "local-clock",
                "warning",
                "serving the free-running local clock",
                "restore the GPS or an upstream server; the public gets 'unsynchronised' meanwhile",
            )
        )
    if gps is not None and gps.link != LinkState.TALKING.value:
        out.append(_link_alarm(gps))
    elif gps is not None and not gps.fix and gps.counters.unselected and not gps.counters.epochs:
        out.append(
            Alarm(
                "gps-unselected",
                "warning",
                f"the GPS sends none of the sentences its refclock line's mode chooses: "
                f"{gps.counters.unselected} sentences of other types left out",
                "set the mode's sentence bits to a sentence the receiver sends (1 RMC, 2 GGA, 4 GLL, 8 ZDA, "
                "512 PUBX,04), or none of them for every one ('stratum1 check-config' shows the line)",
            )
        )
    elif gps is not None and not gps.fix:
        out.append(Alarm("gps-no-fix", "warning", "the GPS reports no fix", "give the antenna a clear view of the sky"))
    if gps is not None and gps.fix and not gps.pps:
        out.append(
            Alarm(
                "pps-missing",
                "warning",
                "no PPS pulses: timing from NMEA alone (milliseconds, not microseconds)",
                "check the PPS wire / overlay ('stratum1 hw doctor')",
            )
        )
    elif gps is not None and gps.fix and not gps.locked:
        out.append(
            Alarm(
                "gps-not-locked",
                "warning",
                "locking: PPS pulses arrive, not yet numbered (the receiver's seconds are being checked)",
                "normal for a few seconds after the first fix; if it lasts, the receiver's seconds jump (the log "
                "says when; 'stratum1 status' counts the lock breaks): check its firmware and the log's NMEA lines",
            )
        )
    for s in sources:
        if s.tally == "x":
            out.append(
                Alarm(
                    "falseticker",
                    "warning",
                    f"{s.name} is a falseticker (offset {s.offset_ns / NS_PER_S:+.6f} s)",
                    "it is outvoted and never steers the clock; check that source",
                )
            )
    return out


def _link_alarm(gps: GpsStatus) -> Alarm:
    """The receiver is not heard: why, in words, with what to do (its fix is unknown, not "none")."""
    device = gps.device or "its serial port"
    if gps.link == LinkState.GONE.value:
        return Alarm(
            "gps-gone",
            "warning",
            f"the GPS serial device {device} is gone ({gps.link_why or 'closed'})",
            "plug the receiver back in or fix what the message says; the device is opened again every few seconds",
        )
    if gps.link == LinkState.SILENT.value:
        return Alarm(
            "gps-silent",
            "warning",
            f"the GPS sends nothing: no bytes on {device}",
            "check the receiver's power and its TX wire to the Pi's RX pin, and that the port is the receiver's "
            "UART ('stratum1 hw doctor')",
        )
    rate = f"{gps.baud} baud" if gps.baud is not None else "the port's rate"
    if gps.searching:
        return Alarm(
            "gps-unknown-rate",
            "warning",
            f"the GPS talks at an unknown rate: bytes on {device} but no NMEA (baud auto: searching, trying {rate})",
            "wait for 'receiver talks at N baud' in the log; if it never comes, set the receiver to send NMEA",
        )
    if gps.autobaud:  # the rate it found went quiet: the driver searches again soon, and logs it
        return Alarm(
            "gps-unknown-rate",
            "warning",
            f"the GPS talks at an unknown rate: bytes on {device} but no NMEA at {rate}, the rate baud auto found",
            "baud auto searches the rate again when NMEA stays away (the log says so); if it finds none, set the "
            "receiver to send NMEA",
        )
    return Alarm(
        "gps-unknown-rate",
        "warning",
        f"the GPS talks at an unknown rate: bytes on {device} but no NMEA at {rate}",
        "give the receiver's rate on its refclock line ('baud N'), or 'baud auto' to find it",
    )
