"""The Blender side: the only package of the add-on that imports bpy."""

from __future__ import annotations


def register() -> None:
    pass


def unregister() -> None:
    pass
