"""A small PNG writer (RFC 2083, palette images) for the fake displays' pictures: zlib and struct, no Pillow."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(pixels: Sequence[bytes], palette: Sequence[tuple[int, int, int]]) -> bytes:
    """A PNG of ``pixels`` (rows of palette indices, one byte each, all rows the same length)."""
    height = len(pixels)
    width = len(pixels[0]) if height else 0
    if not width or any(len(row) != width for row in pixels):
        raise ValueError("rows must be non-empty and of one length")
    if not 0 < len(palette) <= 256 or max(max(row) for row in pixels) >= len(palette):
        raise ValueError("pixel index outside the palette")
    header = struct.pack("!IIBBBBB", width, height, 8, 3, 0, 0, 0)  # 8-bit palette, no interlace
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)  # filter type 0 on every row
    plte = b"".join(bytes(c) for c in palette)
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"PLTE", plte)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def scale(pixels: Sequence[bytes], factor: int) -> list[bytes]:
    """Each pixel as a ``factor`` x ``factor`` block."""
    out: list[bytes] = []
    for row in pixels:
        wide = bytes(p for p in row for _ in range(factor))
        out.extend([wide] * factor)
    return out
