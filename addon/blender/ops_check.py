"""The panel's "Check" button, and the same check on submit.

The facts come from the open scene in-process (``snapshot_scene`` gathers them), the
checks from ``addon/core/submit/preflight.py``, the AWS facts (GPU queue, worker image
tags) from what Connect already read into the preferences: no network call and no second
Blender here. The findings are kept as JSON in ``WindowManager.awsbatch.check_findings``
for the panel to draw (:func:`draw_findings`).
"""

from __future__ import annotations

import json
from typing import Any

import bpy

from . import config
from .snapshot import snapshot_scene

ICONS = {"error": "ERROR", "warning": "ERROR", "info": "INFO"}


def check_context(scene: Any, context: Any, allow_missing: bool) -> Any:
    from ..core.submit.preflight import CheckContext, local_has_gpu

    p = config.prefs(context)
    target = config.target(scene, context)
    device = scene.awsbatch.device
    ctx = CheckContext(
        backend=target.backend, where="panel", device="" if device == "SCENE" else device,
        allow_missing=allow_missing, stack=target.stack_name,
    )  # fmt: skip
    ctx.worker_has_gpu = local_has_gpu() if target.backend == "local" else False  # EEVEE: the CPU queue
    if target.backend == "aws":
        if target.job_queue:
            ctx.gpu_queue = bool(target.gpu_job_queue)
        if p is not None and p.repository_uri:
            from ..core.submit.preflight_aws import check_image_tags

            # the listed tags, as one image: blender-X.Y.Z there means that version was published
            tags = [t.strip() for t in p.image_tags.split(",") if t.strip()]
            version = ".".join(str(v) for v in bpy.app.version[:3])
            image = check_image_tags([tags], version, target.stack_name)
            ctx.image_missing_command, ctx.image_mismatch_command = image.missing_command, image.mismatch_command
            ctx.image_has = image.has
    return ctx


def run_check(context: Any, snapshot: Any = None) -> Any:
    """Check the open scene; store the findings for the panel and return the report."""
    from ..core.submit.packed_bakes import settle_packed_bakes
    from ..core.submit.preflight import check_scene

    scene = context.scene
    if snapshot is None:
        snapshot = snapshot_scene(scene, blend_path=bpy.data.filepath, is_dirty=bpy.data.is_dirty)
    settle_packed_bakes(snapshot)  # from the saved file, when nothing is unsaved
    report = check_scene(snapshot, check_context(scene, context, scene.awsbatch.allow_missing))
    context.window_manager.awsbatch.check_findings = json.dumps(report.to_dict())
    return report


def draw_findings(layout: Any, rt: Any) -> None:
    if not rt.check_findings:
        return
    findings = json.loads(rt.check_findings).get("findings", [])
    box = layout.box()
    if not findings:
        box.label(text="Check: nothing to fix", icon="CHECKMARK")
    for f in findings:
        box.label(text=f"{f['message']} [{f['code']}]", icon=ICONS.get(f["severity"], "INFO"))


class AWSBATCH_OT_check(bpy.types.Operator):
    """Check the scene for what would make its render fail or come back wrong (nothing is uploaded)"""

    bl_idname = "awsbatch.check"
    bl_label = "Check"
    bl_options = {"REGISTER"}  # noqa: RUF012 (Blender reads a set)

    @classmethod
    def poll(cls, context: Any) -> bool:
        return context.scene is not None and hasattr(context.scene, "awsbatch")

    def execute(self, context: Any) -> set[str]:
        report = run_check(context)
        errors, warnings = len(report.of("error")), len(report.of("warning"))
        level = {"WARNING"} if errors or warnings else {"INFO"}  # the check itself worked: no ERROR
        self.report(level, f"Check: {errors} error(s), {warnings} warning(s)")
        return {"FINISHED"}


CLASSES = (AWSBATCH_OT_check,)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
