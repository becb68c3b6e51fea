"""Render on AWS Batch: check the scene, save a copy of it as it is in memory, and hand
the packing, upload and submit to a background thread.

The user's document is never changed: the copy is written with
``save_as_mainfile(copy=True)`` into a temp folder, so the file on disk, its bytes and
its unsaved-changes flag stay as they were. The thread (``tasks.submit``) never touches
bpy; progress comes back through the status timer.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import bpy

from ..core.errors import AwsBatchRenderError
from . import background as bg
from . import config, ops_check, quote_panel, split_panel, status_timer, tasks
from .snapshot import snapshot_scene

log = logging.getLogger(__name__)

OFFLINE_MESSAGE = (
    "Online access is off, so nothing was sent to AWS. Turn on Preferences › System › Network › "
    "Allow Online Access (or start Blender with --online-mode), or render on 'This Computer'."
)


class SceneCheckError(AwsBatchRenderError):
    """The scene cannot be rendered as it is."""

    exit_code = 2


def build_options(scene: Any, p: Any) -> Any:
    """SubmitOptions from the scene's AWS Batch settings and the preferences' defaults."""
    from ..core.submit.options import SubmitOptions

    s = scene.awsbatch
    return SubmitOptions(
        frames=s.frames.strip() if s.use_frames_override else "",
        chunk_size=s.chunk_size or (p.default_chunk_size if p is not None else 10),
        image_format=s.image_format,
        video=s.video,
        video_codec="" if s.video_codec == "SCENE" else s.video_codec,
        video_quality=s.video_quality,
        device="" if s.device == "SCENE" else s.device,
        allow_missing=s.allow_missing,
        split_samples=split_panel.split_parts(scene),
        # The sound mixdown runs in a child Blender: in a Blender binary that is the binary
        # itself (its sys.executable has no bpy module); "" in the bpy module.
        blender_bin=bpy.app.binary_path,
    )


def check_scene(snapshot: Any, options: Any) -> list[str]:
    """Raise :class:`SceneCheckError` for what stops a render; return notes for the rest."""
    from ..core.frames import parse_frames

    notes: list[str] = []
    if not snapshot.has_camera and not snapshot.facts.get("sequencer"):  # the sequencer needs none
        raise SceneCheckError(
            f"Scene '{snapshot.scene}' has no camera: add one (or bind one to a marker) and set it "
            "as the scene camera."
        )
    if options.frames:
        frames = parse_frames(options.frames, snapshot.frame_step)
    else:
        frames = list(range(snapshot.frame_start, snapshot.frame_end + 1, max(1, snapshot.frame_step)))
    if not frames:
        raise SceneCheckError(
            f"The frame range {snapshot.frame_start}-{snapshot.frame_end} is empty: set End to at "
            "least Start in the Output properties."
        )
    if snapshot.missing_files:
        listed = ", ".join(snapshot.missing_files[:5]) + (" …" if len(snapshot.missing_files) > 5 else "")
        if not options.allow_missing:
            raise SceneCheckError(
                f"{len(snapshot.missing_files)} referenced file(s) are missing: {listed}. Fix the paths "
                "(File › External Data › Find Missing Files) or tick 'Allow Missing'."
            )
        notes.append(f"Submitting without {len(snapshot.missing_files)} missing file(s): {listed}")
    if snapshot.is_movie:
        notes.append(
            "The scene outputs a movie: it is rendered as frames and stitched into a video "
            f"({snapshot.ffmpeg_codec or 'H.264'})."
        )
    return notes


def _preflight(context: Any, snapshot: Any) -> None:
    """The panel's check (ops_check.py) on submit: its errors stop here, before saving a copy."""
    from ..core.submit.preflight import PreflightError

    report = ops_check.run_check(context, snapshot)
    blocking = report.blocking()
    if blocking:
        raise PreflightError(report, blocking, where="panel")


def save_copy(temp_dir: str) -> str:
    """Save the in-memory state to ``temp_dir``; the user's file and dirty flag stay as they are."""
    name = os.path.basename(bpy.data.filepath) or "untitled.blend"
    path = os.path.join(temp_dir, name)
    # Blender 5 compresses with Zstandard by default; where the packer cannot read that
    # (a distribution's Blender without the `zstandard` module), the copy is saved plain.
    from ..core.submit.bat_zstd import zstd_readable

    compress = {} if zstd_readable() else {"compress": False}
    bpy.ops.wm.save_as_mainfile(filepath=path, copy=True, relative_remap=True, check_existing=False, **compress)
    if not os.path.isfile(path):
        raise SceneCheckError(f"Could not save a copy of the scene to {path}: check free disk space.")
    return path


