"""The panel's "Split still across N machines" option: its row, its one-line refusal,
and what it puts into the submission's options.

The row shows when the frames to render are one frame (a still) or a short list (each
frame is split), and whenever the option is on (so a refusal is never hidden). The
refusal is the CLI's (``still_split.check_request``, worded for the panel), drawn before
anything is packed; the Render button runs the same check on the snapshot and stops there.
Drawing only reads properties and counts frames (cached), so it stays cheap.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..core.errors import FrameRangeError
from ..core.frames import parse_frames
from ..core.still_split import MAX_FRAMES, StillSplitError, check_request
from .textfit import draw_lines


@lru_cache(maxsize=16)
def _listed_count(text: str, step: int) -> int:
    """How many frames a Frame List names; -1 when it cannot be read (its own field says why)."""
    try:
        return len(parse_frames(text, step))
    except FrameRangeError:
        return -1


def frame_count(scene: Any) -> int:
    """The number of frames the Render button would render (-1: an unreadable Frame List)."""
    s = scene.awsbatch
    if s.use_frames_override:
        return _listed_count(s.frames.strip(), max(1, scene.frame_step))
    if scene.frame_end < scene.frame_start:
        return 0
    return (scene.frame_end - scene.frame_start) // max(1, scene.frame_step) + 1


def split_parts(scene: Any) -> int:
    """``SubmitOptions.split_samples``: the machines per frame, 0 when the option is off."""
    s = scene.awsbatch
    return int(s.split_parts) if s.split_still else 0


def refusal(scene: Any) -> str:
    """Why the split cannot run as set, in one line; "" when it can (or is off)."""
    parts = split_parts(scene)
    count = frame_count(scene)
    if parts < 2 or count < 0:
        return ""
    cycles = getattr(scene, "cycles", None)
    samples = int(getattr(cycles, "samples", 0) or 0)
    try:
        check_request(parts, scene.render.engine, range(count), samples, panel=True)
    except StillSplitError as exc:
        return str(exc)
    return ""


def check_submission(snapshot: Any, options: Any) -> None:
    """On Render: the CLI's check on the snapshot (engine, samples, frames), before packing."""
    if options.split_samples < 2:
        return
    from ..core.submit.specbuild import scene_frames

    samples = int(snapshot.facts.get("cycles_samples", 0))
    frames = scene_frames(snapshot, options.frames)
    check_request(options.split_samples, snapshot.engine, frames, samples, panel=True)


def draw(layout: Any, scene: Any, width: float) -> None:
    """The option's row (when it applies) and, under it, its refusal."""
    s = scene.awsbatch
    count = frame_count(scene)
    if not (0 < count <= MAX_FRAMES or s.split_still):
        return
    col = layout.column()
    row = col.row(align=True, heading="Split Still" if count == 1 else "Split Each Frame")
    row.prop(s, "split_still", text="")
    sub = row.row(align=True)
    sub.active = s.split_still
    sub.use_property_split = False  # "Machines 4" inside the field, beside the checkbox
    sub.prop(s, "split_parts")
    problem = refusal(scene)
    if problem:
        draw_lines(col, problem, "ERROR", width)
