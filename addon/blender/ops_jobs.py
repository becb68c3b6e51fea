"""Operators on recorded submissions: refresh, cancel, retry failed, show a log,
download the video or frames, open the result.

Each starts a background task (``tasks``) and returns at once; results come back
through the status timer. Network work never runs here, on the main thread.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from ..core.errors import AwsBatchRenderError
from ..core.records import RecordStore
from . import background as bg
from . import config, job_rows, status_timer, tasks
from .ops_submit import OFFLINE_MESSAGE

log = logging.getLogger(__name__)


def _row_and_record(op: Any, context: Any) -> tuple[Any, Any] | None:
    rt = context.window_manager.awsbatch
    row = job_rows.find(rt, op.submission_id)
    try:
        record = RecordStore(config.records_dir()).load(op.submission_id)
    except AwsBatchRenderError as exc:
        op.report({"ERROR"}, str(exc))
        return None
    if record.backend != "local" and not bpy.app.online_access:
        op.report({"ERROR"}, OFFLINE_MESSAGE)
        if row is not None:
            row.error = OFFLINE_MESSAGE
        return None
    return row, record


class _JobOperator:
    submission_id: StringProperty(name="Submission", options={"SKIP_SAVE"})
    task = ""

    @classmethod
    def poll(cls, context: Any) -> bool:
        return context.window_manager is not None

    def start(self, context: Any, fn: Any, *args: Any) -> set[str]:
        found = _row_and_record(self, context)
        if found is None:
            return {"CANCELLED"}
        row, record = found
        key = f"{self.task}:{record.submission_id}"
        if bg.busy(key):
            self.report({"WARNING"}, f"Already busy with {self.task} for {record.submission_id}")
            return {"CANCELLED"}
        if row is not None:
            row.busy = self.task
            row.error = ""
        status_timer.ensure_running()
        bg.start(self.task, key, fn, record.to_json(), *args)  # last: see ops_submit
        return {"FINISHED"}


class AWSBATCH_OT_refresh(bpy.types.Operator):
    """Read the state of this file's submissions now"""

    bl_idname = "awsbatch.refresh"
    bl_label = "Refresh"
    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a set)

    def execute(self, context: Any) -> set[str]:
        rt = context.window_manager.awsbatch
        status_timer.reload_rows(rt)
        for row in rt.jobs:  # a refresh also re-reads finished ones once
            row.finished = False
        status_timer.poll_soon(rt)
        return {"FINISHED"}


class AWSBATCH_OT_cancel_job(_JobOperator, bpy.types.Operator):
    """Cancel every pending and running chunk of this submission (frames already rendered stay)"""

    bl_idname = "awsbatch.cancel_job"
    bl_label = "Cancel Render"
    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a set)
    task = "cancel"

    def invoke(self, context: Any, event: Any) -> set[str]:
        return context.window_manager.invoke_confirm(
            self,
            event,
            title="Stop this render?",
            message="Waiting and running chunks are stopped. Frames already rendered stay.",
            confirm_text="Stop Render",
            icon="WARNING",
        )

    def execute(self, context: Any) -> set[str]:
        return self.start(context, tasks.cancel_jobs, config.records_dir())


class AWSBATCH_OT_retry_failed(_JobOperator, bpy.types.Operator):
    """Render the failed chunks again into the same output, then stitch"""

    bl_idname = "awsbatch.retry_failed"
    bl_label = "Retry Failed"
    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a set)
    task = "retry"

    def execute(self, context: Any) -> set[str]:
        return self.start(context, tasks.retry_failed, config.records_dir())


class AWSBATCH_OT_show_log(_JobOperator, bpy.types.Operator):
    """Show a chunk's log (the first failed one by default) in a text block"""

    bl_idname = "awsbatch.show_log"
    bl_label = "Show Log"
    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a set)
    task = "logs"

    slice_index: IntProperty(name="Chunk", default=-1, min=-1)
    lines: IntProperty(name="Lines", default=200, min=1, max=10000)

    def execute(self, context: Any) -> set[str]:
        index = None if self.slice_index < 0 else self.slice_index
        return self.start(context, tasks.fetch_logs, index, self.lines)


