"""Preflight: everything that can be known about a scene before a byte is uploaded.

:func:`check_scene` turns a :class:`SceneSnapshot` (with the facts that
``addon/blender/preflight_facts.py`` gathered in the same Blender that read the scene)
and what is known about where it will render (:class:`CheckContext`) into
:class:`Finding` values: a stable code, a severity and a one-line message that says what
to do. Errors stop ``submit`` before packing unless the user overrides that code;
warnings are shown; info is a note. No bpy, no network here (the AWS facts are read by
:mod:`.preflight_aws`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import AwsBatchRenderError
from ..exitcodes import CHECK_ERRORS
from .scene import SceneSnapshot

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)

#: the worker opens files with Python auto-run off (worker/inner_render.py AUTO_EXEC_SCRIPTS)
WORKER_AUTO_EXEC = False
#: EEVEE on a worker without a GPU goes through Mesa's software GL (measured, see TESTING.md)
EEVEE_CPU_COST = (
    "EEVEE on a worker without a GPU renders through Mesa's software GL: 10-40 s for even a tiny "
    "frame (measured 12-16 s at 160x90 with Blender 5.2, 30-40 s with 4.5)"
)
EEVEE_ENGINES = ("BLENDER_EEVEE", "BLENDER_EEVEE_NEXT")
#: codes whose error the user may let through (the render then runs, but may be wrong)
OVERRIDABLE = frozenset({"SIM_NOT_BAKED", "MEMORY_OVER_LIMIT"})
SIM_NAMES = {
    "fluid": "fluid/smoke domain", "rigid_body": "rigid body world", "cloth": "cloth",
    "soft_body": "soft body", "particles": "particle system", "geometry_nodes": "Geometry Nodes simulation",
}  # fmt: skip


@dataclass(frozen=True)
class Finding:
    code: str  # stable: scripts and the ignore list match on it
    severity: str  # error, warning or info
    message: str  # one line, with the fix

    def line(self) -> str:
        return f"{self.severity}: {self.message} [{self.code}]"


@dataclass
class CheckContext:
    """Where the scene is going. None means unknown: that check is skipped."""

    backend: str = "local"  # aws or local
    stack: str = ""  # the AWS stack's name, for the commands the fixes name
    where: str = "cli"  # cli or panel: how the fix is named
    device: str = ""  # the device asked for ("" = the scene's)
    gpu_queue: bool | None = None  # the stack has a GPU queue (AWS)
    image_missing_command: str = ""  # set when the stack's repository lacks the image: how to publish it
    image_mismatch_command: str = ""  # set when its blender-X.Y image is another Blender version
    image_has: str = ""  # ...and which version(s) that image was built for
    worker_has_gpu: bool | None = None  # EEVEE gets a GPU on the worker
    peak_memory_mib: float | None = None  # measured by the quote's scout render, when it ran
    memory_mib: int | None = None  # the job's memory
    allow_missing: bool = False


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)

    def of(self, severity: str) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    def blocking(self, ignore: Iterable[str] = ()) -> list[Finding]:
        """Errors that stop a submit: every error, except overridable ones the user ignores."""
        ignored = set(ignore) & OVERRIDABLE
        return [f for f in self.of(ERROR) if f.code not in ignored]

    def lines(self) -> list[str]:
        order = {s: i for i, s in enumerate(SEVERITIES)}
        return [f.line() for f in sorted(self.findings, key=lambda f: order[f.severity])]

    def to_dict(self) -> dict[str, Any]:
        return {"findings": [asdict(f) for f in self.findings]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckReport:
        return cls([Finding(**f) for f in data.get("findings", [])])


class PreflightError(AwsBatchRenderError):
    """The check found errors: nothing was packed or uploaded."""

    exit_code = CHECK_ERRORS

    def __init__(self, report: CheckReport, blocking: list[Finding], where: str = "cli") -> None:
        first = blocking[0]
        more = f" (and {len(blocking) - 1} more error(s))" if len(blocking) > 1 else ""
        how = "run `aws-batch-render check FILE.blend` for all of them" if where == "cli" else "see the panel"
        super().__init__(f"{first.message}{more}; nothing was uploaded: {how}.")
        self.report = report
        self.blocking = blocking


def local_has_gpu() -> bool:
    """Whether this computer has a GPU device EEVEE can use (a DRM render node or NVIDIA's)."""
    import glob
    import os

    return bool(glob.glob("/dev/dri/renderD*")) or os.path.exists("/dev/nvidia0") or os.name == "nt"


def check_scene(snapshot: SceneSnapshot, context: CheckContext | None = None) -> CheckReport:
    ctx = context or CheckContext()
    facts = snapshot.facts or {}
    found: list[Finding] = []
    found += _camera(snapshot, facts)
    found += _size_and_output(snapshot)
    found += _missing(snapshot, ctx)
    found += _simulations(snapshot, facts)
    found += _worker_reproduces(facts)
    found += _device_and_engine(snapshot, ctx)
    found += _memory(ctx)
    if ctx.image_missing_command:
        version = ".".join(snapshot.blender_version.split(".")[:2])
        found.append(Finding("IMAGE_MISSING", ERROR, (
            f"The stack's repository has no worker image for Blender {version}: publish it with "
            f"`{ctx.image_missing_command}`"
        )))  # fmt: skip
    if ctx.image_mismatch_command:
        found.append(Finding("IMAGE_MISMATCH", WARNING, (
            f"The stack's worker image is Blender {ctx.image_has}, not this Blender {snapshot.blender_version}: "
            f"renders may differ; publish the exact version with `{ctx.image_mismatch_command}`"
        )))  # fmt: skip
    return CheckReport(found)


def _camera(snap: SceneSnapshot, facts: dict[str, Any]) -> list[Finding]:
    if snap.has_camera or facts.get("sequencer"):
        return []
    cams = facts.get("camera_objects") or []
    hint = f" (it has {', '.join(cams[:3])}, none is active)" if cams else ""
    return [Finding("NO_CAMERA", ERROR, (
        f"Scene {snap.scene!r} has no active camera{hint} and no marker binds one: set the camera in "
        "Scene properties (or bind one to a marker)"
    ))]  # fmt: skip


def _size_and_output(snap: SceneSnapshot) -> list[Finding]:
    found = []
    if snap.width <= 0 or snap.height <= 0:
        found.append(Finding("RENDER_SIZE", ERROR, (
            f"The render size is {snap.width}x{snap.height} px ({snap.resolution_x}x{snap.resolution_y} at "
            f"{snap.resolution_percentage}%): raise the resolution or the percentage in Output properties"
        )))  # fmt: skip
    if snap.is_movie:
        found.append(Finding("MOVIE_OUTPUT", INFO, (
            f"The scene outputs a movie ({snap.ffmpeg_format or 'FFmpeg'}): it is rendered as frames and "
            "stitched into the video after the last chunk"
        )))  # fmt: skip
    return found


def _missing(snap: SceneSnapshot, ctx: CheckContext) -> list[Finding]:
    if not snap.missing_files:
        return []
    names = [p.rsplit("/", 1)[-1] for p in snap.missing_files]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    fix = "tick 'Allow missing files' to submit anyway" if ctx.where == "panel" else "or pass --allow-missing"
    if ctx.where == "panel":
        fix = "or " + fix
    severity = WARNING if ctx.allow_missing else ERROR
    return [Finding("MISSING_FILES", severity, (
        f"{len(names)} file(s) the scene uses are missing: {shown}; find them (File > External Data > "
        f"Find Missing Files) {fix}"
    ))]  # fmt: skip


def _simulations(snap: SceneSnapshot, facts: dict[str, Any]) -> list[Finding]:
    first, last = snap.frame_start, snap.frame_end
    unbaked, unknown = [], []
    for sim in facts.get("simulations") or []:
        if sim["frame_start"] >= last:
            continue  # it starts after the render range: nothing to carry into a chunk
        label = f"{sim['owner']} ({SIM_NAMES.get(sim['kind'], sim['kind'])})"
        if sim["baked"] is None:
            unknown.append(label)
        elif not sim["baked"]:
            unbaked.append(label)
    found = []
    if unbaked:
        found.append(Finding("SIM_NOT_BAKED", ERROR, (
            f"Not baked: {', '.join(unbaked[:4])}{' and more' if len(unbaked) > 4 else ''}; each chunk would "
            f"simulate from its own first frame and frames {first}-{last} would differ: bake first"
        )))  # fmt: skip
    if unknown:
        found.append(Finding("SIM_PACKED_BAKE", WARNING, (
            f"Packed simulation bake(s) on {', '.join(unknown[:4])}: make sure they are baked over frames "
            f"{first}-{last}, or chunks give different results"
        )))  # fmt: skip
    return found


def _worker_reproduces(facts: dict[str, Any]) -> list[Finding]:
    found = []
    names = list(facts.get("python_drivers") or []) + list(facts.get("scripts") or [])
    if names and not WORKER_AUTO_EXEC:
        found.append(Finding("PYTHON_AUTORUN", WARNING, (
            f"Python drivers or scripts need auto-run, which the worker keeps off: {', '.join(names[:5])}; "
            "they will not run there: use simple driver expressions or bake the result"
        )))  # fmt: skip
    nodes = facts.get("addon_nodes") or []
    if nodes:
        found.append(Finding("ADDON_NODES", WARNING, (
            f"Nodes from add-ons the worker does not have: {'; '.join(nodes[:4])}; they render as "
            "nothing there: replace them with built-in nodes or apply their result"
        )))  # fmt: skip
    props = facts.get("addon_props") or []
    if props:
        found.append(Finding("ADDON_PROPS", WARNING, (
            f"Settings of add-ons the worker does not have are stored on {'; '.join(props[:4])}"
            f"{' and more' if len(props) > 4 else ''}; nothing reads them there: if the render depends "
            "on those add-ons, apply their result (or bake it) before submitting"
        )))  # fmt: skip
    return found


def _device_and_engine(snap: SceneSnapshot, ctx: CheckContext) -> list[Finding]:
    found = []
    device = ctx.device or snap.device
    if ctx.backend == "aws" and snap.engine == "CYCLES" and device == "GPU" and ctx.gpu_queue is False:
        found.append(Finding("NO_GPU_QUEUE", ERROR, (
            "GPU rendering is asked for but the stack has no GPU queue: redeploy it with GPU instances "
            "(aws-batch-render deploy "
            f"--stack {ctx.stack or 'NAME'} --gpu) or render on the CPU (--device CPU)"
        )))  # fmt: skip
    if snap.engine in EEVEE_ENGINES and ctx.worker_has_gpu is not True:
        found.append(Finding("EEVEE_ON_CPU", WARNING, (
            f"{EEVEE_CPU_COST}; use Cycles or Workbench for CPU workers if that is too slow"
        )))  # fmt: skip
    return found


def _memory(ctx: CheckContext) -> list[Finding]:
    """The quote's scout render (``estimate``, ``submit --chunk auto``): its measured peak
    against the job's memory."""
    return memory_findings(ctx.peak_memory_mib, ctx.memory_mib)


def memory_findings(peak_mib: float | None, memory_mib: int | None) -> list[Finding]:
    if peak_mib is None or not memory_mib or peak_mib <= memory_mib:
        return []
    peak = int(peak_mib + 0.5)
    return [Finding("MEMORY_OVER_LIMIT", ERROR, (
        f"A test frame peaked at {peak} MiB but a chunk gets {memory_mib} MiB: "
        f"raise the memory (--memory {peak * 5 // 4}, or the stack's RenderMemoryMiB) or simplify the scene"
    ))]  # fmt: skip
