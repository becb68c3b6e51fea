"""Scenes whose only camera is bound to a marker in the range, made with bpy in a child
Blender, each rendered once by Blender itself (Workbench, 16x16) to learn what it does.

    camera_scenes.py DIR

writes DIR/KIND.blend for each KIND in ``KINDS`` and DIR/blender.json: {KIND: rendered?}.
``hidden``: the camera object is disabled for render; ``excluded``: its collection is
excluded from the view layer; ``deleted``: the camera object was deleted (the marker keeps
no camera).
"""

import json
import os
import sys

import bpy

KINDS = ("hidden", "excluded", "deleted")


def scene_with_marker_camera(kind):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 2
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x = scene.render.resolution_y = 16
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    if kind == "excluded":
        col = bpy.data.collections.new("Cameras")
        scene.collection.children.link(col)
        col.objects.link(cam)
        bpy.context.view_layer.layer_collection.children["Cameras"].exclude = True
    else:
        scene.collection.objects.link(cam)
    scene.timeline_markers.new("shot", frame=1).camera = cam
    if kind == "hidden":
        cam.hide_render = True
    elif kind == "deleted":
        bpy.data.objects.remove(cam)
    return scene


out = sys.argv[sys.argv.index("--") + 1 if "--" in sys.argv else 1]
rendered = {}
for kind in KINDS:
    scene = scene_with_marker_camera(kind)
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(out, kind + ".blend"))
    scene.render.filepath = os.path.join(out, "render_" + kind)
    try:
        bpy.ops.render.render(write_still=True)
        rendered[kind] = True
    except RuntimeError:  # "Cannot render, no camera"
        rendered[kind] = False
with open(os.path.join(out, "blender.json"), "w") as f:
    json.dump(rendered, f)