class AWSBATCH_OT_submit(bpy.types.Operator):
    """Render this scene on AWS Batch (or this computer): pack, upload and submit in the background"""

    bl_idname = "awsbatch.submit"
    bl_label = "Render"
    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a set)

    _timer = None  # the modal event timer while the upload runs

    @classmethod
    def description(cls, context: Any, properties: Any) -> str:
        if config.target(context.scene, context).backend == "local":
            return "Render this scene on this computer in the background; Blender stays usable"
        return "Render this scene on AWS Batch: pack, upload and submit in the background"

    @classmethod
    def poll(cls, context: Any) -> bool:
        if context.scene is None:
            cls.poll_message_set("No scene to render")
            return False
        if bg.busy("submit"):
            cls.poll_message_set("A submission is being uploaded; wait for it or cancel it")
            return False
        return True

    def execute(self, context: Any) -> set[str]:
        scene = context.scene
        p = config.prefs(context)
        target = config.target(scene, context)
        rt = context.window_manager.awsbatch
        rt.submit_error = ""
        if target.backend == "aws" and not bpy.app.online_access:
            rt.submit_error = OFFLINE_MESSAGE
            self.report({"ERROR"}, OFFLINE_MESSAGE)
            return {"CANCELLED"}
        try:
            target.require_complete()
            options = build_options(scene, p)
            snapshot = snapshot_scene(scene, blend_path=bpy.data.filepath, is_dirty=bpy.data.is_dirty)
            notes = check_scene(snapshot, options)
            split_panel.check_submission(snapshot, options)  # as the CLI does, before packing
            _preflight(context, snapshot)
            budget = quote_panel.budget_for_submit(context, target, options)  # a cap it cannot count stops here
            options, measure = quote_panel.chunk_for_submit(context, target, snapshot, options)  # "Auto Chunks"
        except AwsBatchRenderError as exc:
            rt.submit_error = str(exc)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for note in notes:
            self.report({"WARNING"} if "missing" in note else {"INFO"}, note)
        temp_dir = config.submit_temp_dir()
        try:
            blend_copy = save_copy(temp_dir)
        except (AwsBatchRenderError, RuntimeError) as exc:
            import shutil

            shutil.rmtree(temp_dir, ignore_errors=True)
            rt.submit_error = str(exc)
            self.report({"ERROR"}, f"Could not save a copy of the scene: {exc}")
            return {"CANCELLED"}
        rt.submitting = True
        rt.submit_phase = "pack"
        rt.submit_fraction = 0.0
        rt.submit_message = "Scout render to size the chunks…" if measure else "Packing the scene and its files…"
        context.window_manager.progress_begin(0, 100)
        where = "this computer" if target.backend == "local" else "AWS Batch"
        self.report({"INFO"}, f"Submitting {snapshot.scene} to {where} in the background")
        status_timer.ensure_running()
        status_timer.tag_redraw()  # the bar shows at once, before the thread takes the GIL
        records_dir = config.records_dir()
        # Last: once the thread runs (importing boto3, packing) it competes for the GIL,
        # and every bytecode left here could wait a switch interval for it.
        bg.start("submit", "submit", tasks.submit, blend_copy, snapshot, options, target, records_dir, temp_dir,
                 budget=budget, measure_chunk=measure)
        return {"FINISHED"}

    def invoke(self, context: Any, event: Any) -> set[str]:
        result = self.execute(context)
        if "FINISHED" not in result:
            return result
        # Esc while the upload runs cancels it; the work itself stays in the thread.
        self._timer = context.window_manager.event_timer_add(0.25, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: Any, event: Any) -> set[str]:
        if event.type == "ESC":
            cancel_submission()
            self.report({"WARNING"}, "Submission cancelled")
            return self._finish(context, {"CANCELLED"})
        if not bg.busy("submit"):
            return self._finish(context, {"FINISHED"})
        return {"PASS_THROUGH"}

    def _finish(self, context: Any, result: set[str]) -> set[str]:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        return result


def cancel_submission() -> bool:
    event = bg.cancel_event("submit")
    if event is None or not bg.busy("submit"):
        return False
    event.set()
    return True


class AWSBATCH_OT_cancel_submit(bpy.types.Operator):
    """Stop the upload in progress; nothing is submitted"""

    bl_idname = "awsbatch.cancel_submit"
    bl_label = "Cancel Upload"
    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a set)

    @classmethod
    def poll(cls, context: Any) -> bool:
        if not bg.busy("submit"):
            cls.poll_message_set("No upload is running")
            return False
        return True

    def execute(self, context: Any) -> set[str]:
        cancel_submission()
        context.window_manager.awsbatch.submit_message = "Cancelling…"
        self.report({"INFO"}, "Cancelling the upload")
        return {"FINISHED"}


CLASSES = (AWSBATCH_OT_submit, AWSBATCH_OT_cancel_submit)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
