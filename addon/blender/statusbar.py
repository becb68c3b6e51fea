"""Progress visible from any workspace: an item in Blender's status bar for the newest
unfinished submission (frames done/total, ETA, state), the way Blender's extension
manager shows its background work, and a short report there when a submission ends.

Drawn by appending to ``STATUSBAR_HT_header``; the status timer redraws the status bar
with the panels. Main thread only.
"""

from __future__ import annotations

import time
from typing import Any

import bpy

from ..core.backends.status import format_duration
from . import job_rows

ANNOUNCE_S = 20.0  # how long "finished"/"failed" stays in the status bar


class _Last:
    text = ""
    icon = "INFO"
    until = 0.0


LAST = _Last()


def item_text(rt: Any) -> tuple[str, str, float] | None:
    """(text, icon, fraction) for the status bar, or None when there is nothing to show."""
    if rt.submitting:
        return f"AWS Batch: {rt.submit_message or 'Packing…'}", "EXPORT", rt.submit_fraction
    running = job_rows.unfinished(rt)
    if running:
        row = running[0]  # rows are newest first
        eta = "" if row.eta < 0 else f" · ETA {format_duration(row.eta)}"
        return f"{row.frames_done}/{row.frames_total}{eta} · {row.state.title()}", "RENDER_ANIMATION", row.fraction
    if LAST.text and time.monotonic() < LAST.until:
        return LAST.text, LAST.icon, -1.0
    return None


def draw(self: Any, context: Any) -> None:
    wm = context.window_manager
    rt = getattr(wm, "awsbatch", None) if wm is not None else None
    if rt is None:
        return
    item = item_text(rt)
    if item is None:
        return
    text, icon, fraction = item
    row = self.layout.row(align=True)
    if fraction >= 0:
        row.label(text="", icon=icon)
        row.progress(factor=fraction, type="BAR", text=text)
    else:
        row.label(text=text, icon=icon)


def announce(row: Any) -> None:
    """A submission just ended: say so in the status bar for :data:`ANNOUNCE_S` seconds."""
    name = job_rows.short_name(row)
    if row.state == "SUCCEEDED":
        LAST.text, LAST.icon = f"{name}: finished, {row.frames_done} frames", "CHECKMARK"
    else:
        LAST.text, LAST.icon = f"{name}: {row.state.lower()}", "ERROR" if row.state == "FAILED" else "CANCEL"
    LAST.until = time.monotonic() + ANNOUNCE_S


def register() -> None:
    bpy.types.STATUSBAR_HT_header.append(draw)


def unregister() -> None:
    bpy.types.STATUSBAR_HT_header.remove(draw)
