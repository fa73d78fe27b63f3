"""The local clock for the LAN only: real clients in a private namespace see stratum 10 or "unsynchronised".

The seed ``lan-server-local-fallback.conf`` (a LAN server whose last resort is
``server 127.127.1.0`` / ``fudge 127.127.1.0 stratum 10``) runs in a server
namespace on port 123. A client namespace, joined by a veth link, holds a LAN
address (192.168.0.77, inside the seed's ``restrict 192.168.0.0 mask
255.255.255.0``) and two public ones (198.51.100.7 and 2001:db8::7, which
only stratum1's implicit default matches). NTPsec's ntpdig and chronyd -Q
(which measures, never sets the clock) query from there; the kernel picks the
source address of the subnet it talks to. Nothing leaves the namespaces.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nsutil
import pytest
from harness import serving

from appliance.ntp.exchange import client_request
from appliance.ntp.packet import LEAP_UNSYNC, NtpPacket

pytestmark = [pytest.mark.interop, pytest.mark.netns]

SEED = "lan-server-local-fallback.conf"
SERVER_LAN, SERVER_PUBLIC, SERVER_PUBLIC6 = "192.168.0.1", "198.51.100.1", "2001:db8::1"
LAN, PUBLIC, PUBLIC6 = "192.168.0.77", "198.51.100.7", "2001:db8::7"


def adapted_seed(shared_data: Path, tmp_path: Path) -> str:
    """The seed config for the namespaces: its restrict and local clock lines as they are.

    Its LAN (192.168.0.0/24) is the client namespace's LAN already. Its
    upstream ``server`` lines are dropped (no DNS or Internet in a private
    namespace, and the test is about the fallback), and the drift file goes
    to the test's temporary directory.
    """
    lines = []
    for line in (shared_data / "seed-configs" / SEED).read_text().splitlines():
        words = line.split()
        if words[:1] == ["server"] and not words[1].startswith("127.127."):
            continue
        if words[:1] == ["driftfile"]:
            line = f"driftfile {tmp_path / 'drift'}"
        lines.append(line)
    text = "\n".join(lines) + "\n"
    assert "restrict 192.168.0.0 mask 255.255.255.0" in text and "fudge 127.127.1.0 stratum 10" in text
    return text


@pytest.fixture
def lab(netns: Callable[[str], nsutil.NetNs]) -> Iterator[tuple[nsutil.NetNs, nsutil.NetNs]]:
    srv, cli = netns("lfsrv"), netns("lfcli")
    nsutil.link(
        srv,
        cli,
        [f"{SERVER_LAN}/24", f"{SERVER_PUBLIC}/24", f"{SERVER_PUBLIC6}/64"],
        [f"{LAN}/24", f"{PUBLIC}/24", f"{PUBLIC6}/64"],
    )
    yield srv, cli


def ntpdig(cli: nsutil.NetNs, tool: str, server: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli.cmd(tool, "-j", "-t", "3", server), capture_output=True, text=True, timeout=30)


def raw_reply(cli: nsutil.NetNs, source: str, server: str) -> NtpPacket:
    """One client request from ``source`` (in the client namespace); the decoded reply."""
    family = socket.AF_INET6 if ":" in source else socket.AF_INET
    sock = cli.call(lambda: socket.socket(family, socket.SOCK_DGRAM))
    with sock:
        sock.bind((source, 0))
        sock.settimeout(3.0)
        sock.sendto(client_request(time.time_ns())[0], (server, 123))
        return NtpPacket.decode(sock.recv(2048))


def test_lan_gets_stratum_10_and_the_public_unsynchronised(
    lab: tuple[nsutil.NetNs, nsutil.NetNs],
    ntpsec_tools: dict[str, str],
    shared_data: Path,
    tmp_path: Path,
) -> None:
    srv, cli = lab
    dig = ntpsec_tools["ntpdig"]
    with serving(adapted_seed(shared_data, tmp_path), listen=("0.0.0.0", "::"), port=123, ns=srv, name=SEED) as app:
        lan = ntpdig(cli, dig, SERVER_LAN)
        public = ntpdig(cli, dig, SERVER_PUBLIC)
        public6 = ntpdig(cli, dig, SERVER_PUBLIC6)
        wire = {src: raw_reply(cli, src, dst) for src, dst in ((LAN, SERVER_LAN), (PUBLIC, SERVER_PUBLIC))}
        wire[PUBLIC6] = raw_reply(cli, PUBLIC6, SERVER_PUBLIC6)
    # read once the appliance stopped: the compiled data plane hands its counts to Python when it
    # returns to the loop (a timer, a stop, at most 1 s after a reply), not after every reply
    served = app.server.counters.served

    # the LAN client takes the local clock at stratum 10
    assert lan.returncode == 0, lan.stdout + lan.stderr
    report = json.loads(lan.stdout.strip().splitlines()[-1])
    assert (report["stratum"], report["leap"]) == (10, "no-leap")
    # the public is answered (not dropped), but ntpdig refuses what it is told
    for out in (public, public6):
        assert out.returncode != 0, out.stdout
        assert "stratum too high" in out.stderr and "no eligible servers" in out.stderr, out.stderr
    # what the wire said to each
    assert (wire[LAN].leap, wire[LAN].stratum, wire[LAN].refid) == (0, 10, b"LOCL")
    for src in (PUBLIC, PUBLIC6):
        assert (wire[src].leap, wire[src].stratum, wire[src].refid) == (LEAP_UNSYNC, 16, b"INIT"), src
    assert served >= 6  # every request got a reply: three ntpdig, three raw


def test_chronyd_on_the_lan_takes_stratum_10(
    lab: tuple[nsutil.NetNs, nsutil.NetNs], chronyd: Path, shared_data: Path, tmp_path: Path
) -> None:
    srv, cli = lab
    logdir = tmp_path / "chrony"
    logdir.mkdir()
    conf = logdir / "chrony.conf"
    conf.write_text(
        f"server {SERVER_LAN} iburst\ncmdport 0\nbindcmdaddress /\npidfile {logdir}/chronyd.pid\n"
        f"logdir {logdir}\nlog measurements\n"
    )
    with serving(adapted_seed(shared_data, tmp_path), listen=("0.0.0.0",), port=123, ns=srv, name=SEED):
        out = subprocess.run(
            cli.cmd(str(chronyd), "-Q", "-x", "-f", str(conf), "-u", "root", "-d", "-t", "20"),
            capture_output=True,
            text=True,
            timeout=40,
        )
    assert re.search(r"System clock wrong by -?[0-9.]+ seconds", out.stdout + out.stderr), out.stdout + out.stderr
    rows = [ln.split() for ln in (logdir / "measurements.log").read_text().splitlines() if ln[:1].isdigit()]
    assert rows
    for row in rows:  # date time ip leap stratum ... refid
        assert (row[2], row[3], row[4]) == (SERVER_LAN, "N", "10")
        assert "4C4F434C" in row  # LOCL


def test_localclock_public_serve_gives_the_public_stratum_10(
    lab: tuple[nsutil.NetNs, nsutil.NetNs], ntpsec_tools: dict[str, str], shared_data: Path, tmp_path: Path
) -> None:
    srv, cli = lab
    text = adapted_seed(shared_data, tmp_path) + "localclock public serve\n"
    with serving(text, listen=("0.0.0.0", "::"), port=123, ns=srv, name=SEED):
        public = ntpdig(cli, ntpsec_tools["ntpdig"], SERVER_PUBLIC)
        public6 = ntpdig(cli, ntpsec_tools["ntpdig"], SERVER_PUBLIC6)
    for out in (public, public6):
        assert out.returncode == 0, out.stdout + out.stderr
        report = json.loads(out.stdout.strip().splitlines()[-1])
        assert (report["stratum"], report["leap"]) == (10, "no-leap")
