"""The status page's HTML from one snapshot (pure: a snapshot in, text out).

The page carries the facts ``stratum1 status`` prints (stratum, refid, basis, offset, jitter, frequency,
the estimated error, the alarms), the sources table (``stratum1 peers``), the GPS receiver and its sky, a
live chart and the day's plot (``/plot.svg``). The server renders the facts whole, so they read without
JavaScript; ``/static/status.js`` then refreshes the same elements (by ``id``) from ``/status.json`` every
few seconds, through ``textContent`` alone, and draws the two pictures that need it: the live chart and the
GPS sky (a polar plot of the snapshot's ``gps.sky``: azimuth around, elevation inwards from the horizon,
the signal as colour and size, used satellites filled). Every text that comes from the snapshot (source
names, refids, alarm messages, the version) is HTML-escaped here.

The words that are not the snapshot's own (the headline, "synchronised to reference clock (holdover)")
come from :mod:`appliance.status.text` alone: the page here, and :func:`words` for the script, which
``/status.json`` carries beside the snapshot.

Units as :mod:`appliance.status.snapshot`: the offset shown is the snapshot's (reference minus local).
"""

from __future__ import annotations

import datetime
from html import escape

from appliance.status.snapshot import Snapshot, SourceStatus
from appliance.status.text import leap_words, receiver_words, synchronised_line
from appliance.timebase import NS_PER_S

#: How often the script refreshes (ms); carried on the page as data-refresh-ms.
REFRESH_MS = 5000

#: What the sky box says before the script has drawn it.
SKY_NOTE = "the sky view (satellites by azimuth and elevation, signal strength) needs JavaScript"


def level(snap: Snapshot) -> str:
    """The headline's colour: ``critical``, ``warning`` (any alarm) or ``ok``."""
    if any(a.severity == "critical" for a in snap.alarms):
        return "critical"
    return "warning" if snap.alarms else "ok"


def words(snap: Snapshot) -> dict[str, str]:
    """The page's words for the script (``/status.json``'s ``words``): the headline and its level."""
    return {"headline": synchronised_line(snap), "level": level(snap)}


