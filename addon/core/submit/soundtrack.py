"""The scene's sound for the video: mixed down in a child Blender at submit time and
packed as one more input (``_audio/soundtrack.wav``), which the stitch muxes in.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from .options import PackReport, SubmitOptions
from .packing import PackResult, sha256_file
from .scene import SceneSnapshot
from .scene_reader import SceneReadError, mixdown_audio
from .soundtrack_ffmpeg import mix_strips, plan_path
from .specbuild import scene_frames

log = logging.getLogger(__name__)


SOUNDTRACK = "_audio/soundtrack.wav"


def add_soundtrack(
    blend_copy: Path,
    snapshot: SceneSnapshot,
    options: SubmitOptions,
    packed: PackResult,
    report: PackReport,
    cancel: threading.Event,
) -> str | None:
    """Mix the scene's sound down into the pack (it rides along like any packed file) and
    return its relative path for the spec; None when there is no video or no sound. A
    failed mixdown leaves the video silent, with a warning, rather than stopping the render."""
    if not (options.video and options.audio and snapshot.has_audio) or cancel.is_set():
        return None
    frames = scene_frames(snapshot, options.frames)
    if frames != list(range(frames[0], frames[-1] + 1)):
        # Every rendered frame plays for 1/fps: with a step or gaps the video runs faster
        # than the scene, and its sound would drift. Better silent than out of sync.
        report.warnings.append(
            "The video will be silent: its frames skip some of the scene's (a frame step or gaps), "
            "so the scene's sound would not line up. Render every frame to keep the sound."
        )
        return None
    dest = packed.pack_dir / SOUNDTRACK
    try:
        mixdown_audio(blend_copy, dest, frames[0], frames[-1], snapshot.scene, options.blender_bin)
    except SceneReadError as exc:
        warning = f"The video will be silent: mixing down the scene's sound failed ({exc})."
        if plan_path(dest).is_file():  # a Blender without audio listed the strips instead
            why = mix_strips(dest)
            warning = f"The video will be silent: this Blender is built without audio (Audaspace) and {why}."
            if not why:
                log.info("mixed the scene's sound strips with ffmpeg (this Blender has no audio)")
                warning = ""
        if warning:
            log.warning("%s", warning)
            report.warnings.append(warning)
            return None
    packed.files[SOUNDTRACK] = sha256_file(dest)
    packed.sizes[SOUNDTRACK] = dest.stat().st_size
    report.files[SOUNDTRACK] = packed.files[SOUNDTRACK]
    report.bytes_total = packed.bytes_total
    return SOUNDTRACK
