"""SIGHUP's work: a new configuration applied to a running appliance where no restart is needed.

The appliance runs in this process on loopback; its loop is pumped until the
request sent has been taken in, so no test waits on a timer. Where the
compiled data plane is built, the tests run against it and against the
Python path: a reload must reach both (the compiled server holds its own
copy of the access table and the rate limiter).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.cli import reload_config
from appliance.config import load_config, parse_config
from appliance.config.changes import REFCLOCKS_RESTART, ConfigChanges, config_changes
from appliance.daemon import Appliance, ServeSettings
from appliance.io import fastpath
from appliance.ntp.exchange import client_request
from appliance.ntp.keys import Key, parse_keys

LOCAL = "server 127.127.1.0\nfudge 127.127.1.0 stratum 10\n"
PLANES = ["compiled", "python"] if fastpath.available() else ["python"]


@pytest.fixture
def client() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    yield s
    s.close()


def start(text: str, plane: str = "python", **settings: object) -> Appliance:
    config = parse_config(text, "ntp.conf")
    app = Appliance(
        config,
        ServeSettings(listen=("127.0.0.1",), port=0, fastpath=plane == "compiled", **settings),  # type: ignore[arg-type]
    )
    assert [s.data_plane for s in app.sockets] == [plane]
    return app


def ask(app: Appliance, client: socket.socket, key: Key | None = None) -> bytes | None:
    """Send one client request (signed with ``key``, if given), let the appliance take it in, return the reply
    (None: no reply). A signed request is longer than 48 octets: both planes hand it to the Python path.

    The compiled wait hands its counts to Python at the loop's next timer (or 1 s after it first answered), so
    a timer every 10 ms pumps the loop meanwhile. Any reply was sent before the loop came back: when the server
    counts one, it is waited for (it is on loopback already); when it counts none, nothing may arrive in 50 ms.
    """
    counters = app.server.counters
    before, replies_before = counters.received, counters.served + counters.kod_sent
    data, _ = client_request(time.time_ns())
    client.sendto(data if key is None else data + key.mac(data), app.addresses[0])
    pump = app.loop.call_every(0.01, lambda: None)
    try:
        app.loop.run(until=lambda: app.server.counters.received > before)
    finally:
        pump.cancel()
    client.settimeout(5.0 if counters.served + counters.kod_sent > replies_before else 0.05)
    try:
        return client.recv(1024)
    except TimeoutError:
        return None


# -- what changed: pure -------------------------------------------------------------------------


def test_moving_lines_and_comments_change_nothing() -> None:
    old = parse_config(LOCAL + "restrict default noquery\nrestrict 127.0.0.1\n", "a.conf")
    new = parse_config("# moved\nrestrict 127.0.0.1\n\nrestrict default noquery\n" + LOCAL, "b.conf")
    assert config_changes(old, new) == ConfigChanges(restricts=True)  # restrict order is kept as written
    same = parse_config("\n\n" + LOCAL + "restrict default noquery\nrestrict 127.0.0.1\n", "b.conf")
    assert config_changes(old, same) == ConfigChanges()


def test_each_part_is_sorted_into_applied_or_restart() -> None:
    old = parse_config(LOCAL + "server 127.0.0.2\n", "a.conf")
    new = parse_config(
        "server 127.127.1.0\nfudge 127.127.1.0 stratum 12\nserver 127.0.0.3\ndiscard minimum 1\n"
        "holdover 0.002\nlocalclock public serve\ninterface listen 127.0.0.1\ndriftfile /var/lib/x\n"
        "refclock nmea path /dev/null time2 0.3\n",
        "a.conf",
    )
    changes = config_changes(old, new)
    assert changes.applied == ("rate limits (discard)", "servers", "local clock", "holdover")
    assert changes.restart == ("interface listen lines", REFCLOCKS_RESTART, "driftfile")
    assert "daemon-reload" in REFCLOCKS_RESTART


# -- applied to a running appliance -----------------------------------------------------------------


@pytest.mark.parametrize("plane", PLANES)
def test_a_restrict_line_that_now_refuses_is_obeyed(plane: str, client: socket.socket) -> None:
    app = start(LOCAL + "restrict default noquery\nrestrict 127.0.0.1\n", plane)
    try:
        reply = ask(app, client)
        assert reply is not None and reply[1] == 10
        report = app.reload(parse_config(LOCAL + "restrict default noquery\nrestrict 127.0.0.1 ignore\n", "n.conf"))
        assert (report.applied, report.restart) == (("restrict lines",), ())
        assert ask(app, client) is None
        assert app.server.counters.dropped == {"ignore": 1}
        app.reload(parse_config(LOCAL + "restrict 127.0.0.1\n", "n.conf"))
        assert ask(app, client) is not None
    finally:
        app.close()


@pytest.mark.parametrize("plane", PLANES)
def test_new_rate_limits_take_effect(plane: str, client: socket.socket) -> None:
    """One request per 2 s at most, no burst: the second is refused; a reload to burst 8 lets it through."""
    strict = LOCAL + "restrict 127.0.0.1 limited\ndiscard average 4 minimum 2 burst 1\n"
    app = start(strict, plane)
    try:
        assert ask(app, client) is not None
        assert ask(app, client) is None
        assert app.server.counters.dropped == {"rate": 1}
        old = app.server.limiter
        report = app.reload(parse_config(LOCAL + "restrict 127.0.0.1 limited\ndiscard burst 8\n", "n.conf"))
        assert report.applied == ("rate limits (discard)",) and app.server.limiter is not old
        assert ask(app, client) is not None and ask(app, client) is not None
    finally:
        app.close()


@pytest.mark.parametrize("plane", PLANES)
def test_local_clock_stratum_and_localclock_public(plane: str, client: socket.socket) -> None:
    app = start(LOCAL + "restrict 127.0.0.1\n", plane)
    try:
        assert ask(app, client)[1] == 10  # type: ignore[index]
        report = app.reload(parse_config("server 127.127.1.0\nfudge 127.127.1.0 stratum 12\nrestrict 127.0.0.1\n", "n"))
        assert report.applied == ("local clock",)
        assert ask(app, client)[1] == 12  # type: ignore[index]
        # only a default entry matches 127.0.0.1 now: with 'localclock public unsync' (the default) it is told
        # "unsynchronised"; 'localclock public serve' serves it the local clock
        app.reload(parse_config(LOCAL + "restrict default\n", "n"))
        assert ask(app, client)[0] >> 6 == 3  # type: ignore[index]
        report = app.reload(parse_config(LOCAL + "restrict default\nlocalclock public serve\n", "n"))
        assert report.applied == ("local clock",)
        reply = ask(app, client)
        assert reply is not None and reply[0] >> 6 == 0 and reply[1] == 10
    finally:
        app.close()


def test_what_needs_a_restart_is_reported_and_left(client: socket.socket) -> None:
    app = start(LOCAL + "restrict 127.0.0.1\n")
    try:
        report = app.reload(parse_config(LOCAL + "restrict 127.0.0.1\ndriftfile /var/lib/x\nserver 127.0.0.2\n", "n"))
        assert report.applied == ()
        assert report.restart == ("driftfile", "servers (the appliance started with no clock to steer)")
        assert report.summary() == (
            "needs a restart: driftfile, servers (the appliance started with no clock to steer)"
        )
        assert app.timekeeper is None and ask(app, client) is not None
    finally:
        app.close()


def test_upstream_servers_are_added_and_removed(client: socket.socket) -> None:
    """Loopback addresses with nothing listening: the packets stay on this machine and get no answer."""
    app = start("server 127.0.0.2 port 9\nserver 127.0.0.3 port 9\n", clock="soft")
    try:
        tk = app.timekeeper
        assert tk is not None and tk.upstreams is not None
        kept = next(a for a in tk.upstreams.associations if a.address == "127.0.0.2")
        report = app.reload(parse_config("server 127.0.0.4 port 9\n# moved\nserver 127.0.0.2 port 9\n", "n.conf"))
        assert report.applied == ("servers",)
        assert sorted(a.address for a in tk.upstreams.associations) == ["127.0.0.2", "127.0.0.4"]
        assert next(a for a in tk.upstreams.associations if a.address == "127.0.0.2") is kept  # reach and filter kept
        assert {e.name for e in tk.estimates(tk.clock.now_ns())} == {"127.0.0.2:9", "127.0.0.4:9"}
        app.reload(parse_config("restrict default\n", "n.conf"))
        assert tk.upstreams.associations == [] and app.ntp_client.in_flight == 0
    finally:
        app.close()


# -- SIGHUP's reader: a broken file keeps the running configuration -----------------------------------


def test_a_broken_config_is_logged_and_the_old_one_kept(
    tmp_path: Path, client: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ntp.conf"
    app = start(LOCAL + "restrict 127.0.0.1\n")
    try:
        path.write_text(LOCAL + "restrict 127.0.0.1 ignore\nfudge 127.127.1.0 stratum 0\n")
        caplog.clear()
        with caplog.at_level(logging.INFO, "stratum1"):
            assert reload_config(app, str(path)) is False
        assert [r.getMessage() for r in caplog.records] == [
            f"SIGHUP: {path}:4: stratum 0 is out of range (1..15): 0 marks a Kiss-o'-Death and 16 unsynchronised, "
            "so clients would discard every reply; still serving with the configuration read before"
        ]
        assert ask(app, client) is not None  # the ignore line was not applied either
        path.write_text("includefile /dev/zero\n")
        caplog.clear()
        assert reload_config(app, str(path)) is False
        assert "cannot read include file '/dev/zero': not a regular file" in caplog.records[0].getMessage()
        path.write_text(LOCAL + "restrict 127.0.0.1 ignore\n")
        caplog.clear()
        with caplog.at_level(logging.INFO, "stratum1"):
            assert reload_config(app, str(path)) is True
        assert caplog.records[-1].getMessage() == f"SIGHUP: {path} reloaded: applied: restrict lines"
        assert ask(app, client) is None
    finally:
        app.close()


def test_the_built_in_config_has_no_file_to_read_again(caplog: pytest.LogCaptureFixture) -> None:
    from appliance.cli import BUILT_IN, _config_file, _load_serving_config

    app = start(LOCAL)
    try:
        caplog.clear()
        assert reload_config(app, None) is False
        assert [r.getMessage() for r in caplog.records] == [
            "SIGHUP: serving the built-in configuration, there is no file to read again"
        ]
    finally:
        app.close()
    assert _config_file(parse_config(LOCAL, BUILT_IN)) is None
    assert _config_file(parse_config(LOCAL, "/etc/x.conf")) == "/etc/x.conf"
    if not Path("/etc/stratum1/ntp.conf").exists():
        assert _config_file(_load_serving_config(None)) is None


# -- the key file is read again on every SIGHUP ----------------------------------------------------------


@pytest.mark.parametrize("plane", PLANES)
def test_a_changed_key_file_is_applied_and_the_old_secret_refused(
    plane: str, tmp_path: Path, client: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    old, new = "1 SHA1 8a6bd2fe0b8b1b7bb4b7d2f2f9a6b0e1c6c9b1a2\n", "1 SHA1 00112233445566778899aabbccddeeff00112233\n"
    keys, path = tmp_path / "ntp.keys", tmp_path / "ntp.conf"
    keys.write_text(old)
    path.write_text(LOCAL + "restrict 127.0.0.1\nkeys ntp.keys\ntrustedkey 1\n")
    app = Appliance(load_config(path), ServeSettings(listen=("127.0.0.1",), port=0, fastpath=plane == "compiled"))
    try:
        key_a, key_b = parse_keys(old, "a")[1], parse_keys(new, "b")[1]
        reply = ask(app, client, key_a)
        assert reply is not None and reply[48:] == key_a.mac(reply[:48])
        assert reload_config(app, str(path)) is True  # nothing changed: nothing applied
        keys.write_text(new)
        caplog.clear()
        with caplog.at_level(logging.INFO, "stratum1"):
            assert reload_config(app, str(path)) is True
        assert caplog.records[-1].getMessage() == f"SIGHUP: {path} reloaded: applied: keys"
        assert ask(app, client, key_a)[48:] == b"\0\0\0\0"  # type: ignore[index]
        reply = ask(app, client, key_b)
        assert reply is not None and reply[48:] == key_b.mac(reply[:48])
        keys.write_text("1 SHA1 xyz-not-hex-and-longer-than-twenty\n")  # a broken key file: the old keys stay
        caplog.clear()
        assert reload_config(app, str(path)) is False
        assert f"SIGHUP: {keys}:1: key 1: longer than 20 characters" in caplog.records[0].getMessage()
        reply = ask(app, client, key_b)
        assert reply is not None and reply[48:] == key_b.mac(reply[:48])
    finally:
        app.close()
