"""The "AWS Batch" panel in the Output properties: settings, the Render button with the
newest submission's progress beside it, and the "Submissions" sub-panel with one
two-line row per submission of this .blend.

Labels stay short enough for Blender's default Properties width (tests/gui/label_fit.py
measures them with blf); the detail goes into tooltips. Drawing only reads properties
(no file or network access), so it stays cheap.
"""

from __future__ import annotations

from typing import Any

import bpy

from ..core.backends.status import format_duration
from . import config, job_rows, ops_check, quote_panel, split_panel
from .textfit import draw_lines

STATE_ICONS = {
    "SUCCEEDED": "CHECKMARK",
    "FAILED": "ERROR",
    "CANCELLED": "CANCEL",
    "RUNNING": "RENDER_ANIMATION",
    "STITCHING": "SEQUENCE",
    "STARTING": "SORTTIME",
}


def where_label(scene: Any, p: Any) -> str:
    """Where the Render button sends the scene, in the words of the Render On menu."""
    return "This Computer" if config.backend_name(scene, p) == "local" else "AWS Batch"


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

        col = layout.column()
        col.prop(s, "backend")
        col.prop(s, "use_frames_override")
        if s.use_frames_override:
            col.prop(s, "frames")
        else:
            step = f" ×{scene.frame_step}" if scene.frame_step != 1 else ""
            col.label(text=f"Scene frames {scene.frame_start}–{scene.frame_end}{step}")
        col.prop(s, "chunk_size")
        split_panel.draw(layout, scene, region_width(context))  # "Split Still" (a still's samples)

        col = layout.column()
        col.prop(s, "image_format")
        col.prop(s, "video")
        if s.video:
            sub = col.column()
            sub.prop(s, "video_codec")
            sub.prop(s, "video_quality")
        col.prop(s, "device")
        col.prop(s, "allow_missing")
        width = region_width(context)
        if s.video and scene.render.is_movie_format:
            draw_lines(layout, "Movie output: rendered as frames, then stitched", "INFO", width)
        if config.backend_name(scene, p) == "aws":
            layout.label(text=f"Image {config.image_tag()}")
            warning = config.image_warning(p)
            if warning:
                draw_lines(layout, warning, "ERROR", width)
            if not bpy.app.online_access:
                draw_lines(layout, "Online access is off (Preferences › System › Network)", "INTERNET_OFFLINE", width)

        # --- preflight check (ops_check.py): the button and the last check's findings ---
        layout.operator("awsbatch.check", icon="CHECKMARK")
        ops_check.draw_findings(layout, rt)
        # --- end preflight check ---
        quote_panel.draw(layout, context, width)  # Estimate, its quote, the budget cap
        layout.separator()
        draw_button(layout, context, rt, f"Render on {where_label(scene, p)}")
        if rt.submit_error:
            draw_lines(layout.box(), rt.submit_error, "ERROR", width - 12)
        elif rt.last_report and not rt.submitting:
            draw_lines(layout, rt.last_report, "INFO", width)


def draw_button(layout: Any, context: Any, rt: Any, text: str) -> None:
    """The Render button, or the packing/upload bar with its Cancel; under it the newest
    submission's progress (the artist need not scroll to the history)."""
    if rt.submitting:
        row = layout.row(align=True)
        row.progress(factor=rt.submit_fraction, type="BAR", text=rt.submit_message or "Packing…")
        row.operator("awsbatch.cancel_submit", text="", icon="CANCEL")
    else:
        layout.operator("awsbatch.submit", text=text, icon="RENDER_ANIMATION")
    newest = rt.jobs[0] if len(rt.jobs) else None
    if newest is not None and not rt.submitting:
        row = layout.row(align=True)
        row.label(text="", icon=STATE_ICONS.get(newest.state, "TIME"))
        row.progress(factor=newest.fraction, type="BAR", text=progress_text(newest))


