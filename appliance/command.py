"""The ``stratum1`` entry point: ``status`` and ``peers`` start without loading the daemon's modules.

``stratum1 status`` must answer fast on a busy appliance (it is what people type over SSH while something is
wrong): it imports :mod:`appliance.statuscli` alone, never :mod:`appliance.cli` and the config parser, the
board tools and the server that it pulls in. ``exporter`` (:mod:`appliance.exporter`), ``web``
(:mod:`appliance.web.server`) and ``plot`` (:mod:`appliance.plotcli`) likewise. Every
other command goes to :func:`appliance.cli.main`.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # collections.abc and typing cost a status run milliseconds it need not spend
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("status", "peers"):
        from appliance import statuscli

        return statuscli.main(args)
    if args and args[0] == "exporter":
        from appliance import exporter

        return exporter.main(args[1:])
    if args and args[0] == "web":
        from appliance.web import server

        return server.main(args[1:])
    if args and args[0] == "plot":
        from appliance import plotcli

        return plotcli.main(args[1:])
    from appliance.cli import main as full

    return full(argv)
