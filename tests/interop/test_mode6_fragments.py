"""The real NTPsec ntpq reads a mode 6 answer that takes more than one fragment, and nothing is larger than needed.

An appliance in a private network namespace with 130 upstream servers and the local clock configured: its
association list (READSTAT, ``ntpq -c as``) takes 4 octets per association, 524 in all, more than one
fragment's 468. ntpq must reassemble the two fragments to list them all; a minimal request gets exactly the
two datagrams the list needs. The upstream addresses answer nothing (nothing listens there); nothing leaves
the namespace.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator

import nsutil
import pytest

from appliance.config import parse_config
from appliance.daemon import Appliance, ServeSettings
from appliance.ntp.mode6 import HEADER, MAX_DATA, OP_READSTAT

pytestmark = pytest.mark.netns

SERVERS = 130
CONF = (
    "restrict default kod limited nomodify notrap nopeer noquery\n"
    "restrict 127.0.0.1\n"
    + "".join(f"server 127.0.{1 + i // 200}.{1 + i % 200}\n" for i in range(SERVERS))
    + "server 127.127.1.0\nfudge 127.127.1.0 stratum 10\n"
)


@pytest.fixture(scope="module")
def many() -> Iterator[tuple[nsutil.NetNs, Appliance]]:
    if not nsutil.available():
        pytest.skip("network namespaces need root and iproute2")
    ns = nsutil.NetNs("st-frag")
    app: Appliance | None = None
    try:
        config = parse_config(CONF, "many.conf")
        settings = ServeSettings(listen=("127.0.0.1",), port=123)
        app = ns.call(lambda: Appliance(config, settings))
        app.start_thread()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if app.snapshot is not None and len(app.snapshot.sources) == SERVERS + 1:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the appliance never listed {SERVERS + 1} sources: {app.snapshot}")
        yield ns, app
    finally:
        if app is not None:
            app.stop()
            app.close()
        ns.delete()


def test_ntpq_associations_reassembles_a_two_fragment_list(
    many: tuple[nsutil.NetNs, Appliance], ntpsec_tools: dict[str, str]
) -> None:
    ns, app = many
    out = subprocess.run(
        ns.cmd(ntpsec_tools["ntpq"], "-n", "-c", "as", "127.0.0.1"), capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if re.match(r"^\s*\d+\s+\d+\s+[0-9a-f]{4}\s", line)]
    assert app.snapshot is not None
    assert [int(r[1]) for r in rows] == [s.assoc_id for s in app.snapshot.sources]
    assert len(rows) * 4 > MAX_DATA  # the list did not fit one fragment


def test_a_minimal_request_gets_the_fragments_the_list_needs_and_no_more(
    many: tuple[nsutil.NetNs, Appliance],
) -> None:
    ns, app = many
    request = HEADER.pack((2 << 3) | 6, OP_READSTAT, 9, 0, 0, 0, 0)
    sock = ns.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    replies = []
    with sock:
        sock.settimeout(1.0)
        sock.sendto(request, ("127.0.0.1", 123))
        try:
            while True:
                replies.append(sock.recv(2048))
        except TimeoutError:
            pass
    assert app.snapshot is not None
    pairs = 4 * len(app.snapshot.sources)
    assert [len(r) for r in replies] == [12 + MAX_DATA, 12 + pairs - MAX_DATA]
    assert sum(len(r) for r in replies) == 2 * len(request) + pairs  # two headers and the pairs: nothing more