def default_download_folder(scene: Any, submission_id: str) -> str:
    """The scene's output folder (as the user set it), else next to the .blend, else a
    folder in the extension's user data for never-saved files."""
    out = scene.render.filepath if scene is not None else ""
    if out and not (out.startswith("//") and not bpy.data.filepath):
        folder = os.path.dirname(bpy.path.abspath(out)) or os.path.dirname(bpy.data.filepath)
    elif bpy.data.filepath:
        folder = os.path.join(os.path.dirname(bpy.data.filepath), "render")
    else:
        folder = config.user_dir("downloads")
    return os.path.join(folder, submission_id) if folder else config.user_dir("downloads", submission_id)


class AWSBATCH_OT_download(_JobOperator, bpy.types.Operator):
    """Download the video or the frames (to the scene's output folder unless one is given)"""

    bl_idname = "awsbatch.download"
    bl_label = "Download"
    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a set)
    task = "download"

    what: EnumProperty(
        name="What",
        items=(("VIDEO", "Video", "The stitched video"), ("FRAMES", "Frames", "Every rendered frame")),
        default="VIDEO",
    )
    directory: StringProperty(name="Folder", subtype="DIR_PATH", options={"SKIP_SAVE"})

    def execute(self, context: Any) -> set[str]:
        folder = bpy.path.abspath(self.directory) if self.directory else default_download_folder(
            context.scene, self.submission_id
        )
        return self.start(context, tasks.download, self.what, folder)


class AWSBATCH_OT_open_result(bpy.types.Operator):
    """Open the downloaded video, or its folder"""

    bl_idname = "awsbatch.open_result"
    bl_label = "Open"
    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a set)

    submission_id: StringProperty(options={"SKIP_SAVE"})
    folder: bpy.props.BoolProperty(name="Folder", default=False, options={"SKIP_SAVE"})

    def execute(self, context: Any) -> set[str]:
        row = job_rows.find(context.window_manager.awsbatch, self.submission_id)
        path = ""
        if row is not None:
            path = row.download_folder if self.folder else row.downloaded
        if not path or not os.path.exists(path):
            self.report({"ERROR"}, "Nothing downloaded yet: use Download first")
            return {"CANCELLED"}
        problem = open_problem()
        if problem is None:
            try:
                bpy.ops.wm.path_open(filepath=path)
            except RuntimeError as exc:
                problem = str(exc).strip().splitlines()[-1]
        if problem:
            message = f"Could not open {path}: {problem}"
            if row is not None:
                row.error = message
            self.report({"ERROR"}, message)
            return {"CANCELLED"}
        return {"FINISHED"}


def open_problem() -> str | None:
    """Why files cannot be opened with the system's program here, or None. Blender's own
    ``wm.path_open`` only prints a traceback when ``xdg-open`` is missing (Linux, BSD)."""
    import shutil
    import sys

    if sys.platform in ("win32", "darwin"):
        return None
    if shutil.which("xdg-open") is None:
        return "no program opens files here (xdg-open is missing); open it from the folder yourself"
    return None


class AWSBATCH_OT_job_info(bpy.types.Operator):
    """Copy the submission's id to the clipboard"""

    bl_idname = "awsbatch.job_info"
    bl_label = "Submission"
    bl_options = {"REGISTER", "INTERNAL"}  # noqa: RUF012 (Blender reads a set)

    submission_id: StringProperty(options={"SKIP_SAVE"})

    @classmethod
    def description(cls, context: Any, properties: Any) -> str:
        row = job_rows.find(context.window_manager.awsbatch, properties.submission_id)
        if row is None:
            return properties.submission_id
        where = "this computer" if row.backend == "local" else "AWS Batch"
        lines = [f"{row.submission_id} on {where}",
                 f"{row.state.title()}: {row.frames_done} of {row.frames_total} frames"]
        lines += [x for x in (row.counts, row.downloaded and f"Downloaded to {row.downloaded}") if x]
        return "\n".join(lines) + "\nClick to copy the id"

    def execute(self, context: Any) -> set[str]:
        context.window_manager.clipboard = self.submission_id
        self.report({"INFO"}, f"Copied {self.submission_id}")
        return {"FINISHED"}


CLASSES = (
    AWSBATCH_OT_refresh,
    AWSBATCH_OT_cancel_job,
    AWSBATCH_OT_retry_failed,
    AWSBATCH_OT_show_log,
    AWSBATCH_OT_download,
    AWSBATCH_OT_open_result,
    AWSBATCH_OT_job_info,
)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
