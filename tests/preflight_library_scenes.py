"""Linked-library scenes for the preflight tests, run by preflight_scenes.py (KIND
``nested`` and ``nested_moved``, described there)."""

import os

import bpy
from preflight_scenes import base, camera, obj


def nested(scene, out):
    """ROOT/shots/seq/scene.blend links ROOT/lib/chars/char.blend, which links
    ROOT/lib/props/prop.blend (relative to itself), whose material uses tex/wood.png."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(out))))

    def save(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=path, relative_remap=True)

    def link(path, names, into):
        with bpy.data.libraries.load(path, link=True, relative=True) as (_src, dst):
            dst.objects = names
        for o in dst.objects:
            into.objects.link(o)

    os.makedirs(f"{root}/lib/props/tex", exist_ok=True)
    img = bpy.data.images.new("wood", 4, 4)
    img.filepath_raw, img.file_format = f"{root}/lib/props/tex/wood.png", "PNG"
    img.save()
    mat = bpy.data.materials.new("Wood")
    mat.use_nodes = True
    mat.node_tree.nodes.new("ShaderNodeTexImage").image = bpy.data.images.load(f"{root}/lib/props/tex/wood.png")
    o = obj(scene, "Prop")
    o.data.materials.append(mat)
    save(f"{root}/lib/props/prop.blend")
    bpy.ops.file.make_paths_relative()
    save(f"{root}/lib/props/prop.blend")
    scene = base()
    save(f"{root}/lib/chars/char.blend")
    coll = bpy.data.collections.new("CharColl")
    scene.collection.children.link(coll)
    link(f"{root}/lib/props/prop.blend", ["Prop"], coll)
    coll.objects.link(bpy.data.objects.new("Char", None))
    save(f"{root}/lib/chars/char.blend")
    scene = base()
    camera(scene)
    save(out)
    with bpy.data.libraries.load(f"{root}/lib/chars/char.blend", link=True, relative=True) as (_src, dst):
        dst.collections = ["CharColl"]
    scene.collection.children.link(dst.collections[0])


def nested_moved(out):
    """ROOT/shots/seq/sh010/scene.blend links ROOT/lib/chars/char.blend, which links
    ROOT/lib/props/prop.blend as '//../props/prop.blend'; prop.blend's texture is
    '//tex/wood.png'. The props folder was ROOT/lib/props_old when the main file was saved:
    its own record of the indirect library is stale, Blender finds it through char.blend."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(out))))

    def save(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        bpy.ops.wm.save_as_mainfile(filepath=path, relative_remap=True)

    def char_linking(props):
        scene = base()
        save(f"{root}/lib/chars/char.blend")
        coll = bpy.data.collections.new("CharColl")
        scene.collection.children.link(coll)
        with bpy.data.libraries.load(f"{props}/prop.blend", link=True, relative=True) as (_src, dst):
            dst.objects = ["Prop"]
        coll.objects.link(dst.objects[0])
        save(f"{root}/lib/chars/char.blend")

    old = f"{root}/lib/props_old"
    os.makedirs(f"{old}/tex", exist_ok=True)
    scene = base()
    img = bpy.data.images.new("wood", 4, 4)
    img.filepath_raw, img.file_format = f"{old}/tex/wood.png", "PNG"
    img.save()
    mat = bpy.data.materials.new("Wood")
    mat.use_nodes = True
    mat.node_tree.nodes.new("ShaderNodeTexImage").image = img
    obj(scene, "Prop").data.materials.append(mat)
    save(f"{old}/prop.blend")
    bpy.ops.file.make_paths_relative()
    save(f"{old}/prop.blend")
    char_linking(old)
    scene = base()
    camera(scene)
    save(out)
    with bpy.data.libraries.load(f"{root}/lib/chars/char.blend", link=True, relative=True) as (_src, dst):
        dst.collections = ["CharColl"]
    scene.collection.children.link(dst.collections[0])
    save(out)
    os.rename(old, f"{root}/lib/props")
    char_linking(f"{root}/lib/props")
