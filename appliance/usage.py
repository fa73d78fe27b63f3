"""argparse with its errors in one line, for every ``stratum1`` command.

README: "Every option is checked before anything starts ... a bad one is one line and exit status 2".
argparse prints its usage first, and a subcommand's unknown option is reported by the top parser under the
top parser's name (``usage: stratum1 [-h] {status,peers} ...``); :class:`OneLineParser` prints
``stratum1 status: MESSAGE (see 'stratum1 status --help')`` instead.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import NoReturn

EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors in one line: ``PROG: MESSAGE (see 'PROG --help')``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def number_in(text: str, low: float, high: float, what: str) -> float:
    """An argparse type's check: ``text`` as a number from ``low`` to ``high`` (not nan or inf), else an
    ArgumentTypeError saying ``'TEXT' is not WHAT from LOW to HIGH``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what} from {_plain(low)} to {_plain(high)}")
    return value


def _plain(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def parse_subcommand(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, with an unknown word named under ``PROG COMMAND`` (its ``command``)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        prog = f"{parser.prog} {args.command}"
        parser.exit(EXIT_USAGE, f"{prog}: unrecognized arguments: {' '.join(extra)} (see '{prog} --help')\n")
    return args
