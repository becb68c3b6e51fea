"""A scene whose render needs memory, for the preflight memory tests, made with bpy in a
child Blender.

    memory_scene.py OUT.blend SIDE

One frame, Cycles at 1 sample and 32x18 pixels, a camera looking at a plane textured with a
generated (not saved: Blender makes it when the file loads) SIDE x SIDE float image: the
render holds it twice (Blender's image and Cycles' copy), 2 x SIDE² x 16 bytes.
"""

import sys

import bpy

out, side = sys.argv[sys.argv.index("--") + 1 if "--" in sys.argv else 1 :][:2]
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
scene.frame_start = scene.frame_end = 1
scene.render.engine = "CYCLES"
scene.cycles.samples = 1
scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 32, 18, 100

cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
cam.location = (0, 0, 3)
scene.collection.objects.link(cam)
scene.camera = cam

mesh = bpy.data.meshes.new("Plane")
mesh.from_pydata([(-1, -1, 0), (1, -1, 0), (1, 1, 0), (-1, 1, 0)], [], [(0, 1, 2, 3)])
uv = mesh.uv_layers.new()
for loop, co in zip(uv.data, ((0, 0), (1, 0), (1, 1), (0, 1)), strict=True):
    loop.uv = co
plane = bpy.data.objects.new("Plane", mesh)
scene.collection.objects.link(plane)

image = bpy.data.images.new("Big", int(side), int(side), float_buffer=True)
image.generated_type = "BLANK"
mat = bpy.data.materials.new("Big")
mat.use_nodes = True
tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
tex.image = image
bsdf = mat.node_tree.nodes["Principled BSDF"]
mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
mesh.materials.append(mat)
bpy.ops.wm.save_as_mainfile(filepath=out)
