"""The displays: an HD44780 character LCD behind a PCF8574 I2C backpack, and an SSD1306 128x64 OLED.

Both show lines of text (:class:`TextDisplay`): the pages of
:mod:`appliance.lcd.pages` do not know which display they are on beyond its
columns and rows. Everything goes through an :class:`~appliance.io.i2c.I2cBus`
(smbus2 on the Pi, :class:`appliance.fakes.i2c.FakeI2cBus` in tests), and every
bus failure comes out as :class:`OSError`.

HD44780 through a PCF8574 (HD44780U data sheet, "Interfacing to a 4-bit MPU")
-----------------------------------------------------------------------------
The usual backpack wires the expander's pins as::

    P7 P6 P5 P4 | P3        | P2 | P1 | P0
    D7 D6 D5 D4 | backlight | E  | RW | RS

so each byte written to the PCF8574 sets all eight lines at once. A nibble
is latched on the falling edge of E: write the pins with E high, then the
same pins with E low. In 4-bit mode a byte is two nibbles, high first. The
controller powers up in 8-bit mode; the data sheet's initialisation by
instruction (0x3, 0x3, 0x3 as 8-bit function sets, 0x2 to switch to 4 bits)
brings it to 4-bit mode from any state, including half-way through a byte.
RW stays low: the busy flag is never read, so the waits are timed instead
(``sleep``): 4.1 ms after the first function set, 1.52 ms after clear.

DDRAM rows start at 0x00, 0x40, 0x14, 0x54 (20x4; a 16x2 uses the first two).
The characters are the ROM's (code A00): ASCII 0x20..0x7D except 0x5C (yen);
anything else is written as ``?``.

SSD1306 (Solomon Systech data sheet, rev 1.1, section 8.1.5 and 10)
--------------------------------------------------------------------
After the address, a control byte: 0x00 (commands follow) or 0x40 (display
RAM follows). The 1 KiB display RAM is 8 pages of 128 columns, one byte per
column and page, bit 0 the top pixel. :class:`Ssd1306` draws text with the same
5x8 glyphs (6 pixels a column, 21 columns, 8 rows) into a frame buffer and
sends the whole of it in horizontal addressing mode, 16 bytes a block.

Wiring: SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5), VCC to 5 V (pin 2; an OLED
module may want 3.3 V, pin 1), GND to pin 6. Example::

    bus = SmbusBus(1)
    address = probe(bus, HD44780_ADDRESSES)     # 0x27 (PCF8574) or 0x3F (PCF8574A)
    lcd = Hd44780(bus, address, 16, 2)
    lcd.init()
    lcd.show(["12:00:00 UTC", "S1 PPS"])
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from appliance.io.i2c import I2cBus
from appliance.lcd.font import glyph

#: PCF8574 backpacks answer at 0x27, PCF8574A ones at 0x3F (their address jumpers open).
HD44780_ADDRESSES = (0x27, 0x3F)
SSD1306_ADDRESSES = (0x3C, 0x3D)

# PCF8574 pins on the usual backpack
RS = 0x01
RW = 0x02
E = 0x04
BACKLIGHT = 0x08

# HD44780 instructions
CLEAR = 0x01
ENTRY_MODE = 0x04  # | 0x02 increment | 0x01 shift display
DISPLAY_CONTROL = 0x08  # | 0x04 display on | 0x02 cursor | 0x01 blink
FUNCTION_SET = 0x20  # | 0x10 8-bit | 0x08 two lines | 0x04 5x10 font
SET_DDRAM = 0x80
ROW_STARTS = (0x00, 0x40, 0x14, 0x54)


class TextDisplay(Protocol):
    """Lines of text on a display; every method may raise OSError (the bus)."""

    columns: int
    rows: int

    def init(self) -> None: ...

    def show(self, lines: Sequence[str]) -> None: ...


def probe(bus: I2cBus, addresses: Sequence[int]) -> int | None:
    """The first of ``addresses`` where a device acknowledges a read, or None.

    A bus that cannot be opened at all (no ``/dev/i2c-N``, no permission) raises its OSError: that is
    not "no display here".
    """
    for address in addresses:
        try:
            bus.read_byte(address)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENODEV):
                raise
            continue
        return address
    return None


def rom_bytes(text: str) -> bytes:
    """``text`` as character codes of the HD44780's A00 ROM: ASCII it shows as ASCII, ``?`` for the rest."""
    return bytes(ord(c) if 0x20 <= ord(c) <= 0x7D and c != "\\" else 0x3F for c in text)


