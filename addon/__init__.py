"""AWS Batch Render: render the open Blender scene on AWS Batch Spot capacity.

This package is the Blender extension (``bl_ext.<repo>.aws_batch_render`` once
installed) and, outside Blender, a plain Python package: ``addon.core`` and
``addon.cli`` import without bpy. The bpy side is imported only when Blender calls
:func:`register`.
"""

from __future__ import annotations


def register() -> None:
    from . import blender  # lazy: keeps `import addon.core` free of bpy

    blender.register()


def unregister() -> None:
    from . import blender

    blender.unregister()
