"""Small valid images built byte by byte (no imaging library), for frame checks in tests."""

from __future__ import annotations

import struct
import zlib


def png_bytes(width: int = 64, height: int = 36, shade: int = 128) -> bytes:
    """A valid 8-bit RGB PNG with a pattern (so it does not compress to nothing)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(
        b"\0" + bytes(v for x in range(width) for v in ((x * 7 + y * 13 + shade) % 256, (x * y) % 256, shade))
        for y in range(height)
    )
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
