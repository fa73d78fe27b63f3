"""``stratum1 lcd --terminal``: the display's pages in a terminal, from the same panel and the same status."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

from status_sample import SNAP

from appliance.io.statussock import StatusServer
from appliance.lcd.pages import LCD_16X2, OLED_128X64, pages, render
from appliance.lcd.runner import Panel
from appliance.lcd.terminal import TerminalDisplay
from appliance.lcd.view import view_from_snapshot

S = 1_000_000_000


def framed(lines: tuple[str, ...]) -> list[str]:
    edge = "+" + "-" * len(lines[0]) + "+"
    return [edge, *(f"|{line}|" for line in lines), edge]


def test_into_a_pipe_each_new_page_is_printed_once() -> None:
    out = io.StringIO()
    screen = TerminalDisplay(LCD_16X2, out, in_place=False)
    panel = Panel(lambda: screen, LCD_16X2, page_s=5)
    view = view_from_snapshot(SNAP, ip_address="192.168.0.2", load=0.1)
    first = panel.update(0, view)
    panel.update(1 * S, view)  # the same page, the same lines: nothing printed
    second = panel.update(5 * S, view)
    assert first != second
    assert out.getvalue().splitlines() == framed(first) + framed(second)
    names = pages(view)
    assert (first, second) == (render(names[0], view, LCD_16X2), render(names[1], view, LCD_16X2))


def test_on_a_terminal_the_frame_is_redrawn_in_place() -> None:
    out = io.StringIO()
    screen = TerminalDisplay(OLED_128X64, out, in_place=True)
    screen.show(["a"])
    screen.show(["b"])
    rows = OLED_128X64.rows + 2  # the border above and below
    first, again = out.getvalue().split(f"\x1b[{rows}F")
    assert first.splitlines()[1] == "|a" + " " * (OLED_128X64.columns - 1) + "|"
    assert len(again.splitlines()) == rows and again.splitlines()[1].startswith("|b ")


def test_the_command_draws_the_daemons_pages_in_the_terminal(tmp_path: Path) -> None:
    path = str(tmp_path / "status.sock")
    server = StatusServer(path, group=None)
    server.publish(SNAP.to_json().encode() + b"\n")
    server.start()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "lcd", "--terminal", "--socket", path],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None
        shown = [proc.stdout.readline().rstrip("\n") for _ in range(LCD_16X2.rows + 2)]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        server.close()
    assert proc.returncode == 0, err
    view = view_from_snapshot(SNAP)
    assert shown == framed(render(pages(view)[0], view, LCD_16X2))
    assert f"reading the status socket {path}" in err


def test_a_reader_that_goes_away_ends_the_command(tmp_path: Path) -> None:
    """``stratum1 lcd --terminal | head``: a closed pipe is not an unplugged display to retry for ever."""
    path = str(tmp_path / "status.sock")
    server = StatusServer(path, group=None)
    server.publish(SNAP.to_json().encode() + b"\n")
    server.start()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "lcd", "--terminal", "--socket", path, "--page-seconds", "0.5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.readline()
        proc.stdout.close()  # as head does once it has its lines; the pages go on turning
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err = proc.stderr.read()
    finally:
        server.close()
    assert proc.returncode == 141, err
    assert "display not answering" not in err and "Traceback" not in err
