"""The "AWS Batch" panel in the Output properties: settings, the Render button with the
upload's progress, and one row per submission of this .blend.

Drawing only reads properties (no file or network access), so it stays cheap.
"""

from __future__ import annotations

from typing import Any

import bpy

from ..core.backends.status import format_duration
from . import config, ops_check

_STATE_ICONS = {
    "SUCCEEDED": "CHECKMARK",
    "FAILED": "ERROR",
    "CANCELLED": "CANCEL",
    "RUNNING": "RENDER_ANIMATION",
    "STITCHING": "SEQUENCE",
    "STARTING": "SORTTIME",
}


class AWSBATCH_PT_output(bpy.types.Panel):
    bl_label = "AWS Batch"
    bl_idname = "AWSBATCH_PT_output"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "output"
    bl_options = {"DEFAULT_CLOSED"}  # noqa: RUF012 (Blender reads a set)

    @classmethod
    def poll(cls, context: Any) -> bool:
        return context.scene is not None and hasattr(context.scene, "awsbatch")

    def draw(self, context: Any) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        scene = context.scene
        s = scene.awsbatch
        p = config.prefs(context)
        rt = context.window_manager.awsbatch

        col = layout.column(heading="Frames")
        step = f", step {scene.frame_step}" if scene.frame_step != 1 else ""
        col.label(text=f"Scene: {scene.frame_start}-{scene.frame_end}{step}")
        col.prop(s, "use_frames_override")
        if s.use_frames_override:
            col.prop(s, "frames", text="List")
        col.prop(s, "chunk_size", text=f"Chunk Size{'' if s.chunk_size else ' (default)'}")

        col = layout.column(heading="Output")
        col.prop(s, "image_format")
        col.prop(s, "video")
        if s.video:
            sub = col.column()
            sub.prop(s, "video_codec")
            sub.prop(s, "video_quality")
            if scene.render.is_movie_format:
                sub.label(text="Movie output: rendered as frames, then stitched", icon="INFO")

        col = layout.column()
        col.prop(s, "device")
        col.prop(s, "backend")
        col.prop(s, "allow_missing")
        if config.backend_name(scene, p) == "aws":
            col.label(text=f"Worker image: {config.image_tag()}")
            warning = config.image_warning(p)
            if warning:
                col.label(text=warning, icon="ERROR")
            if not bpy.app.online_access:
                col.label(text="Online access is off (Preferences › System › Network)", icon="INTERNET_OFFLINE")

        # --- preflight check (ops_check.py): the button and the last check's findings ---
        layout.operator("awsbatch.check", icon="CHECKMARK")
        ops_check.draw_findings(layout, rt)
        # --- end preflight check ---
        layout.separator()
        if rt.submitting:
            row = layout.row(align=True)
            row.progress(factor=rt.submit_fraction, type="BAR", text=rt.submit_message or rt.submit_phase)
            row.operator("awsbatch.cancel_submit", text="", icon="CANCEL")
        else:
            layout.operator("awsbatch.submit", icon="RENDER_ANIMATION")
        if rt.submit_error:
            box = layout.box()
            for i, line in enumerate(_wrap(rt.submit_error)):
                box.label(text=line, icon="ERROR" if i == 0 else "BLANK1")
        elif rt.last_report and not rt.submitting:
            layout.label(text=rt.last_report, icon="INFO")


class AWSBATCH_PT_jobs(bpy.types.Panel):
    bl_label = "Submissions"
    bl_idname = "AWSBATCH_PT_jobs"
    bl_parent_id = "AWSBATCH_PT_output"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "output"

    @classmethod
    def poll(cls, context: Any) -> bool:
        return context.window_manager is not None and hasattr(context.window_manager, "awsbatch")

    def draw_header(self, context: Any) -> None:
        self.layout.operator("awsbatch.refresh", text="", icon="FILE_REFRESH", emboss=False)

    def draw(self, context: Any) -> None:
        layout = self.layout
        rt = context.window_manager.awsbatch
        if not rt.jobs:
            layout.label(text="No submissions of this file yet")
            return
        for row in rt.jobs:
            draw_job(layout.box(), row)


def draw_job(box: Any, row: Any) -> None:
    head = box.row()
    head.label(text=f"{row.submission_id}  ·  {row.state.title()}", icon=_STATE_ICONS.get(row.state, "TIME"))
    if row.backend == "local":
        head.label(text="This computer")
    box.progress(factor=row.fraction, type="BAR", text=f"{row.frames_done} / {row.frames_total} frames")
    if row.counts:
        box.label(text=f"Chunks: {row.counts}")
    times = f"Elapsed {format_duration(row.elapsed)}"
    if not row.finished:
        times += f"   ETA {format_duration(None if row.eta < 0 else row.eta)}"
    if row.vcpu_hours:
        times += f"   {row.vcpu_hours:.2f} vCPU-h"
    box.label(text=times)
    if row.preview_frame >= 0:
        if row.preview_icon:  # 0 in background mode: Blender builds no icons without a UI
            box.template_icon(icon_value=row.preview_icon, scale=6.0)
        box.label(text=f"Latest frame: {row.preview_frame}", icon="IMAGE_DATA")
    if row.failed_slices:
        box.label(text=f"Failed chunks: {row.failed_slices}", icon="ERROR")
    for text, icon in ((row.error, "ERROR"), (row.message, "INFO")):
        if text:
            for line in _wrap(text):
                box.label(text=line, icon=icon)
                icon = "BLANK1"
    buttons = box.row(align=True)
    if not row.finished:
        op = buttons.operator("awsbatch.cancel_job", text="Cancel", icon="CANCEL")
        op.submission_id = row.submission_id
    if row.first_failed_slice >= 0 or row.state == "FAILED":  # no failed chunk: the stitch failed
        op = buttons.operator("awsbatch.retry_failed", text="Retry Failed", icon="FILE_REFRESH")
        op.submission_id = row.submission_id
        op = buttons.operator("awsbatch.show_log", text="Log", icon="TEXT")
        op.submission_id = row.submission_id
        op.slice_index = row.first_failed_slice
    if row.video_uri:
        op = buttons.operator("awsbatch.download", text="Video", icon="IMPORT")
        op.submission_id = row.submission_id
        op.what = "VIDEO"
    if row.frames_done:
        op = buttons.operator("awsbatch.download", text="Frames", icon="IMPORT")
        op.submission_id = row.submission_id
        op.what = "FRAMES"
    if row.downloaded:
        op = buttons.operator("awsbatch.open_result", text="", icon="PLAY")
        op.submission_id = row.submission_id
        op = buttons.operator("awsbatch.open_result", text="", icon="FILE_FOLDER")
        op.submission_id = row.submission_id
        op.folder = True
    if row.busy:
        box.label(text=f"{row.busy.capitalize()}…", icon="SORTTIME")


def _wrap(text: str, width: int = 70) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [text]


CLASSES = (AWSBATCH_PT_output, AWSBATCH_PT_jobs)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
