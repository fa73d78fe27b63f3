"""The display process (``stratum1 lcd``, ``python3 -m appliance.lcd``): pages on an I2C display, a button to turn them.

:class:`Panel` is the logic, with the time passed in: which page shows
(the alarm page first while an alarm is on; the next page every
``page_s`` seconds, or at once on a button press, which restarts the
count), and what happens when the bus fails. An I2C error or an unplugged
display is logged once, the display is dropped, and every ``retry_s``
seconds the panel probes and initialises it again; when that works it logs
that the display is back and shows the current page. A write-only bus
cannot tell that a display lost power for a moment and came back blank, so
the display is also initialised afresh every ``reinit_s`` seconds. Nothing here can block
or stop the NTP daemon: this is its own process, reading the appliance over
NTP on loopback.

:func:`run` is the I/O: the bus (smbus2), the button (gpiozero, on its own
thread: presses are handed over through :meth:`Panel.press`), every
``refresh`` seconds the daemon's status snapshot from its status socket
(:class:`StatusViewSource`: holdover, GPS fix and satellites show) or, when
the socket is not there or this user may not read it (the shipped unit runs
in groups i2c and gpio alone), the appliance's mode 6 variables on loopback
(:class:`Mode6ViewSource`: the same facts bar two alarms) or, when mode 6
does not answer either, an NTP query of the appliance (:class:`NtpViewSource`),
and the host's address and load (:mod:`appliance.lcd.view` says what each
way shows).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from appliance.io.i2c import I2cBus
from appliance.io.lcd import HD44780_ADDRESSES, SSD1306_ADDRESSES, Hd44780, Ssd1306, TextDisplay, probe
from appliance.io.statusclient import DEFAULT_PATH as STATUS_SOCKET
from appliance.io.statusclient import read_status
from appliance.lcd.pages import LCD_16X2, LCD_20X4, OLED_128X64, Layout, LcdView, pages, render
from appliance.lcd.terminal import EXIT_READER_GONE, ReaderGone, TerminalDisplay
from appliance.lcd.view import JITTER_SAMPLES, view_from_mode6, view_from_ntp, view_from_snapshot
from appliance.ntp import mode6client
from appliance.ntp.exchange import Measurement, client_request, evaluate
from appliance.ntp.packet import PacketError
from appliance.status.snapshot import Snapshot

log = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
KINDS = {"16x2": LCD_16X2, "20x4": LCD_20X4, "oled": OLED_128X64}


def connector(bus: I2cBus, kind: str, address: int | None = None) -> Callable[[], TextDisplay]:
    """A function that finds (probes) and initialises the display of ``kind``; raises OSError when it is not there."""

    def connect() -> TextDisplay:
        candidates = (address,) if address is not None else SSD1306_ADDRESSES if kind == "oled" else HD44780_ADDRESSES
        found = probe(bus, candidates)
        if found is None:
            raise OSError(f"no display answers at {', '.join(f'0x{a:02x}' for a in candidates)}")
        display: TextDisplay
        if kind == "oled":
            display = Ssd1306(bus, found)
        else:
            layout = KINDS[kind]
            display = Hd44780(bus, found, layout.columns, layout.rows)
        display.init()
        return display

    return connect


class Panel:
    """Pages on a display that may come and go; call :meth:`update` every second or so."""

    def __init__(
        self,
        connect: Callable[[], TextDisplay],
        layout: Layout,
        *,
        page_s: float = 5.0,
        retry_s: float = 5.0,
        reinit_s: float = 60.0,
    ) -> None:
        self.connect = connect
        self.layout = layout
        self.page_ns = int(page_s * NS_PER_S)
        self.retry_ns = int(retry_s * NS_PER_S)
        self.reinit_ns = int(reinit_s * NS_PER_S)
        self._init_at_ns = 0
        self.display: TextDisplay | None = None
        self.page = "time"
        self.shown: tuple[str, ...] = ()
        self.failures = 0
        self._turned_ns: int | None = None
        self._retry_at_ns = 0
        self._lost = False
        self._had_alarms = False
        self._presses = 0
        self._lock = threading.Lock()

    def press(self) -> None:
        """The button: the next page at the next update. Safe from any thread."""
        with self._lock:
            self._presses += 1

    def _take_presses(self) -> int:
        with self._lock:
            n, self._presses = self._presses, 0
        return n

    def choose(self, now_ns: int, view: LcdView) -> str:
        """The page to show now (moves on with the clock and the button)."""
        names = pages(view)
        presses = self._take_presses()
        if view.alarms and not self._had_alarms:  # an alarm came on: show it first
            self.page, self._turned_ns = "alarm", now_ns
        self._had_alarms = bool(view.alarms)
        if self.page not in names:
            self.page, self._turned_ns = names[0], now_ns
        if self._turned_ns is None:
            self._turned_ns = now_ns
        steps = presses
        if not presses and now_ns - self._turned_ns >= self.page_ns:
            steps = 1
        if steps:
            self.page = names[(names.index(self.page) + steps) % len(names)]
            self._turned_ns = now_ns
        return self.page

    def update(self, now_ns: int, view: LcdView) -> tuple[str, ...]:
        """Show the page due at ``now_ns`` (monotonic) for ``view``; returns its lines (shown or not)."""
        lines = render(self.choose(now_ns, view), view, self.layout)
        if self.display is None and now_ns >= self._retry_at_ns:
            try:
                self.display = self.connect()
            except OSError as e:
                self._fail(now_ns, e)
            else:
                if self._lost:
                    log.warning("display is back")
                self._lost = False
                self._init_at_ns = now_ns + self.reinit_ns
        if self.display is not None:
            try:
                if now_ns >= self._init_at_ns:  # a display that lost power for a moment comes back blank
                    self.display.init()
                    self._init_at_ns = now_ns + self.reinit_ns
                self.display.show(lines)
                self.shown = lines
            except OSError as e:
                self.display = None
                self._fail(now_ns, e)
        return lines

    def _fail(self, now_ns: int, e: OSError) -> None:
        self.failures += 1
        self._retry_at_ns = now_ns + self.retry_ns
        if not self._lost:  # once per outage, not once per retry
            log.warning("display not answering (%s): trying again every %g s", e, self.retry_ns / NS_PER_S)
        self._lost = True


# -- the I/O: host facts, the appliance over NTP, the button --------------------------------------------


def ip_address() -> str | None:
    """The address this host would use towards the internet (no packet is sent: a UDP connect picks the route)."""
    for family, target in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((target, 9))
                return str(s.getsockname()[0])
        except OSError:
            continue
    return None


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def query_ntp(server: tuple[str, int], timeout_s: float = 1.0) -> Measurement | None:
    """One NTP exchange with the appliance; None when it does not answer or answers wrongly."""
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout_s)
            s.connect(server)
            data, sent = client_request(time.time_ns())
            s.send(data)
            while True:
                reply = s.recv(1024)
                try:
                    return evaluate(reply, sent, time.time_ns())
                except PacketError as e:
                    if e.args and e.args[0] == "origin":
                        continue  # a stale reply: wait for ours
                    raise
    except (OSError, PacketError):
        return None


class NtpViewSource:
    """Views from NTP queries of the appliance at ``server`` and the host's address and load."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.offsets: deque[int] = deque(maxlen=JITTER_SAMPLES)

    def __call__(self) -> LcdView:
        m = query_ntp(self.server)
        if m is not None:
            self.offsets.append(m.offset_ns)
        return view_from_ntp(time.time_ns(), m, list(self.offsets), ip_address=ip_address(), load=load_average())


