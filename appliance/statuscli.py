"""``stratum1 status`` and ``stratum1 peers``: the daemon's status socket, read by an unprivileged user.

Both read one snapshot from the status socket (:mod:`appliance.io.statussock`; a member of the ``stratum1``
group may read it over SSH) and render it (:mod:`appliance.status.text`). ``--json`` prints the snapshot as
the socket gave it; ``--watch [S]`` refreshes in place every S seconds (default 1) until interrupted;
``status --line`` prints the one-line health the login message shows (``/etc/update-motd.d/60-stratum1``).

Exit status (as ntpstat's): 0 synchronised, 1 not synchronised, 2 the daemon did not answer; 141 when the reader
went away (``--watch | head``), without a traceback.

Start-up is most of what a user waits for on a busy appliance (``bench/status_under_flood.py``), so the
plain ``status``, ``status --line`` and ``peers`` take a short way: they print the text the daemon rendered
into the socket's line (:mod:`appliance.status.payload`) and import ``json`` and the socket client alone
(no argparse, no dataclasses, not the snapshot's classes). Anything else (``--json``, ``--watch``,
``--help``, a mistake, a daemon that sent no text, an error) takes the long way: argparse, the snapshot
read back and rendered here (the same texts; a test holds the two ways to the same output).
"""

from __future__ import annotations

import json
import os
import sys

from appliance.io.statusclient import DEFAULT_PATH, explain, read_status

TYPE_CHECKING = False
if TYPE_CHECKING:  # the short way imports none of these at run time
    import argparse
    from typing import TextIO

    from appliance.status.snapshot import Snapshot

#: The exit status when the reader went away (128 + SIGPIPE, what a shell shows for ``yes | head``).
EXIT_BROKEN_PIPE = 141
#: --watch's bounds, seconds.
WATCH_MIN_S = 0.1
WATCH_MAX_S = 3600.0
#: Clear the screen and go home (ANSI), for --watch.
_HOME = "\x1b[H\x1b[J"
#: The key of the rendered texts in the status socket's line (appliance.status.payload.TEXT_KEY).
_TEXT_KEY = "text"


def watch_seconds(text: str) -> float:
    """``--watch``'s seconds (argparse type): a number from WATCH_MIN_S to WATCH_MAX_S (not 0, inf or nan)."""
    from appliance.usage import number_in

    return number_in(text, WATCH_MIN_S, WATCH_MAX_S, "a number of seconds")


def add_arguments(p: argparse.ArgumentParser, *, line: bool) -> None:
    p.add_argument("--socket", default=DEFAULT_PATH, help=f"the daemon's status socket (default {DEFAULT_PATH})")
    p.add_argument("--json", action="store_true", help="print the status snapshot as JSON")
    p.add_argument(
        "--watch",
        nargs="?",
        type=watch_seconds,
        const=1.0,
        metavar="SECONDS",
        help=f"refresh in place every SECONDS ({WATCH_MIN_S:g} to {WATCH_MAX_S:g}; default 1) until Ctrl-C",
    )
    if line:
        p.add_argument("--line", action="store_true", help="one line of health (the login message's)")


def parser() -> argparse.ArgumentParser:
    """The whole command line, as ``stratum1 status|peers`` alone parses it (imports argparse)."""
    from appliance.usage import OneLineParser

    p = OneLineParser(prog="stratum1")
    sub = p.add_subparsers(dest="command", required=True)
    add_arguments(sub.add_parser("status", help="is the time good?"), line=True)
    add_arguments(sub.add_parser("peers", help="the sources, as ntpq -p shows them"), line=False)
    return p


def short_arguments(argv: list[str]) -> dict[str, object] | None:
    """What :func:`parser` makes of ``argv`` (as ``vars()`` of its namespace) when the short way can print it.

    That is ``status`` or ``peers`` with ``--socket PATH`` / ``--socket=PATH`` and, for ``status``, ``--line``,
    spelt in full; None for anything else.
    """
    if not argv or argv[0] not in ("status", "peers"):
        return None
    args: dict[str, object] = {"command": argv[0], "socket": DEFAULT_PATH, "json": False, "watch": None}
    if argv[0] == "status":
        args["line"] = False
    rest = argv[1:]
    i = 0
    while i < len(rest):
        word = rest[i]
        if word.startswith("--socket=") and len(word) > len("--socket="):
            args["socket"] = word[len("--socket=") :]
        elif word == "--socket" and i + 1 < len(rest) and rest[i + 1] and not rest[i + 1].startswith("-"):
            args["socket"] = rest[i + 1]
            i += 1
        elif word == "--line" and "line" in args:
            args["line"] = True
        else:
            return None
        i += 1
    return args


def _short(args: dict[str, object]) -> int | None:
    """Print the daemon's rendering; None when the long way must answer (no text, or any error to explain)."""
    try:
        d = json.loads(read_status(str(args["socket"])))
        text = d[_TEXT_KEY]["line" if args.get("line") else str(args["command"])]
        leap = d["system"]["leap"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(text, str):
        return None
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0 if leap != 3 else 1


def main(argv: list[str]) -> int:
    """``stratum1 status|peers ...`` on their own (:mod:`appliance.command` calls this).

    A reader that goes away (``stratum1 status --watch | head``) ends it quietly with 141, as a shell reports
    a command that SIGPIPE ended: no traceback.
    """
    try:
        short = short_arguments(argv)
        if short is not None:
            code = _short(short)
            if code is not None:
                return code
        from appliance.usage import parse_subcommand

        return run(parse_subcommand(parser(), argv))
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at /dev/null so that this flush cannot fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE


def _read(path: str) -> Snapshot:
    from appliance.status.snapshot import Snapshot

    try:
        raw = read_status(path)
    except OSError as e:
        raise OSError(explain(path, e)) from e
    return Snapshot.from_json(raw)


def _render(args: argparse.Namespace, snap: Snapshot, old: Snapshot | None) -> str:
    from appliance.status.text import health_line, peers_text, rates, status_text

    if args.json:
        return json.dumps(snap.to_dict(), indent=1, sort_keys=True) + "\n"
    if args.command == "peers":
        return peers_text(snap)
    if getattr(args, "line", False):
        return health_line(snap) + "\n"
    return status_text(snap, rates(old, snap))


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``status`` or ``peers`` (``args.command``) the long way; see the module docstring."""
    import time

    out = sys.stdout if out is None else out
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
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0
