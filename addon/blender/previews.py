"""Thumbnails of the latest rendered frame, through ``bpy.utils.previews``.

Main thread only. The image file is fetched by a background thread (``tasks.fetch_preview``);
here it is only loaded as an icon.
"""

from __future__ import annotations

from typing import Any

import bpy.utils.previews

_collection: Any = None


def icon_for(key: str, path: str) -> int:
    """The icon id of ``path`` under ``key`` (loaded once per key)."""
    global _collection
    if _collection is None:
        _collection = bpy.utils.previews.new()
    if key not in _collection:
        _collection.load(key, path, "IMAGE")
    return _collection[key].icon_id


def clear() -> None:
    global _collection
    if _collection is not None:
        bpy.utils.previews.remove(_collection)
        _collection = None


def loaded() -> bool:
    return _collection is not None
