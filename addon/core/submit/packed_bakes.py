"""Which Geometry Nodes simulations a saved .blend holds packed bakes for.

Blender (4.2+) packs bakes into the .blend by default, and its Python API does not say
whether a packed bake exists: the scene facts leave those simulations' ``baked`` as None
(unknown). When the scene is the file on disk (the command line, or the add-on's file with
no unsaved edits), this reads the file's modifiers with blender-asset-tracer and settles
them: a bake with packed data is baked, one without is not. No bpy; reads the file only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def packed_bakes(blend: str | Path) -> set[tuple[str, int]] | None:
    """``("Object / Modifier", bake id)`` of every Geometry Nodes bake with packed data in
    ``blend``'s own objects; None when the file cannot be read."""
    from blender_asset_tracer import blendfile
    from blender_asset_tracer.blendfile import iterators

    found: set[tuple[str, int]] = set()
    try:
        bfile = blendfile.BlendFile(Path(blend))
    except Exception as exc:  # not a file BAT reads: the facts stay unknown
        log.info("cannot read %s for packed bakes: %s", blend, exc)
        return None
    try:
        for ob in bfile.find_blocks_from_code(b"OB"):
            name = (ob.id_name or b"OB")[2:].decode("utf-8", "replace")
            for mod in iterators.modifiers(ob):
                if mod.dna_type.dna_type_id != b"NodesModifierData":
                    continue
                bakes = mod.get_pointer(b"bakes", default=None)
                owner = f"{name} / {mod.get((b'modifier', b'name'), as_str=True)}"
                for i in range(int(mod.get(b"bakes_num", default=0)) if bakes is not None else 0):
                    if bakes.get(b"packed", array_index=i, default=0):
                        found.add((owner, int(bakes.get(b"id", array_index=i))))
    except Exception as exc:
        log.info("cannot read the modifiers of %s: %s", blend, exc)
        return None
    finally:
        bfile.close()
    return found


def settle_packed_bakes(snapshot: Any) -> None:
    """Settle the unknown packed bakes of ``snapshot``'s simulations from its saved file,
    in place; a scene with unsaved edits, or a linked object, stays unknown."""
    facts = snapshot.facts or {}
    unknown = [
        s for s in facts.get("simulations") or []
        if s["kind"] == "geometry_nodes" and s["baked"] is None and s.get("bake_id") is not None and not s.get("linked")
    ]  # fmt: skip
    if not unknown or not snapshot.blend_path or snapshot.is_dirty:
        return
    packed = packed_bakes(snapshot.blend_path)
    if packed is None:
        return
    for sim in unknown:
        sim["baked"] = (sim["owner"], sim["bake_id"]) in packed