def query_mode6(
    server: tuple[str, int], opcode: int, seq: int, timeout_s: float = 1.0
) -> tuple[int, dict[str, str]] | None:
    """One mode 6 request (all variables of association 0) to the appliance; (status word, variables) or None."""
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout_s)
            s.connect(server)
            s.send(mode6client.request(opcode, seq))
            while True:
                try:
                    status, data = mode6client.reply(s.recv(2048), opcode, seq)
                except ValueError as e:
                    if "another request" in str(e):
                        continue  # a stale reply: wait for ours
                    return None
                return status, mode6client.variables(data)
    except OSError:
        return None


class Mode6ViewSource:
    """Views from the appliance's mode 6 variables at ``server`` (READVAR and READCLOCK of association 0);
    from ``fallback`` (NTP) when it does not answer (``noquery``, the rate limit, no daemon). Two requests a
    refresh: a tenth of loopback's own mode 6 budget (appliance.ntp.mode6.RATE, per asking address) at one
    refresh a second."""

    def __init__(self, server: tuple[str, int], fallback: Callable[[], LcdView]) -> None:
        self.server = server
        self.fallback = fallback
        self._seq = 0
        self._answering: bool | None = None

    def __call__(self) -> LcdView:
        self._seq = (self._seq + 2) & 0xFFFF
        system = query_mode6(self.server, mode6client.OP_READVAR, self._seq)
        if system is None:
            if self._answering is not False:
                log.warning("no mode 6 answer from %s port %d: asking the appliance over NTP", *self.server)
            self._answering = False
            return self.fallback()
        if self._answering is not True:
            log.info("reading the appliance's mode 6 variables from %s port %d", *self.server)
        self._answering = True
        clock = query_mode6(self.server, mode6client.OP_READCLOCK, self._seq + 1)  # an error: no clock configured
        status, variables = system
        return view_from_mode6(
            variables,
            status,
            clock[1] if clock is not None else None,
            now_ns=time.time_ns(),
            ip_address=ip_address(),
            load=load_average(),
        )


