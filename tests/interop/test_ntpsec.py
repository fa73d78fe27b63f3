"""NTPsec's ntpdig and ntpdate take time from us on port 123, inside a private network namespace."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable

import nsutil
import pytest
from harness import LOCAL_CLOCK_CONF, serving

pytestmark = [pytest.mark.interop, pytest.mark.netns]


def test_ntpdig_accepts_our_replies(netns: Callable[[str], nsutil.NetNs], ntpsec_tools: dict[str, str]) -> None:
    ns = netns("dig")
    with serving(LOCAL_CLOCK_CONF, listen=("127.0.0.1",), port=123, ns=ns):
        out = subprocess.run(
            ns.cmd(ntpsec_tools["ntpdig"], "-j", "-t", "3", "127.0.0.1"), capture_output=True, text=True, timeout=30
        )
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["stratum"] == 10
    assert report["leap"] in ("no-leap", "no_leap", 0, "0")
    assert abs(float(report["offset"])) < 0.005


def test_ntpdate_query_prints_our_stratum(netns: Callable[[str], nsutil.NetNs], ntpsec_tools: dict[str, str]) -> None:
    ns = netns("date")
    with serving(LOCAL_CLOCK_CONF, listen=("127.0.0.1",), port=123, ns=ns):
        out = subprocess.run(
            ns.cmd(ntpsec_tools["ntpdate"], "-q", "127.0.0.1"), capture_output=True, text=True, timeout=30
        )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    # NTPsec's ntpdate is a shim over ntpdig: "DATE TIME (+0000) OFFSET +/- ERROR HOST sSTRATUM LEAP"
    m = re.search(r"\) ([+-][0-9.]+) \+/- ([0-9.]+) 127\.0\.0\.1 s(\d+) no-leap", text)
    assert m, text
    assert int(m.group(3)) == 10
    assert abs(float(m.group(1))) < 0.005


def test_ntpdig_over_ipv6(netns: Callable[[str], nsutil.NetNs], ntpsec_tools: dict[str, str]) -> None:
    ns = netns("dig6")
    with serving(LOCAL_CLOCK_CONF, listen=("::1",), port=123, ns=ns):
        out = subprocess.run(
            ns.cmd(ntpsec_tools["ntpdig"], "-j", "-t", "3", "::1"), capture_output=True, text=True, timeout=30
        )
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["stratum"] == 10
