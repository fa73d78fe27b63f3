"""The display fed over mode 6, as the shipped unit reads (groups i2c and gpio alone, no status socket).

The variables are what the daemon's own mode 6 handler (appliance.ntp.mode6) answers for the sample
snapshots: the pages must show what the status socket's snapshot shows, bar the two alarms mode 6 does not
carry. Then the real thing: ``Mode6ViewSource`` over loopback against a running appliance, and its NTP
fallback when mode 6 is refused (``noquery``).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import replace

import pytest
from harness import LOCAL_CLOCK_CONF, serving
from status_sample import HOLDOVER, SNAP, UNSYNC

from appliance.lcd import runner
from appliance.lcd.pages import LCD_16X2, LCD_20X4, PAGE_NAMES, LcdView, pages, render
from appliance.lcd.runner import Mode6ViewSource, NtpViewSource
from appliance.lcd.view import view_from_mode6, view_from_snapshot
from appliance.ntp import mode6client
from appliance.ntp.mode6 import ControlHandler
from appliance.ntp.packet import refid_from_text
from appliance.state import SystemState
from appliance.status.snapshot import Alarm, Snapshot
from appliance.timebase import ntp64_from_ns


def over_mode6(snap: Snapshot) -> LcdView:
    """READVAR 0 and READCLOCK 0 through the daemon's handler, read back as the display reads them."""
    handler = ControlHandler(snapshot=lambda: snap)
    s = snap.system
    state = SystemState(s.leap, s.stratum, s.precision, s.root_delay_ns, s.root_dispersion_ns, refid_from_text(s.refid))
    status, system = mode6client.reply(
        handler.handle(mode6client.request(mode6client.OP_READVAR, 7), 0, state, snap.time_ns) or b"",
        mode6client.OP_READVAR,
        7,
    )
    clock_reply = handler.handle(mode6client.request(mode6client.OP_READCLOCK, 8), 0, state, snap.time_ns) or b""
    try:
        clock: dict[str, str] | None = mode6client.variables(
            mode6client.reply(clock_reply, mode6client.OP_READCLOCK, 8)[1]
        )
    except ValueError:
        clock = None
    return view_from_mode6(mode6client.variables(system), status, clock, now_ns=snap.time_ns)


@pytest.mark.parametrize("snap", [SNAP, HOLDOVER, UNSYNC], ids=["healthy", "holdover", "unsynchronised"])
def test_mode6_pages_are_the_snapshots_pages(snap: Snapshot) -> None:
    by_mode6, by_socket = over_mode6(snap), view_from_snapshot(snap)
    assert by_mode6.alarms == by_socket.alarms
    for layout in (LCD_16X2, LCD_20X4):
        for name in PAGE_NAMES:
            if name in pages(by_socket):
                assert render(name, by_mode6, layout) == render(name, by_socket, layout), (name, layout)


def test_locking_over_mode6_is_locking() -> None:
    """Pulses arrive, the receiver's seconds not checked yet: "GPS: locking" both ways, never "no PPS"."""
    assert SNAP.gps is not None
    locking = replace(
        SNAP,
        gps=replace(SNAP.gps, pps=True, locked=False),
        alarms=(Alarm("gps-not-locked", "warning", "locking: PPS pulses arrive, not yet numbered", "wait"),),
    )
    assert over_mode6(locking).alarms == view_from_snapshot(locking).alarms == ("GPS: locking",)


def test_holdover_over_mode6_is_holdover() -> None:
    v = over_mode6(HOLDOVER)
    assert (v.basis, v.stratum, v.refid, v.fix, v.satellites_seen) == ("holdover", 1, "PPS", "none", 12)
    assert [line.rstrip() for line in render("time", v, LCD_16X2)] == ["11:06:40 UTC", "S1 PPS  holdover"]


def test_the_variables_as_ntpd_writes_them() -> None:
    text = b'leap=0, stratum=1, refid=PPS,\r\nclock=0xeeba1da7.0cda1b54, version="ntpd 4.2, x", offset=-0.003981\r\n'
    v = mode6client.variables(text)
    assert v["version"] == "ntpd 4.2, x" and v["refid"] == "PPS" and v["offset"] == "-0.003981"
    assert mode6client.ntp_time_ns(v["clock"], 1_795_000_000 * 10**9) == 1_796_185_895_050_203_045  # 2026-12-02
    t = 1_795_000_000_123_456_789
    clock = ntp64_from_ns(t)
    assert mode6client.ntp_time_ns(f"0x{clock >> 32:08x}.{clock & 0xFFFFFFFF:08x}", t) == t
    assert mode6client.ntp_time_ns("0x00000000.00000000", t) is None and mode6client.ntp_time_ns("x", t) is None
    with pytest.raises(ValueError, match="another request"):
        mode6client.reply(mode6client.request(2, 5)[:1] + b"\x82" + mode6client.request(2, 5)[2:], 2, 6)


def test_mode6_over_loopback_then_ntp_when_refused(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(LOCAL_CLOCK_CONF) as app:
        server = ("127.0.0.1", app.settings.port)
        fallback = NtpViewSource(server)
        source = Mode6ViewSource(server, fallback)
        view = source()
        assert (view.stratum, view.refid, view.basis) == (10, "LOCL", "local")
        assert view.alarms == ("Local clock only",) and view.fix is None  # the local clock: no GPS variables
        assert view.offset_ns is not None and view.jitter_ns is not None
    refused = LOCAL_CLOCK_CONF.replace("restrict 127.0.0.1\n", "restrict 127.0.0.1 noquery\n")
    # the request is dropped: wait 0.2 s for the answer that never comes (the display's own wait is 1 s)
    monkeypatch.setattr(runner, "query_mode6", functools.partial(runner.query_mode6, timeout_s=0.2))
    with serving(refused) as app, caplog.at_level(logging.INFO):
        server = ("127.0.0.1", app.settings.port)
        source = Mode6ViewSource(server, NtpViewSource(server))
        view = source()
        assert (view.stratum, view.refid, view.basis) == (10, "LOCL", "local")  # NTP still says this much
        assert view.alarms == ("Local clock, S10",)  # view_from_ntp's words: it came over NTP
    assert any("no mode 6 answer" in r.message for r in caplog.records)