class StatusViewSource:
    """Views from the daemon's status socket at ``path``; from ``fallback`` (NTP) when it does not answer.

    A socket that goes away (the daemon restarts) or never was (``serve --status-socket none``, a user
    outside group stratum1, as the shipped unit is) is logged once; the snapshot is read again at every
    refresh, so the display goes back to it as soon as it answers.
    """

    def __init__(self, path: str, fallback: Callable[[], LcdView]) -> None:
        self.path = path
        self.fallback = fallback
        self._using_socket: bool | None = None

    def __call__(self) -> LcdView:
        try:
            snap = Snapshot.from_json(read_status(self.path, timeout_s=1.0))
        except (OSError, ValueError) as e:
            if self._using_socket is not False:
                log.warning("status socket %s not answering (%s): asking the appliance itself", self.path, e)
            self._using_socket = False
            return self.fallback()
        if self._using_socket is not True:
            log.info("reading the status socket %s", self.path)
        self._using_socket = True
        return view_from_snapshot(snap, ip_address=ip_address(), load=load_average())


def attach_button(panel: Panel, pin: int, pin_factory: Any = None) -> Any:
    """A push button from GPIO ``pin`` to GND (internal pull-up) that turns the page; returns the gpiozero Button."""
    from gpiozero import Button  # type: ignore[import-untyped,unused-ignore]

    button = Button(pin, pull_up=True, bounce_time=0.05, pin_factory=pin_factory)
    button.when_pressed = lambda *_: panel.press()
    return button


def run(
    panel: Panel,
    view: Callable[[], LcdView],
    *,
    refresh_s: float = 1.0,
    stop: threading.Event | None = None,
    monotonic_ns: Callable[[], int] = time.monotonic_ns,
) -> None:
    """Refresh ``panel`` from ``view`` every ``refresh_s`` seconds until ``stop`` is set."""
    stop = stop or threading.Event()
    while not stop.is_set():
        panel.update(monotonic_ns(), view())
        stop.wait(refresh_s)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="stratum1 lcd", description="show the appliance's status on an I2C display")
    add_arguments(p)
    return command(p.parse_args(argv))


def i2c_address(text: str) -> int:
    """A 7-bit I2C address a device may have (0x03..0x77), in hex (0x27) or decimal."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an I2C address (0x03..0x77)") from None
    if not 0x03 <= value <= 0x77:
        raise argparse.ArgumentTypeError(f"{text!r} is not an I2C address (0x03..0x77)")
    return value


def page_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.5 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds from 0.5 to 3600")
    return value


def port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1..65535)")
    return int(text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--display", choices=sorted(KINDS), default="16x2", help="HD44780 16x2 or 20x4, or SSD1306 oled")
    p.add_argument("--bus", type=int, default=1, help="I2C bus number (/dev/i2c-N; default 1)")
    p.add_argument("--address", type=i2c_address, help="I2C address (default: probe 0x27 0x3F, oled 0x3C 0x3D)")
    p.add_argument("--button", type=int, metavar="GPIO", help="GPIO line of a page button to GND (default: none)")
    p.add_argument("--page-seconds", type=page_seconds, default=5.0, help="turn the page after this long (default 5)")
    p.add_argument(
        "--socket", default=STATUS_SOCKET, help=f"the daemon's status socket, read first (default {STATUS_SOCKET})"
    )
    p.add_argument(
        "--server", default="127.0.0.1", help="the appliance to ask (mode 6, else NTP) when the socket does not answer"
    )
    p.add_argument("--port", type=port, default=123, help="its NTP port (default 123)")
    p.add_argument(
        "--terminal",
        action="store_true",
        help="draw the pages in this terminal instead of on an I2C display (no display wired yet, or over SSH)",
    )


def command(args: argparse.Namespace) -> int:
    from appliance.io.i2c import SmbusBus

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    layout = KINDS[args.display]
    bus: SmbusBus | None = None
    connect: Callable[[], TextDisplay]
    if args.terminal:
        terminal = TerminalDisplay(layout, sys.stdout)
        connect = lambda: terminal  # noqa: E731
    else:
        bus = SmbusBus(args.bus)
        connect = connector(bus, args.display, args.address)
    panel = Panel(connect, layout, page_s=args.page_seconds)
    button = None
    if args.button is not None:
        try:
            button = attach_button(panel, args.button)
        except Exception as e:  # gpiozero's errors (no pin library, a pin in use) have no common base but Exception
            log.error("page button on GPIO %d unusable, pages turn by themselves: %s", args.button, e)
    stop = threading.Event()
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = (args.server, args.port)
        run(panel, StatusViewSource(args.socket, Mode6ViewSource(server, NtpViewSource(server))), stop=stop)
    except ReaderGone:
        # Python flushes stdout again at exit: point it at /dev/null so that this flush cannot fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_READER_GONE
    finally:
        if button is not None:
            button.close()
        if bus is not None:
            bus.close()
    return 0
