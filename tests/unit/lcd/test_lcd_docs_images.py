"""docs/images/lcd-*.png are what the fake displays show for the pages: this test draws them again and compares.

To redraw them after a change to the pages or the fakes::

    STRATUM1_WRITE_DOCS=1 python -m pytest tests/unit/lcd/test_lcd_docs_images.py
"""

from __future__ import annotations

import os
import struct
import zlib

import pytest
from support import ROOT
from test_lcd_pages import HEALTHY, HOLDOVER, UNSYNC

from appliance.fakes.i2c import FakeHd44780, FakeI2cBus, FakeSsd1306
from appliance.io.lcd import Hd44780, Ssd1306
from appliance.lcd.pages import LCD_16X2, LCD_20X4, OLED_128X64, Layout, LcdView, render

IMAGES = ROOT / "docs" / "images"
# file name -> (view, page, layout)
PICTURES: dict[str, tuple[LcdView, str, Layout]] = {
    "lcd-16x2-time.png": (HEALTHY, "time", LCD_16X2),
    "lcd-16x2-offset.png": (HEALTHY, "offset", LCD_16X2),
    "lcd-16x2-gps.png": (HEALTHY, "gps", LCD_16X2),
    "lcd-16x2-net.png": (HEALTHY, "net", LCD_16X2),
    "lcd-16x2-holdover-alarm.png": (HOLDOVER, "alarm", LCD_16X2),
    "lcd-16x2-holdover-time.png": (HOLDOVER, "time", LCD_16X2),
    "lcd-16x2-unsync-time.png": (UNSYNC, "time", LCD_16X2),
    "lcd-20x4-time.png": (HEALTHY, "time", LCD_20X4),
    "lcd-20x4-gps.png": (HEALTHY, "gps", LCD_20X4),
    "lcd-20x4-unsync-alarm.png": (UNSYNC, "alarm", LCD_20X4),
    "lcd-oled-time.png": (HEALTHY, "time", OLED_128X64),
}


def draw(view: LcdView, page: str, layout: Layout) -> bytes:
    """The page sent through the real driver to the fake display, and its picture."""
    bus = FakeI2cBus()
    lines = render(page, view, layout)
    if layout is OLED_128X64:
        oled = FakeSsd1306()
        bus.attach(0x3C, oled)
        driver = Ssd1306(bus, 0x3C)
        driver.init()
        driver.show(lines)
        return oled.png()
    lcd = FakeHd44780(layout.columns, layout.rows)
    bus.attach(0x27, lcd)
    hd = Hd44780(bus, 0x27, layout.columns, layout.rows, sleep=lambda s: None)
    hd.init()
    hd.show(lines)
    return lcd.png()


def decoded(png: bytes) -> tuple[bytes, bytes]:
    """(IHDR + PLTE, the inflated image data): what a picture shows, whatever zlib made of it."""
    pos, header, data = 8, b"", b""
    while pos < len(png):
        (length,) = struct.unpack("!I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind in (b"IHDR", b"PLTE"):
            header += body
        elif kind == b"IDAT":
            data += body
        pos += 12 + length
    return header, zlib.decompress(data)


@pytest.mark.parametrize("name", sorted(PICTURES))
def test_docs_picture_is_what_the_fake_shows(name: str) -> None:
    png = draw(*PICTURES[name])
    path = IMAGES / name
    if os.environ.get("STRATUM1_WRITE_DOCS") == "1":
        path.write_bytes(png)
    assert path.exists(), f"{path} is missing: STRATUM1_WRITE_DOCS=1 draws it"
    assert decoded(path.read_bytes()) == decoded(png), f"{name} is out of date: STRATUM1_WRITE_DOCS=1 redraws it"
    assert len(png) < 4096  # small


def test_docs_page_shows_every_picture() -> None:
    page = (ROOT / "docs" / "display.md").read_text()
    for name in PICTURES:
        assert f"images/{name}" in page, name