class Hd44780:
    """A ``columns`` x ``rows`` HD44780 on a PCF8574 backpack at ``address``; see the module docstring."""

    def __init__(
        self,
        bus: I2cBus,
        address: int,
        columns: int = 16,
        rows: int = 2,
        *,
        backlight: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if (columns, rows) not in ((16, 2), (20, 4), (20, 2)):  # the rows start at ROW_STARTS
            raise ValueError(f"no HD44780 layout {columns}x{rows}")
        self.bus = bus
        self.address = address
        self.columns = columns
        self.rows = rows
        self.backlight = backlight
        self.sleep = sleep
        self._shown: list[bytes | None] = [None] * rows

    def _pins(self, value: int) -> None:
        self.bus.write_byte(self.address, value | (BACKLIGHT if self.backlight else 0))

    def _nibble(self, nibble: int, rs: int) -> None:
        pins = ((nibble & 0x0F) << 4) | rs
        self._pins(pins | E)
        self._pins(pins)  # falling edge of E: latched

    def _byte(self, value: int, rs: int) -> None:
        self._nibble(value >> 4, rs)
        self._nibble(value, rs)

    def command(self, value: int) -> None:
        self._byte(value, 0)

    def init(self) -> None:
        """Bring the controller to 4-bit mode, two lines, display on, cleared (whatever state it was in)."""
        self._shown = [None] * self.rows
        self._pins(0)
        self.sleep(0.05)  # more than 40 ms after power rises to 4.5 V
        for wait in (0.0045, 0.00015, 0.00015):
            self._nibble(0x3, 0)  # function set, 8-bit
            self.sleep(wait)
        self._nibble(0x2, 0)  # function set, 4-bit: from here on every byte is two nibbles
        self.command(FUNCTION_SET | 0x08)  # 4-bit, two lines (a 4-row display is two lines folded), 5x8
        self.command(DISPLAY_CONTROL)  # off
        self.command(CLEAR)
        self.sleep(0.002)
        self.command(ENTRY_MODE | 0x02)  # increment, no shift
        self.command(DISPLAY_CONTROL | 0x04)  # on, no cursor, no blink

    def show(self, lines: Sequence[str]) -> None:
        """Write the rows that changed since the last call (each padded or cut to the width).

        The backlight pins are written first every time, so an unplugged display is noticed even when
        nothing changed.
        """
        self._pins(0)
        for row in range(self.rows):
            text = lines[row] if row < len(lines) else ""
            data = rom_bytes(text[: self.columns].ljust(self.columns))
            if self._shown[row] == data:
                continue
            self._shown[row] = None  # unknown until the whole row went through
            self.command(SET_DDRAM | ROW_STARTS[row])
            for code in data:
                self._byte(code, RS)
            self._shown[row] = data

    def set_backlight(self, on: bool) -> None:
        self.backlight = on
        self._pins(0)


# SSD1306 control bytes and the initialisation (data sheet section 10, application note's sequence)
COMMANDS = 0x00
DATA = 0x40
SSD1306_INIT = bytes(
    [
        0xAE,  # display off
        0xD5, 0x80,  # clock divide
        0xA8, 0x3F,  # multiplex: 64 rows
        0xD3, 0x00,  # display offset 0
        0x40,  # start line 0
        0x8D, 0x14,  # charge pump on (no external VCC)
        0x20, 0x00,  # horizontal addressing mode
        0xA1,  # column 127 is SEG0: with 0xC8, upright on the usual modules
        0xC8,  # COM scan from COM63
        0xDA, 0x12,  # COM pins: alternative, no remap
        0x81, 0xCF,  # contrast
        0xD9, 0xF1,  # pre-charge
        0xDB, 0x40,  # VCOMH
        0xA4,  # display follows RAM
        0xA6,  # normal (not inverted)
        0xAF,  # display on
    ]
)  # fmt: skip
WIDTH = 128
HEIGHT = 64
CELL = 6  # pixels a character column takes (5 + a gap)


def framebuffer(lines: Sequence[str], columns: int = 21, rows: int = 8) -> bytes:
    """The SSD1306 display RAM (8 pages x 128 columns) for text ``lines``, one text row per page."""
    ram = bytearray(WIDTH * (HEIGHT // 8))
    for page in range(min(rows, len(lines))):
        for col, code in enumerate(rom_bytes(lines[page][:columns])):
            rows8 = glyph(code)
            for dx in range(5):
                column = 0
                for dy in range(8):
                    if rows8[dy] & (0x10 >> dx):
                        column |= 1 << dy
                ram[page * WIDTH + 1 + col * CELL + dx] = column
    return bytes(ram)


class Ssd1306:
    """A 128x64 SSD1306 OLED at ``address`` showing 21 columns x 8 rows of text."""

    columns = 21
    rows = 8

    def __init__(self, bus: I2cBus, address: int = 0x3C) -> None:
        self.bus = bus
        self.address = address
        self._shown: bytes | None = None

    def _commands(self, data: bytes) -> None:
        for i in range(0, len(data), 16):
            self.bus.write_block(self.address, COMMANDS, data[i : i + 16])

    def init(self) -> None:
        self._shown = None
        self._commands(SSD1306_INIT)

    def show(self, lines: Sequence[str]) -> None:
        """Draw ``lines`` and send the frame (when it changed)."""
        ram = framebuffer(lines, self.columns, self.rows)
        if ram == self._shown:
            self._commands(bytes([0xE3]))  # a no-op, so that an unplugged display is noticed
            return
        self._shown = None
        self._commands(bytes([0x21, 0, WIDTH - 1, 0x22, 0, HEIGHT // 8 - 1]))  # the whole screen, from 0,0
        for i in range(0, len(ram), 16):
            self.bus.write_block(self.address, DATA, ram[i : i + 16])
        self._shown = ram
