"""The gpsd socket client against a stand-in gpsd on loopback: the WATCH request, reports, disconnects."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

import pytest

from appliance.io.gpsd import GpsdDriver
from appliance.refclock.driver import SelectableDriver
from appliance.refclock.sample import SampleKind
from appliance.timebase import NS_PER_S

TOFF = (
    b'{"class":"TOFF","device":"/dev/ttyS0","real_sec":1800000000,"real_nsec":0,'
    b'"clock_sec":1800000000,"clock_nsec":120000000}\n'
)
PPS = (
    b'{"class":"PPS","device":"/dev/ttyS0","real_sec":1800000001,"real_nsec":0,'
    b'"clock_sec":1800000001,"clock_nsec":500}\n'
)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    s.settimeout(5)
    yield s
    s.close()


def wait_readable(drv: GpsdDriver) -> None:
    r, _, _ = select.select([drv.fileno()], [], [], 5)
    assert r, "nothing from the stand-in gpsd within 5 s"


def test_watch_request_then_samples(listener: socket.socket) -> None:
    drv = GpsdDriver("127.0.0.1", listener.getsockname()[1], device="/dev/ttyS0")
    assert isinstance(drv, SelectableDriver)
    drv.open()
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(5)
        request = conn.recv(1024)
        assert request == b'?WATCH={"device":"/dev/ttyS0","enable":true,"json":true,"pps":true};\r\n'
        conn.sendall(TOFF + PPS[:30])
        wait_readable(drv)
        r = drv.poll(1_800_000_000_200_000_000)
        assert [s.kind for s in r.samples] == [SampleKind.TIME]
        conn.sendall(PPS[30:])
        wait_readable(drv)
        r = drv.poll(1_800_000_001_100_000_000)
        assert [s.kind for s in r.samples] == [SampleKind.PULSE] and len(r.pulses) == 1
    wait_readable(drv)
    assert drv.poll(1_800_000_002 * NS_PER_S).empty  # gpsd went away
    assert not drv.is_open and drv.fileno() == -1
    c = drv.counters()
    assert (c["connects"], c["disconnects"], c["toff"], c["pps"]) == (1, 1, 1, 1)


def test_no_gpsd_is_an_oserror_naming_the_address(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    listener.close()  # nobody listens there now
    drv = GpsdDriver("127.0.0.1", port)
    with pytest.raises(OSError, match=f"gpsd at 127.0.0.1:{port}"):
        drv.open()
    assert drv.counters()["open_errors"] == 1
    assert drv.poll(0).empty


def test_reconnect_starts_a_fresh_line(listener: socket.socket) -> None:
    drv = GpsdDriver("127.0.0.1", listener.getsockname()[1])
    drv.open()
    conn, _ = listener.accept()
    conn.recv(1024)
    conn.sendall(TOFF[:40])  # half a line, then gpsd dies
    conn.close()
    wait_readable(drv)
    drv.poll(0)
    assert not drv.is_open
    drv.open()
    conn, _ = listener.accept()
    with conn:
        conn.recv(1024)
        conn.sendall(TOFF)
        wait_readable(drv)
        assert len(drv.poll(1_800_000_000_200_000_000).samples) == 1
    assert drv.parser.counters.bad_json == 0
    drv.close()