def progress_text(row: Any) -> str:
    """``12/24 · ETA 5s`` while it runs, the state word once it is over."""
    if row.finished:
        return f"{row.frames_done}/{row.frames_total} · {row.state.title()}"
    eta = "" if row.eta < 0 else f" · ETA {format_duration(row.eta)}"
    return f"{row.frames_done}/{row.frames_total}{eta}"


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
            layout.label(text="Nothing rendered from this file yet")
            return
        width = region_width(context)
        for row in rt.jobs:
            draw_job(layout.box(), row, width - 12)


def draw_job(box: Any, row: Any, width: float = 0) -> None:
    """Line 1: state and start time (the tooltip has the id and detail); line 2: progress;
    then what is worth knowing, one short line each."""
    text = f"{row.state.title()} · {job_rows.short_name(row)}"
    op = box.operator("awsbatch.job_info", text=text, icon=STATE_ICONS.get(row.state, "TIME"), emboss=False)
    op.submission_id = row.submission_id
    box.progress(factor=row.fraction, type="BAR", text=progress_text(row) if not row.finished else
                 f"{row.frames_done} of {row.frames_total} frames")
    if row.counts and not row.finished:
        box.label(text=row.counts)
    times = f"Took {format_duration(row.elapsed)}" if row.finished else f"Elapsed {format_duration(row.elapsed)}"
    if row.backend != "local" and row.vcpu_hours >= 0.005:
        times += f" · {row.vcpu_hours:.2f} vCPU-h"
    box.label(text=times, icon="HOME" if row.backend == "local" else "WORLD")
    if row.preview_frame >= 0:
        if row.preview_icon:  # 0 in background mode: Blender builds no icons without a UI
            box.template_icon(icon_value=row.preview_icon, scale=5.0)
        box.label(text=f"Latest frame {row.preview_frame}", icon="IMAGE_DATA")
    if row.failed_slices:
        draw_lines(box, f"Failed chunks: {row.failed_slices}", "ERROR", width)
    if row.error:
        draw_lines(box, row.error, "ERROR", width)
    elif row.message:
        draw_lines(box, row.message, "INFO", width)
    if row.busy:
        box.label(text=f"{row.busy.capitalize()}…", icon="SORTTIME")
    draw_job_buttons(box, row)


def draw_job_buttons(box: Any, row: Any) -> None:
    """Two short rows: what changes the render (Cancel, Retry, Log), then its results."""
    buttons = box.row(align=True)
    if not row.finished:
        op = buttons.operator("awsbatch.cancel_job", text="Cancel", icon="CANCEL")
        op.submission_id = row.submission_id
    if row.first_failed_slice >= 0 or row.state == "FAILED":  # no failed chunk: the stitch failed
        op = buttons.operator("awsbatch.retry_failed", text="Retry", icon="FILE_REFRESH")
        op.submission_id = row.submission_id
        op = buttons.operator("awsbatch.show_log", text="Log", icon="TEXT")
        op.submission_id = row.submission_id
        op.slice_index = row.first_failed_slice
    buttons = box.row(align=True)
    if row.video_uri:
        op = buttons.operator("awsbatch.download", text="Video", icon="IMPORT")
        op.submission_id = row.submission_id
        op.what = "VIDEO"
    if row.frames_done:
        op = buttons.operator("awsbatch.download", text="Images", icon="IMPORT")
        op.submission_id = row.submission_id
        op.what = "FRAMES"
    if row.downloaded:
        op = buttons.operator("awsbatch.open_result", text="", icon="PLAY")
        op.submission_id = row.submission_id
        op = buttons.operator("awsbatch.open_result", text="", icon="FILE_FOLDER")
        op.submission_id = row.submission_id
        op.folder = True


def region_width(context: Any) -> float:
    """The drawing width in pixels (less the panel's box and margins); 0 without a region."""
    region = getattr(context, "region", None)
    return max(0.0, float(region.width) - 34 * (context.preferences.system.ui_scale or 1.0)) if region else 0.0


CLASSES = (AWSBATCH_PT_output, AWSBATCH_PT_jobs)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
