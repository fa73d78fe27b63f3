"""Running the appliance for interop tests: on loopback, or inside a private network namespace."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import nsutil

from appliance.config import parse_config
from appliance.daemon import Appliance, ServeSettings

INTEROP_ROOT = Path(os.environ.get("STRATUM1_INTEROP_ROOT", "/opt/stratum1-interop"))
CHRONYD = INTEROP_ROOT / "chrony/usr/sbin/chronyd"
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
) -> Iterator[Appliance]:
    """Run an appliance with ``config_text`` on a thread; inside ``ns`` when given."""
    config = parse_config(config_text, name)
    settings = ServeSettings(listen=listen, port=port if port is not None else free_port())
    build: Callable[[], Appliance] = lambda: Appliance(config, settings)  # noqa: E731
    app = ns.call(build) if ns is not None else build()
    app.start_thread()
    try:
        yield app
    finally:
        app.stop()
        app.close()
