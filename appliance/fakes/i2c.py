"""A fake I2C bus with displays on it that decode the bytes as the chips would, and draw what they show.

:class:`FakeI2cBus` has the :class:`~appliance.io.i2c.I2cBus` methods and
verbs for tests: :meth:`~FakeI2cBus.attach` a device at an address,
:meth:`~FakeI2cBus.unplug` it (every transfer to it then raises ``OSError``
``ENXIO``, as an unacknowledged address does on a Pi) and
:meth:`~FakeI2cBus.replug` it (it comes back powered up afresh: its state
lost, as a real one would).

:class:`FakeHd44780` is a PCF8574 backpack with an HD44780 behind it: it
watches the expander's pins (layout in :mod:`appliance.io.lcd`) and on every
falling edge of E latches the four data lines, pairs nibbles in 4-bit mode,
and runs the instruction or data write: DDRAM and its address counter, entry
mode (increment or decrement, display shift), display on/off, cursor,
cursor and display shift, function set (8/4-bit, lines), CGRAM writes; the
backlight is pin P3. It powers up in 8-bit mode with the PCF8574's pins all
high, as the parts do. :meth:`FakeHd44780.lines` is the text on the glass,
:meth:`FakeHd44780.png` a picture of it.

:class:`FakeSsd1306` takes control bytes 0x00 (commands) and 0x40 (RAM),
the addressing commands (modes, column and page ranges), remaps, display
on/off, the charge pump, invert; :meth:`FakeSsd1306.png` draws its RAM as the
panel shows it.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Protocol

from appliance.fakes.png import encode_png, scale
from appliance.lcd.font import glyph


class FakeDevice(Protocol):
    def write(self, data: bytes) -> None: ...

    def power_on(self) -> None: ...


@dataclass
class FakeI2cBus:
    """Devices by 7-bit address; ``transfers`` counts the transfers that reached one."""

    devices: dict[int, FakeDevice] = field(default_factory=dict)
    unplugged: set[int] = field(default_factory=set)
    transfers: int = 0
    failures: int = 0

    def attach(self, address: int, device: FakeDevice) -> FakeDevice:
        self.devices[address] = device
        return device

    def unplug(self, address: int) -> None:
        self.unplugged.add(address)

    def replug(self, address: int) -> None:
        """Plug the device back in: it powers up in its reset state."""
        self.unplugged.discard(address)
        self.devices[address].power_on()

    def _device(self, address: int) -> FakeDevice:
        device = self.devices.get(address)
        if device is None or address in self.unplugged:
            self.failures += 1
            raise OSError(errno.ENXIO, f"no device acknowledges at 0x{address:02x}")
        self.transfers += 1
        return device

    def write_byte(self, address: int, value: int) -> None:
        self._device(address).write(bytes([value & 0xFF]))

    def write_block(self, address: int, control: int, data: bytes) -> None:
        if len(data) > 32:
            raise OSError(errno.EINVAL, "an SMBus block is at most 32 bytes")
        self._device(address).write(bytes([control & 0xFF]) + bytes(data))

    def read_byte(self, address: int) -> int:
        self._device(address)
        return 0xFF


# colours: background, pixel off (the faint cell), pixel on
_LCD_PALETTE = [(24, 48, 160), (40, 72, 200), (232, 240, 255), (8, 16, 48), (16, 28, 80), (72, 80, 96)]
_OLED_PALETTE = [(0, 0, 0), (0, 0, 0), (150, 220, 255)]


class FakeHd44780:
    """A PCF8574 backpack and an HD44780 (``columns`` x ``rows``); see the module docstring."""

    def __init__(self, columns: int = 16, rows: int = 2) -> None:
        self.columns = columns
        self.rows = rows
        self.power_on()

    def power_on(self) -> None:
        self.pins = 0xFF  # PCF8574 outputs come up high
        self.eight_bit = True
        self.two_lines = False
        self.pending: int | None = None  # the high nibble of a byte in 4-bit mode
        self.ddram = bytearray(b" " * 0x80)
        self.cgram = bytearray(64)
        self.address = 0
        self.in_cgram = False
        self.increment = True
        self.shift_display = False
        self.display_on = False
        self.cursor = False
        self.blink = False
        self.shift = 0
        self.reads = 0
        self.instructions = 0

    @property
    def backlight(self) -> bool:
        return bool(self.pins & 0x08)

    def write(self, data: bytes) -> None:
        for value in data:
            if self.pins & 0x04 and not value & 0x04:  # E falls: the controller latches D7..D4
                self._latch(self.pins >> 4, bool(self.pins & 0x01), bool(self.pins & 0x02))
            self.pins = value

    def _latch(self, nibble: int, rs: bool, rw: bool) -> None:
        if rw:  # a read of the busy flag or RAM: nothing is written
            self.reads += 1
            return
        if self.eight_bit:  # D3..D0 are not wired: they read as low
            self._execute(nibble << 4, rs)
        elif self.pending is None:
            self.pending = nibble
        else:
            value, self.pending = (self.pending << 4) | nibble, None
            self._execute(value, rs)

    def _execute(self, value: int, rs: bool) -> None:
        if rs:
            self._write_data(value)
            return
        self.instructions += 1
        if value & 0x80:
            self.in_cgram, self.address = False, value & 0x7F
        elif value & 0x40:
            self.in_cgram, self.address = True, value & 0x3F
        elif value & 0x20:
            self.eight_bit = bool(value & 0x10)
            self.two_lines = bool(value & 0x08)
            self.pending = None
        elif value & 0x10:
            step = 1 if value & 0x04 else -1
            if value & 0x08:
                self.shift = (self.shift + step) % 40
            else:
                self.address = self._next(self.address, step)
        elif value & 0x08:
            self.display_on, self.cursor, self.blink = bool(value & 4), bool(value & 2), bool(value & 1)
        elif value & 0x04:
            self.increment, self.shift_display = bool(value & 2), bool(value & 1)
        elif value & 0x02:
            self.address, self.shift, self.in_cgram = 0, 0, False
        elif value & 0x01:
            self.ddram[:] = b" " * 0x80
            self.address, self.shift, self.in_cgram, self.increment = 0, 0, False, True

    def _next(self, address: int, step: int) -> int:
        if not self.two_lines:
            return (address + step) % 80
        line, col = address & 0x40, (address & 0x3F) + step
        if col > 0x27:
            return 0x40 - line
        if col < 0:
            return (0x40 - line) + 0x27
        return line | col

    def _write_data(self, value: int) -> None:
        step = 1 if self.increment else -1
        if self.in_cgram:
            self.cgram[self.address] = value & 0x1F
            self.address = (self.address + step) % 64
            return
        self.ddram[self.address] = value
        self.address = self._next(self.address, step)
        if self.shift_display:
            self.shift = (self.shift + step) % 40

    def codes(self) -> list[bytes]:
        """The character codes on each row of the glass (spaces while the display is off)."""
        out = []
        for row in range(self.rows):
            start = (0x00, 0x40, 0x14, 0x54)[row] if self.two_lines else row * 0x14 % 80
            if not self.display_on:
                out.append(b" " * self.columns)
                continue
            line = start & 0x40
            base = (start & 0x3F) + self.shift
            out.append(bytes(self.ddram[line | ((base + c) % 40)] for c in range(self.columns)))
        return out

    def cursor_position(self) -> tuple[int, int] | None:
        """(row, column) on the glass of the address counter, or None when it is off the visible part."""
        for row in range(self.rows):
            start = (0x00, 0x40, 0x14, 0x54)[row] if self.two_lines else row * 0x14 % 80
            col = ((self.address & 0x3F) - (start & 0x3F) - self.shift) % 40
            if (self.address & 0x40) == (start & 0x40) and col < self.columns:
                return row, col
        return None

    def lines(self) -> list[str]:
        """The text on the glass, ASCII for ASCII codes (0x5C is the ROM's yen, 0x7E/0x7F arrows)."""
        special = {0x5C: "¥", 0x7E: "→", 0x7F: "←"}
        return [
            "".join(special.get(c, chr(c)) if 0x20 <= c <= 0x7F else "\ufffd" for c in codes) for codes in self.codes()
        ]

    def png(self, zoom: int = 2) -> bytes:
        """A picture of the glass: 5x8 cells with a pixel gap, the backlight's colour, CGRAM glyphs too."""
        dark = 0 if self.backlight else 3
        width = 4 + self.columns * 6
        height = 4 + self.rows * 9
        pixels = [bytearray([dark] * width) for _ in range(height)]
        for row, codes in enumerate(self.codes()):
            for col, code in enumerate(codes):
                rows8 = tuple(self.cgram[(code & 7) * 8 : (code & 7) * 8 + 8]) if code < 8 else glyph(code)
                for dy in range(8):
                    for dx in range(5):
                        on = rows8[dy] & (0x10 >> dx)
                        pixels[2 + row * 9 + dy][2 + col * 6 + dx] = (2 if on else 1) + (3 if dark else 0)
        if self.display_on and self.cursor and not self.in_cgram and (at := self.cursor_position()):
            for dx in range(5):  # the underline cursor: the cell's eighth row
                pixels[2 + at[0] * 9 + 7][2 + at[1] * 6 + dx] = 2 + (3 if dark else 0)
        return encode_png(scale([bytes(r) for r in pixels], zoom), _LCD_PALETTE)


class FakeSsd1306:
    """An SSD1306 with a 128x64 panel; see the module docstring."""

    _ARGUMENTS = {0x20: 1, 0x21: 2, 0x22: 2, 0x81: 1, 0x8D: 1, 0xA8: 1, 0xD3: 1, 0xD5: 1, 0xD9: 1, 0xDA: 1, 0xDB: 1}

    def __init__(self) -> None:
        self.power_on()

    def power_on(self) -> None:
        self.ram = bytearray(1024)
        self.on = False
        self.charge_pump = False
        self.inverted = False
        self.segment_remap = False
        self.com_reversed = False
        self.mode = 2  # page addressing after reset
        self.columns = (0, 127)
        self.pages = (0, 7)
        self.column = 0
        self.page = 0
        self.start_line = 0
        self.unknown_commands = 0
        self._command: list[int] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        control, rest = data[0], data[1:]
        if control & 0x40:
            for value in rest:
                self._data(value)
        else:
            for value in rest:
                self._command_byte(value)

    def _command_byte(self, value: int) -> None:
        self._command.append(value)
        need = self._ARGUMENTS.get(self._command[0], 0)
        if len(self._command) <= need:
            return
        op, *args = self._command
        self._command = []
        if op == 0x20:
            self.mode = args[0] & 3
        elif op == 0x21:
            self.columns = (args[0] & 0x7F, args[1] & 0x7F)
            self.column = self.columns[0]
        elif op == 0x22:
            self.pages = (args[0] & 7, args[1] & 7)
            self.page = self.pages[0]
        elif op == 0x8D:
            self.charge_pump = bool(args[0] & 0x04)
        elif op in (0xAE, 0xAF):
            self.on = op == 0xAF
        elif op in (0xA6, 0xA7):
            self.inverted = op == 0xA7
        elif op in (0xA0, 0xA1):
            self.segment_remap = op == 0xA1
        elif op in (0xC0, 0xC8):
            self.com_reversed = op == 0xC8
        elif 0x40 <= op <= 0x7F:
            self.start_line = op & 0x3F
        elif 0xB0 <= op <= 0xB7:
            self.page = op & 7
        elif op < 0x20:
            self.column = (self.column & 0xF0) | op if op < 0x10 else (self.column & 0x0F) | ((op & 7) << 4)
        elif op not in self._ARGUMENTS and op != 0xA4:
            self.unknown_commands += 1

    def _data(self, value: int) -> None:
        self.ram[self.page * 128 + self.column] = value
        if self.mode == 2:  # page addressing: the column wraps within the page
            self.column = (self.column + 1) % 128
            return
        self.column += 1
        if self.column > self.columns[1]:
            self.column = self.columns[0]
            self.page = self.page + 1 if self.page < self.pages[1] else self.pages[0]

    def pixel(self, x: int, y: int) -> bool:
        """Whether the panel's pixel at (x, y) (0, 0 top left as mounted) is lit."""
        if not (self.on and self.charge_pump):
            return False
        # the usual module is mounted so that remapped columns and reversed COM scan show RAM upright
        column = x if self.segment_remap else 127 - x
        row = y if self.com_reversed else 63 - y
        row = (row + self.start_line) % 64
        lit = bool(self.ram[(row // 8) * 128 + column] >> (row % 8) & 1)
        return lit != self.inverted

    def png(self, zoom: int = 2) -> bytes:
        pixels = [bytes(2 if self.pixel(x, y) else 0 for x in range(128)) for y in range(64)]
        return encode_png(scale(pixels, zoom), _OLED_PALETTE)
