"""Every referee program runs from the private root that .ci/install-interop unpacks, never from the host.

The wrappers in ``$STRATUM1_INTEROP_ROOT/bin`` set the library path (shared
libraries the host lacks are unpacked beside the programs) and the Python path
(NTPsec's ``ntp`` module for ntpq/ntpdig, gpsd's ``gps`` module for gpsfake).
Each program is asked its version: a missing library or module fails here
first, with the program's own message.
"""

from __future__ import annotations

import subprocess

import pytest
from harness import INTEROP_ROOT

pytestmark = pytest.mark.interop

VERSION_ARGS = {
    "chronyd": (["--version"], "chronyd (chrony) version 4."),
    "chronyc": (["-v"], "chronyc (chrony) version 4."),
    "ntpq": (["--version"], "ntpq ntpsec-1."),
    "ntpdig": (["--version"], "ntpdig ntpsec-1."),
    "gpsd": (["-V"], "3."),
    "gpspipe": (["-V"], "3."),
    "ntpshmmon": (["-V"], "ntpshmmon: version 3."),
    "gpsfake": (["-h"], "usage: gpsfake"),
}


def _answer(path: str, args: list[str]) -> str:
    r = subprocess.run([path, *args], capture_output=True, text=True, timeout=60)
    return (r.stdout + r.stderr).strip()


def test_chrony_ntpsec_and_gpsd_tools_answer_from_the_private_root(
    chrony_tools: dict[str, str], ntpsec_tools: dict[str, str], gpsd_tools: dict[str, str]
) -> None:
    tools = {**chrony_tools, **ntpsec_tools, **gpsd_tools}
    assert all(path.startswith(str(INTEROP_ROOT / "bin") + "/") for path in tools.values()), tools
    for name, (args, expected) in VERSION_ARGS.items():
        out = _answer(tools[name], args)
        assert out and expected in out.splitlines()[0], f"{name}: {out}"
    # ntpdate is NTPsec's shell shim over ntpdig: -n prints the ntpdig command it would run, sends nothing
    assert _answer(tools["ntpdate"], ["-n", "-q", "127.0.0.1"]).startswith("ntpdig ")
