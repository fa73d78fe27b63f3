"""Symmetric keys with real peers: NTPsec's ntpdig and chronyd authenticate our replies, we authenticate chronyd.

The same two keys in ntpd's key file format (ours, ntpdig's) and chrony's (``HEX:``); chronyd runs with
``-x`` and its own config, pidfile and no command socket. Nothing leaves loopback or the test's namespace.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import nsutil
import pytest
from harness import LOCAL_CLOCK_CONF, free_port, serving

from appliance.config import load_config
from appliance.daemon import Appliance

pytestmark = pytest.mark.interop

SHA1 = "8a6bd2fe0b8b1b7bb4b7d2f2f9a6b0e1c6c9b1a2"
OTHER = "00112233445566778899aabbccddeeff00112233"
#: key 1 SHA1 (trusted), key 2 MD5 (trusted), key 9 SHA1 (in the file, not trusted)
NTP_KEYS = f"1 SHA1 {SHA1}\n2 MD5 md5-secret\n9 SHA1 {OTHER}\n"


def serving_with_keys(
    tmp_path: Path, extra: str = "", port: int | None = None, ns: nsutil.NetNs | None = None
) -> AbstractContextManager[Appliance]:
    """The appliance with keys 1 and 2 trusted (``NTP_KEYS`` beside its ntp.conf), plus ``extra`` lines."""
    (tmp_path / "ntp.keys").write_text(NTP_KEYS)
    conf = tmp_path / "ntp.conf"
    conf.write_text(f"{LOCAL_CLOCK_CONF}keys ntp.keys\ntrustedkey 1 2\n{extra}")
    return serving("", port=port, ns=ns, config=load_config(conf))


def ntpdig(ns: nsutil.NetNs, tool: str, keys: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ns.cmd(tool, "-j", "-t", "2", "-k", str(keys), *args, "127.0.0.1"), capture_output=True, text=True, timeout=30
    )


@pytest.mark.netns
def test_ntpdig_authenticates_our_replies_and_notrust_serves_only_it(
    netns: Callable[[str], nsutil.NetNs], ntpsec_tools: dict[str, str], tmp_path: Path
) -> None:
    ns = netns("keys")
    keys = tmp_path / "ntp.keys"
    with serving_with_keys(tmp_path, port=123, ns=ns) as app:
        for keyid in ("1", "2"):
            good = ntpdig(ns, ntpsec_tools["ntpdig"], keys, "-a", keyid)
            assert good.returncode == 0, good.stdout + good.stderr
            assert json.loads(good.stdout.strip().splitlines()[-1])["stratum"] == 10
        bad = ntpdig(ns, ntpsec_tools["ntpdig"], keys, "-a", "9")  # a key we hold but do not trust
        counters = app.server.counters
        assert (counters.authenticated, counters.crypto_nak) == (2, 1)
    assert bad.returncode != 0, bad.stdout  # ntpdig refuses the crypto-NAK: no time from it
    ns2 = netns("notrust")
    (tmp_path / "b").mkdir()
    with serving_with_keys(tmp_path / "b", "restrict 127.0.0.1 notrust\n", port=123, ns=ns2) as app:
        plain = subprocess.run(
            ns2.cmd(ntpsec_tools["ntpdig"], "-j", "-t", "2", "127.0.0.1"), capture_output=True, text=True, timeout=30
        )
        signed = ntpdig(ns2, ntpsec_tools["ntpdig"], keys, "-a", "1")
        dropped = dict(app.server.counters.dropped)
    assert plain.returncode != 0 and dropped.get("notrust") == 1, plain.stdout + plain.stderr
    assert signed.returncode == 0, signed.stdout + signed.stderr


def chrony_conf(workdir: Path, secret: str, lines: str) -> Path:
    """A chrony.conf of ``lines`` with key 1 (SHA1, ``secret``) in its key file, no command socket, its own pidfile."""
    (workdir / "chrony.keys").write_text(f"1 SHA1 HEX:{secret}\n")
    conf = workdir / "chrony.conf"
    conf.write_text(
        f"{lines}keyfile {workdir}/chrony.keys\ncmdport 0\nbindcmdaddress /\npidfile {workdir}/chronyd.pid\n"
    )
    return conf


def chronyd_measure(chronyd: Path, workdir: Path, port: int, secret: str, seconds: int) -> str:
    """``chronyd -Q -x`` against 127.0.0.1:``port`` with key 1 (``secret``); its log."""
    conf = chrony_conf(workdir, secret, f"server 127.0.0.1 port {port} iburst key 1\n")
    out = subprocess.run(
        [str(chronyd), "-Q", "-x", "-f", str(conf), "-u", "root", "-d", "-t", str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 20,
    )
    return out.stdout + out.stderr


def test_chronyd_authenticates_our_replies(chronyd: Path, tmp_path: Path) -> None:
    with serving_with_keys(tmp_path) as app:
        port = app.addresses[0][1]
        log = chronyd_measure(chronyd, tmp_path, port, SHA1, 20)
        wrong = chronyd_measure(chronyd, tmp_path, port, OTHER, 6)
        counters = app.server.counters
        authenticated, naks = counters.authenticated, counters.crypto_nak
    m = re.search(r"System clock wrong by (-?[0-9.]+) seconds", log)
    assert m, f"chronyd did not accept our signed replies:\n{log}"
    assert abs(float(m.group(1))) < 0.005
    assert "System clock wrong by" not in wrong, wrong  # its MAC is not key 1's: a crypto-NAK, no time
    assert authenticated >= 1 and naks >= 1


@pytest.mark.parametrize(("secret", "believed"), [(SHA1, True), (OTHER, False)], ids=["same key", "other key"])
def test_our_upstream_client_authenticates_chronyd(chronyd: Path, tmp_path: Path, secret: str, believed: bool) -> None:
    port = free_port()
    conf = chrony_conf(tmp_path, secret, f"port {port}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 8\n")
    proc = subprocess.Popen(
        [str(chronyd), "-x", "-f", str(conf), "-u", "root", "-d"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        with serving_with_keys(tmp_path, f"server 127.0.0.1 port {port} iburst minpoll 4 key 1\n") as app:
            assert app.timekeeper is not None and app.timekeeper.upstreams is not None
            (a,) = app.timekeeper.upstreams.associations
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and a.counters.samples + sum(a.counters.dropped.values()) < 2:
                if not believed and a.counters.requests >= 3 and not a.waiting:  # three asked, none answered
                    break
                time.sleep(0.2)
            samples, dropped, requests = a.counters.samples, dict(a.counters.dropped), a.counters.requests
    finally:
        proc.terminate()
        proc.wait(10)
    if believed:
        assert samples >= 1 and not dropped, dropped
    else:  # chronyd does not answer a MAC its key does not verify: nothing comes, nothing is believed
        assert requests >= 2 and samples == 0, (requests, samples)
        assert set(dropped) <= {"crypto-nak", "bad-mac", "unauthenticated"}, dropped
