"""What the preflight checks need to know about a scene, read with bpy as plain data.

:func:`gather_facts` runs where the snapshot is taken (in the add-on, or in the child
Blender the command line starts to read the scene: no second Blender start) and returns
a JSON-able dict. The checks themselves live in ``addon/core/submit/preflight.py``,
without bpy. Runs on Blender's main thread only.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterator
from typing import Any

import bpy

#: node classes Blender defines itself live here; add-ons define theirs in their own modules
_BUILTIN_MODULES = ("bpy.types", "bl_operators", "nodeitems_builtins", "bl_ui")
_SIM_OUTPUT = "GeometryNodeSimulationOutput"


def gather_facts(scene: Any) -> dict[str, Any]:
    return {
        "sequencer": renders_sequencer(scene),
        "camera_objects": sorted(o.name for o in scene.objects if o.type == "CAMERA"),
        "simulations": list(_simulations(scene)),
        "python_drivers": sorted(set(_python_drivers())),
        "scripts": sorted(t.name for t in bpy.data.texts if t.use_module),
        "addon_nodes": sorted(set(_addon_nodes())),
        "addon_props": sorted(set(_addon_props())),
        # frames come out the size of the border, not the resolution: the worker checks no size
        "crop_to_border": bool(scene.render.use_border and scene.render.use_crop_to_border),
        # a still split by samples has at most one part per sample
        "cycles_samples": int(getattr(getattr(scene, "cycles", None), "samples", 0) or 0),
    }


def renders_sequencer(scene: Any) -> bool:
    """Blender renders the sequencer instead of the camera when 'Sequencer' is on in the
    post-processing settings and a strip other than sound sits in the top level."""
    editor = scene.sequence_editor
    if not scene.render.use_sequencer or editor is None:
        return False
    strips = getattr(editor, "strips", None)  # 5.0 renamed 'sequences' to 'strips'
    if strips is None:
        strips = editor.sequences
    return any(s.type != "SOUND" for s in strips)


def _cache(kind: str, owner: str, cache: Any) -> dict[str, Any]:
    return {
        "kind": kind, "owner": owner, "baked": bool(cache.is_baked),
        "frame_start": int(cache.frame_start), "frame_end": int(cache.frame_end),
    }  # fmt: skip


def _simulations(scene: Any) -> Iterator[dict[str, Any]]:
    world = scene.rigidbody_world
    if world is not None and world.enabled and world.collection is not None and world.point_cache is not None:
        yield _cache("rigid_body", "Rigid Body World", world.point_cache)
    for obj in scene.objects:
        for mod in obj.modifiers:
            owner = f"{obj.name} / {mod.name}"
            if mod.type == "FLUID" and mod.fluid_type == "DOMAIN":
                d = mod.domain_settings
                yield {
                    "kind": "fluid", "owner": owner, "baked": bool(d.has_cache_baked_data),
                    "frame_start": int(d.cache_frame_start), "frame_end": int(d.cache_frame_end),
                }  # fmt: skip
            elif mod.type in ("CLOTH", "SOFT_BODY"):
                yield _cache(mod.type.lower(), owner, mod.point_cache)
            elif mod.type == "NODES" and mod.node_group is not None:
                yield from _node_bakes(scene, obj, mod, owner)
        for psys in obj.particle_systems:
            settings = psys.settings
            if settings.type == "HAIR" and not psys.use_hair_dynamics:
                continue  # static hair has nothing to simulate
            if settings.physics_type == "NO":
                continue
            yield _cache("particles", f"{obj.name} / {psys.name}", psys.point_cache)


def _has_sim_zone(tree: Any, seen: set[str]) -> bool:
    if tree is None or tree.name in seen:
        return False
    seen.add(tree.name)
    for node in tree.nodes:
        if node.bl_idname == _SIM_OUTPUT:
            return True
        if getattr(node, "node_tree", None) is not None and _has_sim_zone(node.node_tree, seen):
            return True
    return False


def _node_bakes(scene: Any, obj: Any, mod: Any, owner: str) -> Iterator[dict[str, Any]]:
    """Simulation zones of a Geometry Nodes modifier, baked when its bake folder holds data.
    Packed bakes keep no trace readable from Python: ``baked`` is None (unknown) for them."""
    if not _has_sim_zone(mod.node_group, set()):
        return
    bakes = [b for b in mod.bakes if b.node is None or b.node.bl_idname == _SIM_OUTPUT] or [None]
    for bake in bakes:
        start, end = scene.frame_start, scene.frame_end
        target = getattr(mod, "bake_target", "DISK")
        if bake is not None:
            if bake.use_custom_simulation_frame_range:
                start, end = bake.frame_start, bake.frame_end
            if bake.bake_target != "INHERIT":
                target = bake.bake_target
        yield {
            "kind": "geometry_nodes", "owner": owner, "baked": _gn_baked(obj, mod, bake, target),
            "frame_start": int(start), "frame_end": int(end),
            # to find a packed bake in the saved file (addon/core/submit/packed_bakes.py)
            "bake_id": None if bake is None else int(bake.bake_id), "linked": obj.library is not None,
        }  # fmt: skip


def _gn_baked(obj: Any, mod: Any, bake: Any, target: str) -> bool | None:
    if bake is None:
        return False
    if target == "PACKED":
        return None
    folder = bake.directory if bake.use_custom_path else os.path.join(mod.bake_directory, str(bake.bake_id))
    if not folder:
        return False
    meta = os.path.join(bpy.path.abspath(folder, library=obj.library), "meta")
    return bool(glob.glob(os.path.join(glob.escape(meta), "*.json")))


def _python_drivers() -> Iterator[str]:
    """Data-blocks with drivers whose expression needs Python (not Blender's simple
    expression evaluator): without auto-run they are disabled. A material's (world's,
    light's, scene's) own node tree keeps the drivers of its node inputs: named after it."""
    collections = (
        bpy.data.objects, bpy.data.meshes, bpy.data.materials, bpy.data.shape_keys, bpy.data.cameras,
        bpy.data.lights, bpy.data.scenes, bpy.data.worlds, bpy.data.node_groups, bpy.data.armatures,
        bpy.data.curves, bpy.data.particles, bpy.data.textures, bpy.data.lattices,
    )  # fmt: skip
    for coll in collections:
        for idb in coll:
            embedded = getattr(idb, "node_tree", None) if coll is not bpy.data.node_groups else None
            for holder in (idb, embedded):
                if holder is not None and _has_python_driver(getattr(holder, "animation_data", None)):
                    yield idb.name
                    break


def _has_python_driver(anim: Any) -> bool:
    if anim is None:
        return False
    return any(f.driver.type == "SCRIPTED" and not f.driver.is_simple_expression for f in anim.drivers)


def _addon_nodes() -> Iterator[str]:
    """Nodes (and node trees) whose type an add-on defines, or that Blender could not
    resolve because the add-on is missing here."""
    trees = [m.node_tree for m in bpy.data.materials if m.node_tree is not None]
    trees += [w.node_tree for w in bpy.data.worlds if w.node_tree is not None]
    trees += list(bpy.data.node_groups)
    for tree in trees:
        owner = tree.name if tree.library is None else f"{tree.name} ({tree.library.name})"
        if _from_addon(type(tree)) or tree.bl_idname in ("", "NodeTreeUndefined"):
            yield f"{owner}: tree type {tree.bl_idname or 'unknown'}"
            continue
        for node in tree.nodes:
            if node.bl_idname == "NodeUndefined" or _from_addon(type(node)):
                yield f"{owner}: {node.name} ({node.bl_idname})"


def _from_addon(cls: type) -> bool:
    return not cls.__module__.startswith(_BUILTIN_MODULES)


#: data-blocks whose add-on settings can change a render (the kinds add-ons store them on)
_PROP_HOLDERS = (
    "scenes", "objects", "meshes", "materials", "worlds", "cameras", "lights", "collections",
    "node_groups", "images", "textures", "curves",
)  # fmt: skip


def _addon_props() -> Iterator[str]:
    """Data-blocks holding settings of add-ons the worker (a factory-settings Blender) does
    not have, as 'Kind Name: prop, ...'. Stored, not registered here: the add-on is missing
    (Blender 5 keeps add-on settings apart from custom properties; 4.x mixes them, so there
    only property groups count). Registered here: a property group whose class an add-on
    outside Blender's own scripts defines (this add-on's own settings excepted)."""
    registered: dict[type, dict[str, Any]] = {}
    ours = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    roots = [ours, os.path.realpath(bpy.utils.system_resource("SCRIPTS"))]
    for attr in _PROP_HOLDERS:
        for idb in getattr(bpy.data, attr, ()):
            rna = registered.setdefault(type(idb), dict(type(idb).bl_rna.properties.items()))
            names = sorted(_addon_keys(idb, rna, roots))
            if names:
                owner = idb.name if idb.library is None else f"{idb.name} ({idb.library.name})"
                yield f"{type(idb).__name__} {owner}: {', '.join(names)}"


def _addon_keys(idb: Any, rna: dict[str, Any], roots: list[str]) -> Iterator[str]:
    system = getattr(idb, "bl_system_properties_get", None)  # 5.0+
    stored = system() if system is not None else idb
    for key in stored.keys() if stored is not None else ():
        if key.split("_", 1)[0] == "cycles":
            continue  # Cycles (on every worker) leaves settings it no longer registers, e.g. on cameras
        prop = rna.get(key)
        if prop is None:
            if system is not None or hasattr(stored[key], "to_dict"):  # 4.x: property groups only
                yield key
        elif prop.type in ("POINTER", "COLLECTION") and prop.is_runtime:
            if _third_party(_group_class(idb, key), roots):
                yield key


def _group_class(idb: Any, key: str) -> type | None:
    value = getattr(idb, key, None)
    if isinstance(value, bpy.types.bpy_prop_collection):
        value = value[0] if len(value) else None
    return None if value is None else type(value)


def _third_party(cls: type | None, roots: list[str]) -> bool:
    """Whether a property group's class comes from an add-on outside ``roots`` (Blender's
    own scripts, which the worker has, and this add-on, whose settings the worker needs not)."""
    module = sys.modules.get(getattr(cls, "__module__", ""), None)
    path = getattr(module, "__file__", None)
    if not path:
        return False
    return not os.path.realpath(path).startswith(tuple(r + os.sep for r in roots))
