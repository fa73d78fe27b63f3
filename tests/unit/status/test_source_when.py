"""ntpq's "when" (and ``rec``) is the time since a source's last packet, not since the sample its filter chose."""

from __future__ import annotations

from appliance.sources.source import SourceEstimate, SourceKind
from appliance.status.collect import source_status
from appliance.status.text import peer_line
from appliance.timebase import NS_PER_S

NOW = 1_795_000_000 * NS_PER_S


def test_when_counts_from_the_newest_reply_not_from_the_filtered_sample() -> None:
    """An upstream polled every 16 s whose filter still carries a low-delay sample from 7 polls ago: ntpd's
    billboard says the last reply came 3 s ago (its ``rec``), not 115 s."""
    e = SourceEstimate(
        name="192.0.2.1",
        kind=SourceKind.SERVER,
        offset_ns=20_000,
        delay_ns=200_000,
        dispersion_ns=1_000,
        jitter_ns=5_000,
        root_delay_ns=0,
        root_dispersion_ns=10_000,
        distance_ns=120_000,
        stratum=1,
        refid=b"GPS\0",
        leap=0,
        reach=0o377,
        usable=True,
        updated_ns=NOW - 3 * NS_PER_S,  # the filter last ran on the reply 3 s ago
        address="192.0.2.1",
        poll=4,
        sample_ns=NOW - 115 * NS_PER_S,  # the sample it carries
    )
    row = source_status(e, "*", 1)
    assert row.updated_ns == NOW - 3 * NS_PER_S
    assert peer_line(row, NOW).split()[4] == "3"  # remote refid st t when
