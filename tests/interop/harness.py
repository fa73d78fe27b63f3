"""Running the appliance for interop tests: on loopback, or inside a private network namespace."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import nsutil

from appliance.config import Config, parse_config
from appliance.daemon import Appliance, ServeSettings

# The referee programs, unpacked privately by .ci/install-interop (never installed on the host): one wrapper
# per program in bin/ sets the library and Python paths the private copy needs.
INTEROP_ROOT = Path(os.environ.get("STRATUM1_INTEROP_ROOT", "/opt/stratum1-interop"))
INTEROP_BIN = INTEROP_ROOT / "bin"
CHRONYD = INTEROP_BIN / "chronyd"
LOCAL_CLOCK_CONF = """
restrict default kod limited nomodify notrap nopeer noquery
restrict 127.0.0.1
restrict ::1
server 127.127.1.0
fudge 127.127.1.0 stratum 10
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(
    config_text: str,
    listen: tuple[str, ...] = ("127.0.0.1",),
    port: int | None = None,
    ns: nsutil.NetNs | None = None,
    name: str = "test.conf",
    config: Config | None = None,
) -> Iterator[Appliance]:
    """Run an appliance with ``config_text`` (or ``config``, read from files) on a thread; inside ``ns`` when given."""
    config = config if config is not None else parse_config(config_text, name)
    settings = ServeSettings(listen=listen, port=port if port is not None else free_port())
    build: Callable[[], Appliance] = lambda: Appliance(config, settings)  # noqa: E731
    app = ns.call(build) if ns is not None else build()
    app.start_thread()
    try:
        yield app
    finally:
        app.stop()
        app.close()


def chronyd_query(
    chronyd: Path, workdir: Path, port: int, options: str = "iburst", seconds: int = 20
) -> tuple[str, list[list[str]]]:
    """One ``chronyd -Q -x`` run against 127.0.0.1:``port`` with these ``server`` line options (it measures,
    never sets the clock): what it printed, and the rows of its measurements log, split into columns."""
    workdir.mkdir(exist_ok=True)
    conf = workdir / "chrony.conf"
    # Every test chronyd: no command port and no Unix socket ("bindcmdaddress /"), else it would take over
    # /run/chrony/chronyd.sock and chown /run/chrony, which belong to the host's own chrony.
    conf.write_text(
        f"server 127.0.0.1 port {port} {options}\ncmdport 0\nbindcmdaddress /\npidfile {workdir}/chronyd.pid\n"
        f"logdir {workdir}\nlog measurements\n"
    )
    out = subprocess.run(
        [str(chronyd), "-Q", "-x", "-f", str(conf), "-u", "root", "-d", "-t", str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 20,
    )
    log = workdir / "measurements.log"
    rows = [ln.split() for ln in log.read_text().splitlines() if ln[:1].isdigit()] if log.exists() else []
    return out.stdout + out.stderr, rows


def chronyd_measure(chronyd: Path, workdir: Path, port: int) -> tuple[float, list[tuple[str, int, bytes]]]:
    """One ``chronyd -Q -x`` run against 127.0.0.1:``port`` (:func:`chronyd_query`).

    Returns the offset it reports ("System clock wrong by S seconds") and, from
    its measurements log, (leap code, stratum, refid) of every reply it took.
    """
    printed, rows = chronyd_query(chronyd, workdir, port)
    m = re.search(r"System clock wrong by (-?[0-9.]+) seconds", printed)
    assert m, printed
    assert rows, printed
    # date time ip leap stratum ... and the refid as 8 hex digits
    seen = [(r[3], int(r[4]), bytes.fromhex(next(f for f in r if re.fullmatch(r"[0-9A-F]{8}", f)))) for r in rows]
    return float(m.group(1)), seen
