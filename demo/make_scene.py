"""Generate a small animated sample scene with bpy (no binary .blend is committed).

Run with a Python that has the ``bpy`` module (or ``blender -b --python``):

    python demo/make_scene.py OUT.blend [--frames 24] [--size 64x36] [--engine CYCLES]
        [--samples 4] [--no-camera] [--texture PATH] [--fps 24]

A camera, a sun light, a ground plane and a cube that moves and turns over the frame
range. Works on Blender 4.2+ and 5.x (engine ids differ; see ``engine_id``).
"""

from __future__ import annotations

import argparse
import math
import sys

import bpy


def engine_id(name: str) -> str:
    """EEVEE is BLENDER_EEVEE_NEXT in 4.2-4.5 and BLENDER_EEVEE in 5.x."""
    if name.upper() in ("EEVEE", "BLENDER_EEVEE", "BLENDER_EEVEE_NEXT"):
        return "BLENDER_EEVEE_NEXT" if bpy.app.version < (5, 0, 0) else "BLENDER_EEVEE"
    if name.upper() in ("WORKBENCH", "BLENDER_WORKBENCH"):
        return "BLENDER_WORKBENCH"
    return "CYCLES"


def build(args: argparse.Namespace) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.name = "Demo"
    scene.frame_start = 1
    scene.frame_end = args.frames
    scene.render.fps = args.fps
    scene.render.fps_base = 1.0
    width, height = (int(v) for v in args.size.lower().split("x"))
    scene.render.resolution_x = width
    scene.render.resolution_y = height
    scene.render.resolution_percentage = 100
    scene.render.engine = engine_id(args.engine)
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = "//render/demo_"
    if scene.render.engine == "CYCLES":
        scene.cycles.samples = args.samples
        scene.cycles.use_denoising = False
        scene.cycles.device = "CPU"

    world = bpy.data.worlds.new("World")
    world.color = (0.05, 0.07, 0.1)
    scene.world = world

    ground_mesh = bpy.data.meshes.new("Ground")
    ground_mesh.from_pydata([(-6, -6, 0), (6, -6, 0), (6, 6, 0), (-6, 6, 0)], [], [(0, 1, 2, 3)])
    ground = bpy.data.objects.new("Ground", ground_mesh)
    scene.collection.objects.link(ground)

    cube_mesh = bpy.data.meshes.new("Cube")
    v = [(x, y, z) for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (0, 1)]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    cube_mesh.from_pydata(v, [], faces)
    cube = bpy.data.objects.new("Cube", cube_mesh)
    scene.collection.objects.link(cube)
    material = bpy.data.materials.new("CubeMaterial")
    material.diffuse_color = (0.9, 0.3, 0.1, 1.0)
    if args.texture:
        material.use_nodes = True
        tree = material.node_tree
        tex = tree.nodes.new("ShaderNodeTexImage")
        tex.image = bpy.data.images.load(args.texture, check_existing=True)
        bsdf = next(n for n in tree.nodes if n.type == "BSDF_PRINCIPLED")
        tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    cube_mesh.materials.append(material)
    for frame, x, angle in ((1, -2.5, 0.0), (args.frames, 2.5, math.pi)):
        scene.frame_set(frame)
        cube.location = (x, 0.0, 0.0)
        cube.rotation_euler = (0.0, 0.0, angle)
        cube.keyframe_insert("location")
        cube.keyframe_insert("rotation_euler")
    scene.frame_set(1)

    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (math.radians(40), math.radians(20), 0.0)
    scene.collection.objects.link(sun)

    if not args.no_camera:
        cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
        cam.location = (0.0, -9.0, 4.0)
        cam.rotation_euler = (math.radians(70), 0.0, 0.0)
        scene.collection.objects.link(cam)
        scene.camera = cam

    bpy.ops.wm.save_as_mainfile(filepath=args.out, compress=args.compress)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--size", default="64x36")
    parser.add_argument("--engine", default="CYCLES")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--texture", default="")
    parser.add_argument("--no-camera", action="store_true")
    parser.add_argument("--compress", action="store_true")
    build(parser.parse_args(argv))


if __name__ == "__main__":
    # Under `blender -b --python`, our arguments follow '--'.
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    main(argv)
