"""The display's pages in a terminal (``stratum1 lcd --terminal``): no display wired yet, or over SSH.

:class:`TerminalDisplay` is a :class:`~appliance.io.lcd.TextDisplay` that writes the lines the real
display would get, in a frame of the display's size. On a terminal the frame is redrawn in place (the
cursor goes back up over it); into a pipe or a file each new frame is printed below the last, only
when it changed. A reader that goes away (``stratum1 lcd --terminal | head``) is not a display that
stopped answering: :meth:`TerminalDisplay.show` raises :class:`ReaderGone`, which is no ``OSError``, so the
panel does not retry it, and ``stratum1 lcd`` ends with :data:`EXIT_READER_GONE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from appliance.lcd.pages import Layout

#: The exit status when the reader went away (128 + SIGPIPE, as ``stratum1 status --watch | head``).
EXIT_READER_GONE = 141


class ReaderGone(Exception):
    """The terminal's reader closed its end (a pipe into ``head``): nobody is left to draw for."""


class TerminalDisplay:
    def __init__(self, layout: Layout, out: TextIO, *, in_place: bool | None = None) -> None:
        self.columns = layout.columns
        self.rows = layout.rows
        self._out = out
        self._in_place = out.isatty() if in_place is None else in_place
        self._last: tuple[str, ...] | None = None

    def init(self) -> None:
        """Nothing to initialise: a terminal does not lose its contents as a display losing power does."""

    def frame(self, lines: Sequence[str]) -> list[str]:
        """``lines`` as the display shows them (each cut or padded to its width), in a border."""
        edge = "+" + "-" * self.columns + "+"
        body = [f"|{line[: self.columns].ljust(self.columns)}|" for line in list(lines)[: self.rows]]
        body += ["|" + " " * self.columns + "|"] * (self.rows - len(body))
        return [edge, *body, edge]

    def show(self, lines: Sequence[str]) -> None:
        shown = tuple(lines)
        if shown == self._last:
            return
        frame = self.frame(shown)
        try:
            if self._in_place and self._last is not None:
                self._out.write(f"\x1b[{len(frame)}F")  # back up to the frame's first line, then over it
            self._out.write("\n".join(frame) + "\n")
            self._out.flush()
        except BrokenPipeError as e:
            raise ReaderGone(str(e)) from e
        self._last = shown
