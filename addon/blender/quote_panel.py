"""The panel's quote and budget: the Estimate button (a scout render in a thread, the
quote's one line in the panel) and the budget cap handed to the submission.

The Estimate operator saves a copy of the scene as it is in memory (as Render does) and
hands it to ``quote_tasks.estimate`` in a background thread; the status timer applies the
:class:`~.quote_tasks.QuoteReady` it posts (:func:`_quote_ready`). The cap and its price
go with the submission (``tasks.submit(budget=...)``) into the record, where every poll
(``tasks.poll``) counts the spend with the CLI's own code (``core.quote.budget``) and stops
the render before it would pass the cap. :func:`draw` is the panel's part; it reads
properties only.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from ..core.errors import AwsBatchRenderError
from . import background as bg
from . import config, quote_tasks, status_timer
from .textfit import draw_lines

log = logging.getLogger(__name__)


class AWSBATCH_PG_budget(bpy.types.PropertyGroup):
    """Per scene, saved in the .blend."""

    use_max_cost: BoolProperty(
        name="Budget Cap",
        description="Stop the render (keeping every finished frame) before it would cost more than Max Cost",
        default=False,
    )
    max_cost: FloatProperty(
        name="Max Cost", description="The most the render may cost, in US dollars", default=10.0, min=0.0,
        soft_max=10000.0, precision=2,
    )  # fmt: skip
    price_per_vcpu_hour: FloatProperty(
        name="$/vCPU-hour",
        description="US dollars per vCPU-hour the spend is counted in; 0 on AWS uses the Spot price of the "
        "last Estimate (or reads it on submit). This computer needs a price (what an hour of one thread costs)",
        default=0.0, min=0.0, precision=4,
    )  # fmt: skip
    measured_chunk: BoolProperty(
        name="Auto Chunks",
        description="Size the chunks from a scout render (start-up at most 10% of a chunk, enough chunks for "
        "every slot, at most 1 h each): Estimate measures it, else Render runs the scout first. A Chunk Size "
        "above 0 still wins",
        default=False,
    )


class AWSBATCH_PG_quote(bpy.types.PropertyGroup):
    """The last quote (window manager: never saved)."""

    line: StringProperty()
    assumptions: StringProperty()  # one per line
    backend: StringProperty()
    price_per_vcpu_hour: FloatProperty()
    price_source: StringProperty()
    error: StringProperty()
    chunk_size: IntProperty()  # the quote's chunk size
    chunk_reason: StringProperty()
    chunk_key: StringProperty()  # set when the size was measured: what for (quote_tasks.chunk_key)
    persistent_data: BoolProperty()


def quote_request(scene: Any, context: Any, snapshot: Any, options: Any) -> Any:
    from ..core.quote.request import QuoteRequest
    from ..core.submit.specbuild import scene_frames

    target = config.target(scene, context)
    return QuoteRequest(
        backend=target.backend, frames=scene_frames(snapshot, options.frames),
        chunk_size=None if measuring(scene) else options.chunk_size or None,
        threads=options.threads, stack_name=target.stack_name, settings=target.settings,
        blender_bin=bpy.app.binary_path, job_queue=target.job_queue, job_definition=target.render_job_definition,
    )  # fmt: skip


def measuring(scene: Any) -> bool:
    """The chunk size comes from measurements: "Auto Chunks" on, no Chunk Size given."""
    return bool(scene.awsbatch_budget.measured_chunk) and scene.awsbatch.chunk_size == 0


def chunk_for_submit(context: Any, target: Any, snapshot: Any, options: Any) -> tuple[Any, bool]:
    """Render's chunk size: (options, whether the submit thread must measure it first).
    The last Estimate's measured size when it was for this backend, scene and frames."""
    from dataclasses import replace

    from ..core.submit.specbuild import scene_frames

    if not measuring(context.scene) or options.split_samples > 1:
        return options, False
    q = context.window_manager.awsbatch_quote
    key = quote_tasks.chunk_key(target.backend, snapshot.scene, scene_frames(snapshot, options.frames))
    if q.chunk_key == key and q.chunk_size > 0 and not q.error:
        persist = q.persistent_data and target.backend == "local"
        return replace(options, chunk_size=q.chunk_size, persistent_data=persist or options.persistent_data), False
    return options, True


def budget_for_submit(context: Any, target: Any, options: Any) -> Any:
    """The scene's cap as a ``BudgetRequest`` (None without one); a cap that cannot be
    counted is refused here, before anything is saved or uploaded."""
    from ..core.quote.quoting import DEFAULT_JOB_VCPUS
    from ..core.quote.request import budget_request

    b = context.scene.awsbatch_budget
    if not b.use_max_cost:
        return None
    q = context.window_manager.awsbatch_quote
    local = target.backend == "local"
    vcpus = (options.threads or os.cpu_count() or 1) if local else DEFAULT_JOB_VCPUS
    quoted = q.price_per_vcpu_hour if q.backend == "aws" and not q.error else 0.0
    return budget_request(target.backend, b.max_cost, b.price_per_vcpu_hour, vcpus, quoted, q.price_source)


