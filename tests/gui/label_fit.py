"""Is any text the AWS Batch panels draw wider than the room Blender gives it?

The panels' ``draw`` is run again against a layout that records the tree of columns, rows,
boxes and items (instead of drawing), with the width Blender's layout engine gives each:
a column the whole width, a row an equal share per item (icon-only items one UI unit), a
box its width less padding, a ``use_property_split`` property 40 % for its label and 60 %
for its value. Each text is measured with Blender's own text measuring: ``blf.dimensions``
with the UI font (font 0) at the UI style's point size times the interface scale. A text
wider than its room minus padding (and an icon when it has one) is cut off by Blender
("Chunk Size (…", "scene-202…").

Used by the GUI tier's driver (tests/gui/drive.py, in a real Blender window) and by
tests/test_addon_labels.py (the bpy module, where blf measures with the same font).
"""

from __future__ import annotations

from typing import Any

import blf
import bpy

SPLIT_FACTOR = 0.4  # Blender's use_property_split label column


def ui_scale() -> float:
    return float(bpy.context.preferences.system.ui_scale or 1.0)


def text_width(text: str) -> float:
    style = bpy.context.preferences.ui_styles[0].widget
    blf.size(0, style.points * ui_scale())
    return blf.dimensions(0, text)[0]


class Node:
    """A layout (column, row, box) in the recorded tree, or one item in it."""

    def __init__(self, kind: str, parent: Node | None = None, **kw: Any) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "kw", kw)
        object.__setattr__(self, "children", [])
        object.__setattr__(self, "attrs", dict(parent.attrs) if parent is not None else {})

    def __setattr__(self, name: str, value: Any) -> None:
        self.attrs[name] = value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("kind", "kw", "children", "attrs"):
            raise AttributeError(name)

        def record(*args: Any, **kw: Any) -> Any:
            kind = {"column": "column", "row": "row", "box": "box", "split": "split", "grid_flow": "column",
                    "column_flow": "column"}.get(name, name)
            child = Node(kind, self, args=args, **kw)
            self.children.append(child)
            if name == "operator":
                return _OpProps()
            if name in ("panel", "panel_prop"):
                return (Node("column", self), Node("column", self))
            return child

        return record


class _OpProps:
    def __setattr__(self, name: str, value: Any) -> None:
        pass


def _item_text(node: Node) -> tuple[str, bool, str]:
    """(text, has_icon, role) of an item node; role 'prop' for properties."""
    kw = node.kw
    icon = bool(kw.get("icon") and kw.get("icon") != "NONE") or bool(kw.get("icon_value"))
    if node.kind == "operator":
        text = kw.get("text")
        if text is None:
            idname = node.kw["args"][0]
            mod, name = idname.split(".")
            text = getattr(getattr(bpy.ops, mod), name).get_rna_type().name
        return text, icon, "button"
    if node.kind == "prop":
        data, prop = node.kw["args"][:2]
        rna = data.bl_rna.properties[prop]
        text = kw.get("text", rna.name)
        return text, icon, "prop"
    if node.kind in ("label", "progress"):
        return str(kw.get("text", "")), icon, node.kind
    return "", False, node.kind


def _value_text(node: Node) -> str:
    data, prop = node.kw["args"][:2]
    rna = data.bl_rna.properties[prop]
    if rna.type == "ENUM":
        value = getattr(data, prop)
        return next((i.name for i in rna.enum_items if i.identifier == value), "")
    if rna.type == "STRING":
        return ""  # a field: long values scroll, that is not a cut label
    return ""


def measure(node: Node, width: float, out: list[dict]) -> None:
    s = ui_scale()
    unit = 20 * s
    if node.kind in ("column", "root"):
        for child in node.children:
            measure(child, width, out)
        return
    if node.kind == "box":
        for child in node.children:
            measure(child, width - 2 * 6 * s, out)
        return
    if node.kind == "split" and len(node.children) == 2:
        factor = float(node.kw.get("factor", 0.5) or 0.5)
        measure(node.children[0], width * factor, out)
        measure(node.children[1], width * (1 - factor), out)
        return
    if node.kind in ("row", "split"):
        items = node.children
        icon_only = [c for c in items if c.kind in ("operator", "prop", "label") and _item_text(c)[0] == ""
                     and _item_text(c)[1]]
        others = [c for c in items if c not in icon_only and c.kind not in ("separator", "separator_spacer")]
        share = (width - unit * len(icon_only)) / max(1, len(others))
        for child in others:
            measure(child, share, out)
        return
    text, icon, role = _item_text(node)
    is_bool = role == "prop" and node.kw["args"][0].bl_rna.properties[node.kw["args"][1]].type == "BOOLEAN"
    if is_bool and node.attrs.get("use_property_split"):
        # a checkbox goes into the value column with its text beside it (the label column
        # stays empty or holds the column's heading)
        _check(out, text, width * (1 - SPLIT_FACTOR) - 6 * s - unit - 4 * s, "checkbox " + node.kw["args"][1])
        return
    if role == "prop" and node.attrs.get("use_property_split") and node.kw.get("text", None) != "":
        label_room = width * SPLIT_FACTOR - 6 * s
        _check(out, text, label_room, "label of " + node.kw["args"][1])
        value = _value_text(node)
        if value:
            _check(out, value, width * (1 - SPLIT_FACTOR) - 6 * s - unit - 8 * s, "value of " + node.kw["args"][1])
        return
    if role == "prop":
        data, prop = node.kw["args"][:2]
        if data.bl_rna.properties[prop].type == "BOOLEAN":
            width -= unit  # the checkbox
    if not text:
        return
    room = width - (unit if icon else 0) - 8 * s
    _check(out, text, room, role)


def _check(out: list[dict], text: str, room: float, what: str) -> None:
    w = text_width(text)
    if w > room:
        out.append({"text": text, "width": round(w), "room": round(room), "what": what})


class _Self:
    def __init__(self, layout: Node) -> None:
        self.layout = layout


class _Region:
    def __init__(self, width: int) -> None:
        self.width = width


class _Context:
    """``bpy.context`` with a region of the width under test (timers have no region)."""

    def __init__(self, context: Any, width: int) -> None:
        self._context = context
        self.region = _Region(width)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def cut_labels(panel_module: Any, region_width: int, context: Any = None) -> list[dict]:
    """Texts of the AWS Batch panels that do not fit at ``region_width`` pixels."""
    context = _Context(context or bpy.context, region_width)
    margin = 2 * 17 * ui_scale()  # the panel's box and its content margins, left and right
    out: list[dict] = []
    for cls in panel_module.CLASSES:
        if not cls.poll(context):
            continue
        root = Node("root")
        cls.draw(_Self(root), context)
        measure(root, region_width - margin, out)
    return out