def utc(t_ns: int | None) -> str:
    if t_ns is None:
        return "never"
    return datetime.datetime.fromtimestamp(t_ns // NS_PER_S, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def us(d_ns: float) -> str:
    """A duration in microseconds with three decimals (status.js's ``us`` prints the same)."""
    return f"{d_ns / 1000:.3f} us"


def system_fields(snap: Snapshot) -> list[tuple[str, str, str]]:
    """(element id, label, value) of the system facts, in page order."""
    s = snap.system
    up = (snap.time_ns - snap.started_ns) // NS_PER_S
    return [
        ("stratum", "Stratum", str(s.stratum)),
        ("refid", "Reference ID", s.refid),
        ("basis", "Basis", s.basis),
        ("leap", "Leap indicator", str(s.leap) + (f" ({due})" if (due := leap_words(s.leap)) else "")),
        ("offset", "Offset", us(s.offset_ns)),
        ("jitter", "Jitter", us(s.clock_jitter_ns)),
        ("frequency", "Frequency", f"{s.frequency_ppb / 1000:+.3f} ppm"),
        ("error", "Estimated error", us(s.error_ns)),
        ("distance", "Root distance", us(s.root_delay_ns / 2 + s.root_dispersion_ns)),
        ("reference", "Reference time", utc(s.reference_ns)),
        ("time", "Snapshot", utc(snap.time_ns)),
        ("uptime", "Up", f"{up // 86400}d {up % 86400 // 3600:02d}:{up % 3600 // 60:02d}:{up % 60:02d}"),
        ("version", "Version", snap.version),
    ]


SOURCE_COLUMNS = ("", "Name", "Kind", "Address", "Refid", "St", "Reach", "Poll", "Offset", "Delay", "Jitter", "Note")


def source_cells(s: SourceStatus) -> list[str]:
    """One sources-table row's cells (status.js's ``sourceCells`` builds the same)."""
    return [
        s.tally.strip() or "\u00a0",
        s.name,
        s.kind,
        s.address,
        s.refid,
        str(s.stratum),
        f"{s.reach:o}",
        str(1 << s.poll),
        us(s.offset_ns),
        us(s.delay_ns),
        us(s.jitter_ns),
        s.why,
    ]


def gps_fields(snap: Snapshot) -> list[tuple[str, str, str]]:
    g = snap.gps
    if g is None:
        return [("gps-fix", "Receiver", "none configured")]
    return [
        # a receiver not heard has no fix to tell: why it is not heard instead
        ("gps-fix", "Fix", receiver_words(g) or (g.fix_mode if g.fix else "none")),
        ("gps-used", "Satellites used", "?" if g.satellites_used is None or not g.fix else str(g.satellites_used)),
        ("gps-seen", "Satellites in view", "?" if g.satellites_in_view is None else str(g.satellites_in_view)),
        ("gps-pps", "PPS", "ok" if g.pps else "missing"),
        ("gps-locked", "Seconds and pulses", "locked" if g.locked else "not locked"),
        ("gps-delay", "NMEA delay", "unknown" if g.nmea_delay_ns is None else f"{g.nmea_delay_ns / 1e6:.0f} ms"),
        ("gps-last", "Last fix", utc(g.last_fix_ns)),
    ]


def _dl(fields: list[tuple[str, str, str]]) -> str:
    return "".join(f'<dt>{escape(label)}</dt><dd id="f-{key}">{escape(value)}</dd>' for key, label, value in fields)


def page(snap: Snapshot | None, error: str = "") -> str:
    """The whole HTML document; ``snap`` None (the daemon did not answer) shows ``error`` instead."""
    if snap is None:
        headline, colour = f"no status: {error}", "critical"
        system = alarms = rows = gps = ""
    else:
        w = words(snap)
        headline, colour = w["headline"], w["level"]
        system = _dl(system_fields(snap))
        alarms = (
            "".join(
                f'<li class="{escape(a.severity)}"><strong>{escape(a.severity.upper())} {escape(a.code)}</strong>: '
                f"{escape(a.message)}<br><span>what to do: {escape(a.action)}</span></li>"
                for a in snap.alarms
            )
            or '<li class="ok">none</li>'
        )
        rows = "".join(
            "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in source_cells(s)) + "</tr>" for s in snap.sources
        )
        gps = _dl(gps_fields(snap))
    head = "".join(f"<th>{escape(c)}</th>" for c in SOURCE_COLUMNS)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>stratum1 status</title>
<link rel="stylesheet" href="/static/status.css">
<script src="/static/status.js" defer></script>
</head>
<body data-refresh-ms="{REFRESH_MS}">
<header>
<h1>stratum1 status</h1>
<p id="headline" class="{colour}">{escape(headline)}</p>
<p id="updated" class="muted">read-only; refreshed every {REFRESH_MS // 1000} s</p>
</header>
<main>
<section><h2>Time served</h2><dl id="system">{system}</dl></section>
<section><h2>Alarms</h2><ul id="alarms">{alarms}</ul></section>
<section class="wide"><h2>Sources</h2><div class="scroll"><table id="sources">
<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div></section>
<section><h2>GPS</h2><dl id="gps">{gps}</dl></section>
<section><h2>GPS sky</h2><div id="sky" class="chart"><p class="muted">{escape(SKY_NOTE)}</p></div></section>
<section class="wide"><h2>Offset since this page opened</h2><div id="live" class="chart">
<p class="muted">the live chart needs JavaScript</p></div></section>
<section class="wide"><h2>The last day (loopstats)</h2>
<img id="plot" src="/plot.svg" alt="offset, jitter and frequency over the last day"></section>
</main>
</body>
</html>
"""
