"""What a *done* frame is: the one definition shared by the worker (upload, resume), the
stitch, both backends' status and ``retry``. Part of the add-on/worker contract.

A frame is done when its object has the frame's name, is a regular file (never a link)
and is a valid image of its format with the spec's pixel size:

* :func:`check_frame_bytes` checks bytes already in hand (the worker reads a frame once,
  checks it, uploads the same bytes): PNG signature, every chunk and its CRC, IHDR size,
  and the IDAT zlib stream decoded to exactly the size the header promises; JPEG and EXR
  structure (markers / header attributes, the chunk offset table inside the file);
* :func:`check_frame_file` checks a file in place without reading its pixels (a few
  ``pread`` calls on the chunk headers): the stitch uses it before ffmpeg, which decodes
  every frame itself with ``-xerror``, so no frame is read twice;
* :func:`listed_frame_done` is what a listing alone can tell (name, size at least the
  smallest valid image): status refreshes stay one listing, and since the worker never
  uploads an invalid frame, a listed frame is a checked one unless damaged afterwards,
  which ``retry`` finds by checking the files again.
"""

from __future__ import annotations

import os
import struct
import zlib

#: the smallest possible valid file of each format (a 1x1 image)
MIN_FRAME_BYTES = {"PNG": 67, "JPEG": 125, "OPEN_EXR": 100}

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXR_MAGIC = b"\x76\x2f\x31\x01"
#: scanlines per chunk by EXR compression id (NO, RLE, ZIPS, ZIP, PIZ, PXR24, B44, B44A, DWAA, DWAB)
EXR_LINES = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


class FrameInvalid(ValueError):
    """A frame file is not a valid image of the expected format and size; str() says why."""


def listed_frame_done(size: int, image_format: str) -> bool:
    """What a listing can tell about a frame: big enough to be a valid image."""
    return size >= MIN_FRAME_BYTES.get(image_format, 1)


def check_frame_bytes(data: bytes, image_format: str, width: int = 0, height: int = 0) -> tuple[int, int]:
    """Raise :class:`FrameInvalid` unless ``data`` is a whole, valid image of ``width`` x
    ``height`` (0 = any size). PNG pixels are decompressed; JPEG and EXR structure is walked."""
    return _check(_BytesReader(data), image_format, width, height, decode=True)


