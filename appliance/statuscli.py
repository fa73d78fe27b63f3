"""``stratum1 status`` and ``stratum1 peers``: the daemon's status socket, read by an unprivileged user.

Both read one snapshot from the status socket (:mod:`appliance.io.statussock`; a member of the ``stratum1``
group may read it over SSH) and render it (:mod:`appliance.status.text`). ``--json`` prints the snapshot as
the socket gave it; ``--watch [S]`` refreshes in place every S seconds (default 1) until interrupted;
``status --line`` prints the one-line health the login message shows (``/etc/update-motd.d/60-stratum1``).

Exit status (as ntpstat's): 0 synchronised, 1 not synchronised, 2 the daemon did not answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TextIO

from appliance.io.statusclient import DEFAULT_PATH, read_status
from appliance.status.snapshot import Snapshot
from appliance.status.text import health_line, peers_text, rates, status_text

#: Clear the screen and go home (ANSI), for --watch.
_HOME = "\x1b[H\x1b[J"


def add_arguments(p: argparse.ArgumentParser, *, line: bool) -> None:
    p.add_argument("--socket", default=DEFAULT_PATH, help=f"the daemon's status socket (default {DEFAULT_PATH})")
    p.add_argument("--json", action="store_true", help="print the status snapshot as JSON")
    p.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=1.0,
        metavar="SECONDS",
        help="refresh in place every SECONDS (default 1) until Ctrl-C",
    )
    if line:
        p.add_argument("--line", action="store_true", help="one line of health (the login message's)")


def main(argv: list[str]) -> int:
    """``stratum1 status|peers ...`` on their own (:mod:`appliance.command` calls this)."""
    p = argparse.ArgumentParser(prog="stratum1")
    sub = p.add_subparsers(dest="command", required=True)
    add_arguments(sub.add_parser("status", help="is the time good?"), line=True)
    add_arguments(sub.add_parser("peers", help="the sources, as ntpq -p shows them"), line=False)
    return run(p.parse_args(argv))


def _read(path: str) -> Snapshot:
    try:
        return Snapshot.from_json(read_status(path))
    except FileNotFoundError as e:
        raise OSError(f"{path}: no status socket (is 'stratum1 serve' running?)") from e
    except PermissionError as e:
        raise OSError(f"{path}: permission denied (join the 'stratum1' group: sudo adduser $USER stratum1)") from e


def _render(args: argparse.Namespace, snap: Snapshot, old: Snapshot | None) -> str:
    if args.json:
        return json.dumps(snap.to_dict(), indent=1, sort_keys=True) + "\n"
    if args.command == "peers":
        return peers_text(snap)
    if getattr(args, "line", False):
        return health_line(snap) + "\n"
    return status_text(snap, rates(old, snap))


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """``status`` or ``peers`` (``args.command``); see the module docstring."""
    old: Snapshot | None = None
    try:
        while True:
            try:
                snap = _read(args.socket)
            except (OSError, ValueError) as e:
                print(f"stratum1 {args.command}: {e}", file=sys.stderr)
                return 2
            text = _render(args, snap, old)
            out.write(_HOME + text if args.watch else text)
            out.flush()
            if not args.watch:
                return 0 if snap.system.leap != 3 else 1
            old = snap
            time.sleep(max(0.1, args.watch))
    except KeyboardInterrupt:
        return 0