class AWSBATCH_OT_estimate(bpy.types.Operator):
    """Scout-render the first, middle and last frame on this computer and quote the render: time, chunks and, on AWS, the cost at Spot prices"""  # noqa: E501

    bl_idname = "awsbatch.estimate"
    bl_label = "Estimate"
    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a set)

    @classmethod
    def poll(cls, context: Any) -> bool:
        if context.scene is None or not hasattr(context.scene, "awsbatch"):
            cls.poll_message_set("No scene to estimate")
            return False
        if bg.busy("estimate"):
            cls.poll_message_set("An estimate is running")
            return False
        return True

    def execute(self, context: Any) -> set[str]:
        from .ops_submit import OFFLINE_MESSAGE, build_options, check_scene, save_copy
        from .snapshot import snapshot_scene

        scene = context.scene
        q = context.window_manager.awsbatch_quote
        q.line, q.assumptions, q.error = "", "", ""
        q.chunk_size, q.chunk_reason, q.chunk_key = 0, "", ""
        target = config.target(scene, context)
        if target.backend == "aws" and not bpy.app.online_access:  # the Spot prices come from AWS
            q.error = OFFLINE_MESSAGE
            self.report({"ERROR"}, OFFLINE_MESSAGE)
            return {"CANCELLED"}
        temp_dir = ""
        try:
            options = build_options(scene, config.prefs(context))
            snapshot = snapshot_scene(scene, blend_path=bpy.data.filepath, is_dirty=bpy.data.is_dirty)
            check_scene(snapshot, options)
            request = quote_request(scene, context, snapshot, options)
            temp_dir = config.submit_temp_dir()
            blend_copy = save_copy(temp_dir)
        except (AwsBatchRenderError, RuntimeError) as exc:
            if temp_dir:
                shutil.rmtree(temp_dir, ignore_errors=True)
            q.error = str(exc)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        q.backend = target.backend
        status_timer.ensure_running()
        bg.start("estimate", "estimate", quote_tasks.estimate, blend_copy, snapshot, request, temp_dir)
        self.report({"INFO"}, "Estimating: a scout render of a few frames runs in the background")
        return {"FINISHED"}


def _quote_ready(m: quote_tasks.QuoteReady, rt: Any) -> None:
    q = bpy.context.window_manager.awsbatch_quote
    q.line, q.assumptions, q.error = m.line, "\n".join(m.assumptions), m.error
    q.backend, q.price_per_vcpu_hour, q.price_source = m.backend, m.price_per_vcpu_hour, m.price_source
    q.chunk_size, q.chunk_reason, q.chunk_key, q.persistent_data = (
        m.chunk_size, m.chunk_reason, m.chunk_key, m.persistent_data
    )
    rt.last_report = m.error or f"Estimate: {m.line}"


def spend_text(row: Any) -> str:
    """The budget part of a submission's status message ("spent ≈ $1.20 of the $5.00 cap")."""
    return next((part for part in (row.message or "").split("; ") if " cap" in part and "$" in part), "")


def draw(layout: Any, context: Any, width: float = 0) -> None:
    """Estimate, its quote, the budget cap and the newest submission's spend against it."""
    q = context.window_manager.awsbatch_quote
    b = context.scene.awsbatch_budget
    col = layout.column()
    if bg.busy("estimate"):
        col.label(text="Estimating: scout render…", icon="SORTTIME")
    else:
        col.operator("awsbatch.estimate", icon="PREVIEW_RANGE")
    if q.error:
        draw_lines(col, q.error, "ERROR", width)
    elif q.line:
        draw_lines(col, q.line, "INFO", width)
    col = layout.column()
    col.use_property_split = True
    col.prop(b, "measured_chunk")
    if measuring(context.scene):
        if q.chunk_key and q.chunk_size and not q.error:
            draw_lines(col, f"Chunk size {q.chunk_size}: {q.chunk_reason}", "INFO", width)
        else:
            draw_lines(col, "Render runs a scout render first (or press Estimate)", "INFO", width)
    col.prop(b, "use_max_cost")
    if b.use_max_cost:
        sub = col.column()
        sub.prop(b, "max_cost")
        sub.prop(b, "price_per_vcpu_hour")
        rt = context.window_manager.awsbatch
        spent = spend_text(rt.jobs[0]) if len(rt.jobs) else ""
        if spent:
            draw_lines(col, spent[0].upper() + spent[1:], "ERROR" if spent.startswith("stopped") else "INFO", width)


CLASSES = (AWSBATCH_PG_budget, AWSBATCH_PG_quote, AWSBATCH_OT_estimate)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.awsbatch_budget = PointerProperty(type=AWSBATCH_PG_budget)
    bpy.types.WindowManager.awsbatch_quote = PointerProperty(type=AWSBATCH_PG_quote)
    status_timer.add_handler(quote_tasks.QuoteReady, _quote_ready)


def unregister() -> None:
    del bpy.types.WindowManager.awsbatch_quote
    del bpy.types.Scene.awsbatch_budget
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