def check_frame_file(
    path: str | os.PathLike[str], image_format: str, width: int = 0, height: int = 0
) -> tuple[int, int]:
    """Raise :class:`FrameInvalid` unless ``path`` is a regular file (a link is refused, never
    followed) holding a structurally whole image of the expected size; pixels are not read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if os.path.islink(path):
            raise FrameInvalid("is a symbolic link (refused: frames must be regular files)") from None
        raise FrameInvalid(f"cannot be read ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not _is_regular(st.st_mode):
            raise FrameInvalid("is not a regular file")
        return _check(_FileReader(fd, st.st_size), image_format, width, height, decode=False)
    finally:
        os.close(fd)


def read_checked_frame(path: str | os.PathLike[str], image_format: str, width: int = 0, height: int = 0) -> bytes:
    """Read a frame once (a link is refused) and check those bytes; returns them for upload."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if os.path.islink(path):
            raise FrameInvalid("is a symbolic link (refused: frames must be regular files)") from None
        raise FrameInvalid(f"cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as fh:
        if not _is_regular(os.fstat(fh.fileno()).st_mode):
            raise FrameInvalid("is not a regular file")
        data = fh.read()
    check_frame_bytes(data, image_format, width, height)
    return data


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def read(self, offset: int, n: int) -> bytes:
        return self.data[offset : offset + n]


class _FileReader:
    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size

    def read(self, offset: int, n: int) -> bytes:
        return os.pread(self.fd, n, offset)


def _check(r: _BytesReader | _FileReader, image_format: str, width: int, height: int, decode: bool) -> tuple[int, int]:
    if r.size == 0:
        raise FrameInvalid("is empty (0 bytes)")
    if r.size < MIN_FRAME_BYTES.get(image_format, 1):
        raise FrameInvalid(f"is only {r.size} bytes, too small for a {image_format} image")
    if image_format == "PNG":
        w, h = _check_png(r, decode)
    elif image_format == "JPEG":
        w, h = _check_jpeg(r)
    elif image_format == "OPEN_EXR":
        w, h = _check_exr(r)
    else:
        raise FrameInvalid(f"has an unknown image format {image_format!r}")
    if width and height and (w, h) != (width, height):
        raise FrameInvalid(f"is {w}x{h} pixels, not the {width}x{height} the job asked for")
    return w, h


def _check_png(r: _BytesReader | _FileReader, decode: bool) -> tuple[int, int]:
    if r.read(0, 8) != PNG_SIGNATURE:
        raise FrameInvalid("is not a PNG image (wrong signature)")
    pos, w, h, raw_size = 8, 0, 0, -1
    inflater = zlib.decompressobj() if decode else None
    inflated = 0
    seen_idat = False
    while True:
        head = r.read(pos, 8)
        if len(head) < 8:
            raise FrameInvalid(f"is truncated at byte {pos} of {r.size} (PNG chunk cut short, no IEND)")
        length, kind = struct.unpack(">I4s", head)
        end = pos + 12 + length
        if end > r.size:
            raise FrameInvalid(f"is truncated: a PNG {kind!r} chunk needs {end} bytes, the file has {r.size}")
        if pos == 8 and kind != b"IHDR":
            raise FrameInvalid("is corrupt (the first PNG chunk is not IHDR)")
        if kind == b"IHDR" or decode:
            body = r.read(pos + 4, 4 + length)  # type + data, what the CRC covers
            (crc,) = struct.unpack(">I", r.read(pos + 8 + length, 4))
            if zlib.crc32(body) != crc:
                raise FrameInvalid(f"is corrupt (bad CRC in PNG chunk {kind!r} at byte {pos})")
            if kind == b"IHDR":
                w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body[4:17])
                channels = _PNG_CHANNELS.get(color, 0)
                if interlace == 0 and channels:
                    raw_size = h * (1 + (w * channels * depth + 7) // 8)
            elif kind == b"IDAT" and inflater is not None:
                seen_idat = True
                try:
                    inflated += len(inflater.decompress(body[4:]))
                except zlib.error as exc:
                    raise FrameInvalid(f"is corrupt (PNG pixel data does not decode: {exc})") from None
        elif kind == b"IDAT":
            seen_idat = True
        pos = end
        if kind == b"IEND":
            break
    if not w or not h or not seen_idat:
        raise FrameInvalid("is corrupt (PNG without size or pixel data)")
    if inflater is not None and raw_size >= 0:
        inflated += len(inflater.flush())
        if not inflater.eof or inflated != raw_size:
            raise FrameInvalid(f"is corrupt (PNG pixel data decodes to {inflated} bytes, not {raw_size})")
    return w, h


def _check_jpeg(r: _BytesReader | _FileReader) -> tuple[int, int]:
    if r.read(0, 3) != b"\xff\xd8\xff":
        raise FrameInvalid("is not a JPEG image (wrong signature)")
    if r.read(r.size - 2, 2) != b"\xff\xd9":
        raise FrameInvalid("is truncated (the JPEG has no end marker)")
    pos, size = 2, None
    while pos + 4 <= r.size:
        marker, length = struct.unpack(">2sH", r.read(pos, 4))
        if marker[0] != 0xFF:
            raise FrameInvalid(f"is corrupt (no JPEG marker at byte {pos})")
        if marker[1] in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            h, w = struct.unpack(">HH", r.read(pos + 5, 4))
            size = (w, h)
        if marker[1] == 0xDA:  # start of scan: the entropy-coded data follows
            break
        pos += 2 + length
    if size is None or not all(size):
        raise FrameInvalid("is corrupt (JPEG without a frame header before its data)")
    return size


def _check_exr(r: _BytesReader | _FileReader) -> tuple[int, int]:
    if r.read(0, 4) != EXR_MAGIC:
        raise FrameInvalid("is not an OpenEXR image (wrong signature)")
    (flags,) = struct.unpack("<I", r.read(4, 4))
    pos, attrs = 8, {}
    head = r.read(8, min(r.size - 8, 1 << 16))
    try:
        while True:
            name_end = head.index(b"\0", pos - 8)
            name = head[pos - 8 : name_end]
            pos = name_end + 1 + 8
            if not name:
                break
            type_end = head.index(b"\0", pos - 8)
            pos = type_end + 1 + 8
            (length,) = struct.unpack("<i", head[pos - 8 : pos - 4])
            pos += 4
            attrs[name] = head[pos - 8 : pos - 8 + length]
            pos += length
    except (ValueError, struct.error):
        raise FrameInvalid("is corrupt or truncated (unreadable OpenEXR header)") from None
    window = attrs.get(b"dataWindow", b"")
    if len(window) != 16:
        raise FrameInvalid("is corrupt (OpenEXR header without a data window)")
    x0, y0, x1, y1 = struct.unpack("<iiii", window)
    w, h = x1 - x0 + 1, y1 - y0 + 1
    if w <= 0 or h <= 0:
        raise FrameInvalid("is corrupt (empty OpenEXR data window)")
    compression = attrs.get(b"compression", b"\0")[0]
    if flags & 0x1200 or compression not in EXR_LINES:  # tiled / multi-part / unknown codec: bounds only
        return w, h
    chunks = -(-h // EXR_LINES[compression])
    table = r.read(pos, 8 * chunks)
    if len(table) < 8 * chunks:
        raise FrameInvalid("is truncated (OpenEXR offset table cut short)")
    offsets = struct.unpack(f"<{chunks}Q", table)
    last = max(offsets)
    if min(offsets) < pos + 8 * chunks or last + 8 > r.size:
        raise FrameInvalid("is truncated or corrupt (OpenEXR chunk offsets point outside the file)")
    (data_size,) = struct.unpack("<i", r.read(last + 4, 4))
    if data_size < 0 or last + 8 + data_size > r.size:
        raise FrameInvalid(f"is truncated (the last OpenEXR chunk ends past the file's {r.size} bytes)")
    return w, h
