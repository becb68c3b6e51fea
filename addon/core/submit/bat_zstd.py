"""Zstandard-compressed .blend files where the ``zstandard`` module is missing.

Blender 5 saves .blend files compressed with Zstandard by default (Preferences › Save &
Load › Compress File; Blender 3–4 did when that was on). blender-asset-tracer reads them
with the ``zstandard`` module, which Blender's own builds and the bpy wheel bundle, and
which distribution packages leave out: Debian's Blender 5.2 could not pack a scene it had
just saved ("File is compressed with ZStandard, install the `zstandard` module").

- Python 3.14 has Zstandard in its standard library (``compression.zstd``): there BAT is
  given a reader built on it.
- Elsewhere ``zstd_readable()`` is False: the add-on saves its copy of the scene
  uncompressed, and a compressed linked library gets one line that says what to do
  (:data:`UNREADABLE`).

BAT is imported on first use only. Runs on any thread; never touches bpy.
"""

from __future__ import annotations

from typing import Any, BinaryIO

UNREADABLE = (
    "{name} (or a library it links) is compressed with Zstandard, and this Blender's Python"
    " has no Zstandard reader (the `zstandard` module, bundled with Blender from blender.org):"
    " save the compressed file with Preferences › Save & Load › Compress File off, or use"
    " Blender from blender.org, then submit again."
)


class _StdlibZstandard:
    """The part of the ``zstandard`` module BAT uses (``ZstdDecompressor().stream_reader``),
    on Python 3.14's ``compression.zstd``."""

    def __init__(self, zstd: Any) -> None:
        self._zstd = zstd

    def ZstdDecompressor(self) -> _StdlibZstandard:  # the zstandard module's name
        return self

    def stream_reader(self, fileobj: BinaryIO) -> Any:
        return self._zstd.ZstdFile(fileobj, mode="rb")


def zstd_readable() -> bool:
    """Can BAT read a Zstandard-compressed .blend here? Gives BAT the standard library's
    reader when that is the only one. Idempotent."""
    from blender_asset_tracer.blendfile import magic_compression

    if magic_compression.has_zstandard:
        return True
    try:
        from compression import zstd  # Python 3.14+
    except ImportError:
        return False
    magic_compression.zstandard = _StdlibZstandard(zstd)
    magic_compression.has_zstandard = True
    return True


def is_unreadable_zstd(exc: BaseException) -> bool:
    """Is ``exc`` BAT's refusal of a Zstandard file for want of a reader?"""
    return isinstance(exc, OSError) and "ZStandard" in str(exc)
