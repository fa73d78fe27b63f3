"""What the serial port hears of the receiver: gone, silent, talking at an unknown rate, or talking NMEA."""

from __future__ import annotations

import pytest

from appliance.nmea.link import QUIET_NS, LinkState, SerialLink, link_state
from appliance.timebase import NS_PER_S

T0 = 1_795_000_000 * NS_PER_S
QUIET_S = QUIET_NS // NS_PER_S


def open_link(**kw: object) -> SerialLink:
    return SerialLink("/dev/serial0", is_open=True, baud=9600, opened_ns=T0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("link", "after_s", "state"),
    [
        (SerialLink("/dev/ttyACM0", is_open=False, baud=9600, closed_why="lost: end of file"), 0, LinkState.GONE),
        # just opened: nothing heard yet, and nothing to judge by
        (open_link(), QUIET_S - 1, LinkState.TALKING),
        (open_link(), QUIET_S, LinkState.SILENT),
        # NMEA lines came and stopped, and so did the bytes
        (open_link(bytes_ns=T0 + NS_PER_S, nmea_ns=T0 + NS_PER_S), QUIET_S + 1, LinkState.SILENT),
        # bytes go on, NMEA does not: the rate is wrong
        (open_link(bytes_ns=T0 + 99 * NS_PER_S, nmea_ns=T0 + NS_PER_S), 100, LinkState.UNKNOWN_RATE),
        (open_link(bytes_ns=T0 + 99 * NS_PER_S), 100, LinkState.UNKNOWN_RATE),
        (open_link(bytes_ns=T0 + 99 * NS_PER_S, nmea_ns=T0 + 99 * NS_PER_S), 100, LinkState.TALKING),
    ],
    ids=["gone", "opening", "silent-from-the-start", "gone-silent", "wrong-rate", "never-nmea", "talking"],
)
def test_link_states(link: SerialLink, after_s: int, state: LinkState) -> None:
    assert link_state(link, T0 + after_s * NS_PER_S) is state
