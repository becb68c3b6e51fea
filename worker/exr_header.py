"""Reading an OpenEXR header with the standard library: is a split part a whole, usable file?

A part is valid when it is a scanline OpenEXR whose header parses, that has a ``Combined``
pass, that says how many samples Cycles rendered into it (``cycles.<layer>.samples``, what
``cycles.merge_images`` weights by), and whose chunk offset table points inside the file
(a truncated upload fails that). Pure functions; no bpy, no image library needed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

MAGIC = b"\x76\x2f\x31\x01"


class BadExr(ValueError):
    """The file is not a complete, usable OpenEXR part."""


@dataclass
class ExrHeader:
    channels: list[str] = field(default_factory=list)
    strings: dict[str, str] = field(default_factory=dict)
    ints: dict[str, int] = field(default_factory=dict)
    data_window: tuple[int, int, int, int] = (0, 0, 0, 0)
    compression: int = 0
    end: int = 0  # offset of the first byte after the header

    @property
    def samples(self) -> int | None:
        """Samples Cycles rendered into this image (the first view layer's), if recorded."""
        for key, value in self.strings.items():
            if key.startswith("cycles.") and key.endswith(".samples") and value.strip().isdigit():
                return int(value)
        return None

    def has_pass(self, name: str) -> bool:
        return any(c.split(".")[-2:-1] == [name] for c in self.channels)


def read_headers(data: bytes) -> list[ExrHeader]:
    """Every part's header (one for a single-part file; Blender 5.x writes multi-part files)."""
    if data[:4] != MAGIC:
        raise BadExr("not an OpenEXR file")
    flags = struct.unpack_from("<I", data, 4)[0]
    if flags & 0x200 or flags & 0x800:
        raise BadExr("a tiled or deep OpenEXR, not a Cycles render")
    multipart = bool(flags & 0x1000)
    heads, i = [], 8
    try:
        while True:
            head, i = _read_one(data, i)
            heads.append(head)
            if not multipart or data[i] == 0:
                break
    except (IndexError, struct.error):
        raise BadExr("the header is cut short") from None
    end = i + 1 if multipart else i
    for head in heads:
        head.end = end
    return heads


def read_header(data: bytes) -> ExrHeader:
    """The first part's header, with every part's channels (what a merge sees as one image)."""
    heads = read_headers(data)
    first = heads[0]
    for other in heads[1:]:
        first.channels += other.channels
        for key, value in other.strings.items():
            first.strings.setdefault(key, value)
    return first


def _read_one(data: bytes, i: int) -> tuple[ExrHeader, int]:
    head = ExrHeader()
    while data[i] != 0:
        j = _nul(data, i)
        name = data[i:j].decode("latin-1")
        k = _nul(data, j + 1)
        kind = data[j + 1 : k].decode("latin-1")
        (size,) = struct.unpack_from("<i", data, k + 1)
        value = data[k + 5 : k + 5 + size]
        if len(value) != size:
            raise BadExr("the header is cut short")
        i = k + 5 + size
        if kind == "chlist":
            head.channels = _channels(value)
        elif kind == "string":
            head.strings[name] = value.decode("utf-8", "replace")
        elif kind == "int":
            head.ints[name] = struct.unpack("<i", value)[0]
        elif kind == "box2i" and name == "dataWindow":
            head.data_window = struct.unpack("<4i", value)
        elif kind == "compression":
            head.compression = value[0]
    return head, i + 1


def _nul(data: bytes, start: int) -> int:
    """The next NUL byte at or after ``start`` (``find``: bytes and mmap both have it)."""
    at = data.find(b"\0", start)
    if at < 0:
        raise IndexError("no NUL")  # read_headers: "the header is cut short"
    return at


def _channels(value: bytes) -> list[str]:
    names, k = [], 0
    while value[k] != 0:
        e = value.index(b"\0", k)
        names.append(value[k:e].decode("utf-8", "replace"))
        k = e + 1 + 16
    return names


def lines_per_chunk(compression: int) -> int:
    # NONE, RLE, ZIPS: 1; ZIP, PXR24: 16; PIZ, B44, B44A: 32; DWAA 32, DWAB 256
    return {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256}.get(compression, 1)


def check_part(data: bytes, expect_samples: int | None = None) -> ExrHeader:
    """The part's header when the whole file is usable; :class:`BadExr` saying why not."""
    head = read_header(data)
    if not head.has_pass("Combined"):
        raise BadExr("it has no Combined pass (not a multilayer Cycles render)")
    samples = head.samples
    if samples is None or samples <= 0:
        raise BadExr("it does not record how many samples it holds (cycles.<layer>.samples)")
    if expect_samples is not None and samples != expect_samples:
        raise BadExr(f"it holds {samples} samples, not {expect_samples}")
    heads = read_headers(data)
    multipart = len(heads) > 1 or "type" in heads[0].strings
    pos = heads[0].end
    for part in heads:
        _x0, y0, _x1, y1 = part.data_window
        chunks = part.ints.get("chunkCount") or -(-(y1 - y0 + 1) // lines_per_chunk(part.compression))
        table = data[pos : pos + 8 * chunks]
        if len(table) != 8 * chunks:
            raise BadExr("it is cut short (no complete offset table)")
        pos += 8 * chunks
        for off in struct.unpack(f"<{chunks}Q", table):
            size_at = off + (8 if multipart else 4)  # [part number] y, then the data size
            if off < part.end or size_at + 4 > len(data):
                raise BadExr("it is cut short (a chunk lies past the end of the file)")
            (size,) = struct.unpack_from("<i", data, size_at)
            if size < 0 or size_at + 4 + size > len(data):
                raise BadExr("it is cut short (a chunk lies past the end of the file)")
    return head


def with_samples(data: bytes, samples: int) -> bytes:
    """``data`` with every ``cycles.<layer>.samples`` attribute saying ``samples``, and the
    chunk offset tables moved by what that changes in the header's length (the pixel data
    is untouched). A part renders a subset of the scene's samples and Cycles records the
    scene's total, which ``cycles.merge_images`` weights by: uneven parts (10, 10, 12 of 32)
    would count alike. ``data`` may be the file's start only, as long as it holds the header
    and the offset tables: the rest follows unchanged."""
    try:
        return _with_samples(data, samples)
    except (IndexError, struct.error):
        raise BadExr("the header and offset table are cut short") from None


def _with_samples(data: bytes, samples: int) -> bytes:
    heads = read_headers(data)
    out, i = bytearray(data[:8]), 8
    for _head in heads:
        while data[i] != 0:
            j = _nul(data, i)
            k = _nul(data, j + 1)
            name, kind = data[i:j].decode("latin-1"), data[j + 1 : k]
            (size,) = struct.unpack_from("<i", data, k + 1)
            end = k + 5 + size
            if kind == b"string" and name.startswith("cycles.") and name.endswith(".samples"):
                value = str(int(samples)).encode()
                out += data[i : k + 1] + struct.pack("<i", len(value)) + value
            else:
                out += data[i:end]
            i = end
        out.append(0)
        i += 1
    if i < heads[0].end:  # a multi-part file: the empty header that ends the list
        out.append(0)
        i += 1
    delta = len(out) - i
    for part in heads:
        _x0, y0, _x1, y1 = part.data_window
        chunks = part.ints.get("chunkCount") or -(-(y1 - y0 + 1) // lines_per_chunk(part.compression))
        offsets = struct.unpack_from(f"<{chunks}Q", data, i)
        out += struct.pack(f"<{chunks}Q", *(off + delta for off in offsets))
        i += 8 * chunks
    return bytes(out + data[i:])
