"""The script that runs inside Blender: open the .blend, render the frames it is told.

Run by the outer process (:mod:`worker.render`) as a child, in one of two ways:

    python inner_render.py -- --job -                  (a Python with the bpy module)
    blender -b --factory-startup --python inner_render.py -- --job -

The job (which .blend, which frames, where to write) arrives as one JSON line on stdin
(``--job -``) or in a file. Reading it from stdin lets the outer process start Blender
first, so ``import bpy`` overlaps with fetching the spec and the inputs.

It talks to the outer process through stdout, one machine-readable line per event,
flushed at once; every other line is Blender's own chatter:

    ABR_FRAME {"frame": 3, "path": "/tmp/.../frame_000003.png", "seconds": 0.21}
    ABR_WARNING {"message": "..."}
    ABR_ERROR {"kind": "content", "message": "..."}   (then exit 65)

This file only uses the standard library and ``bpy`` (imported inside functions), so
the outer process can import the line format from here without importing bpy, and a
``blender`` binary can run it without the project installed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

FRAME_TAG = "ABR_FRAME"
WARNING_TAG = "ABR_WARNING"
ERROR_TAG = "ABR_ERROR"
#: a split still's part is written and checked; Blender waits for one more stdin line: a
#: merge job (this process merges every part: see worker/merge.py) or nothing (it exits)
WAITING_TAG = "ABR_WAITING"

#: same value as addon.core.exitcodes.CONTENT_ERROR; repeated because a blender binary
#: runs this file without the project on its path
CONTENT_ERROR = 65
#: stdin closed without a job: nothing was asked, nothing was rendered
NO_JOB = 3
#: the worker's policy: Python in .blend files (drivers, registered text blocks) never runs
#: here (the add-on's check warns about such scenes: addon/core/submit/preflight.py)
AUTO_EXEC_SCRIPTS = False


class ContentProblem(Exception):
    """Something in the .blend or the job that no retry can fix (no camera, corrupt file)."""


def format_event(tag: str, payload: dict[str, Any]) -> str:
    return f"{tag} {json.dumps(payload, sort_keys=True)}"


def parse_event(line: str) -> tuple[str, dict[str, Any]] | None:
    """``('ABR_FRAME', {...})`` for a protocol line, None for anything else."""
    tag, sep, rest = line.strip().partition(" ")
    if not sep or tag not in (FRAME_TAG, WARNING_TAG, ERROR_TAG, WAITING_TAG):
        return None
    try:
        payload = json.loads(rest)
    except ValueError:
        return None
    return (tag, payload) if isinstance(payload, dict) else None


def frame_runs(frames: list[int]) -> list[tuple[int, int, int]]:
    """Split sorted frames into ``(start, end, step)`` runs an animation render can do.

    ``[1, 2, 3, 7, 9, 11, 12]`` -> ``[(1, 3, 1), (7, 11, 2), (12, 12, 1)]``. Greedy: a
    run takes as many frames as keep the first gap.
    """
    runs: list[tuple[int, int, int]] = []
    i, n = 0, len(frames)
    while i < n:
        if i + 1 == n:
            runs.append((frames[i], frames[i], 1))
            break
        step = frames[i + 1] - frames[i]
        j = i + 1
        while j + 1 < n and frames[j + 1] - frames[j] == step:
            j += 1
        runs.append((frames[i], frames[j], step))
        i = j + 1
    return runs


def version_warning(saved_by: str, running: tuple[int, ...]) -> str:
    """A warning when this Blender is older than the one that saved the file (newer files
    may use features this one drops or renders differently); "" when it is not."""
    try:
        saved = tuple(int(p) for p in saved_by.split(".")[:2])
    except ValueError:
        return ""
    if len(saved) < 2 or tuple(running[:2]) >= saved:
        return ""
    return (
        f"The scene was saved by Blender {saved_by} but this worker runs Blender "
        f"{'.'.join(map(str, running[:3]))}: results may differ. Publish an image for "
        f"blender-{saved[0]}.{saved[1]} (publish-image) and submit with it."
    )


def emit(tag: str, **payload: Any) -> None:
    sys.stdout.write(format_event(tag, payload) + "\n")
    sys.stdout.flush()


# --- everything below runs inside Blender ---------------------------------------------


def open_blend(path: str) -> None:
    import bpy

    bpy.context.preferences.filepaths.use_scripts_auto_execute = AUTO_EXEC_SCRIPTS
    try:
        bpy.ops.wm.open_mainfile(filepath=path, load_ui=False)
    except (RuntimeError, TypeError) as exc:
        raise ContentProblem(
            f"Blender cannot open the .blend file ({first_line(exc)}); it may be corrupt, "
            "truncated or saved by a newer Blender than this worker's "
            f"{bpy.app.version_string}. Save it again and resubmit."
        ) from None


def select_scene(name: str) -> Any:
    import bpy

    if name:
        scene = bpy.data.scenes.get(name)
        if scene is None:
            names = ", ".join(sorted(s.name for s in bpy.data.scenes))
            raise ContentProblem(f"The .blend has no scene named {name!r} (it has: {names}).")
        # No context switch: render.render(scene=...) renders this scene by name.
        return scene
    return bpy.context.scene


def set_engine(scene: Any, engine: str) -> str:
    """Set the engine, mapping EEVEE's id between 4.x and 5.x; returns the id used."""
    candidates = [engine]
    if engine == "BLENDER_EEVEE_NEXT":
        candidates.append("BLENDER_EEVEE")
    elif engine == "BLENDER_EEVEE":
        candidates.append("BLENDER_EEVEE_NEXT")
    for candidate in candidates:
        try:
            scene.render.engine = candidate
            return candidate
        except TypeError:
            continue
    raise ContentProblem(f"This Blender has no render engine {engine!r}.")


def setup_output(scene: Any, out_dir: str, image_format: str) -> None:
    render = scene.render
    settings = render.image_settings
    if hasattr(settings, "media_type"):  # Blender 5.x: movie formats live under another type
        settings.media_type = "IMAGE"
    settings.file_format = image_format
    if image_format == "JPEG":
        settings.color_mode = "RGB"
        settings.quality = 95
    elif image_format == "OPEN_EXR":
        settings.color_depth = "16"
        settings.exr_codec = "ZIP"
    render.filepath = out_dir.rstrip("/") + "/frame_######"
    render.use_file_extension = True
    render.use_overwrite = True  # the outer process already chose which frames to render
    render.use_placeholder = False


def setup_threads(scene: Any, threads: int) -> None:
    if threads > 0:
        scene.render.threads_mode = "FIXED"
        scene.render.threads = threads


def setup_device(scene: Any, device: str) -> None:
    """Cycles on GPU when asked and available; otherwise CPU, with a clear warning."""
    if scene.render.engine != "CYCLES":
        return
    if device != "GPU":
        scene.cycles.device = "CPU"
        return
    import bpy

    prefs = bpy.context.preferences.addons["cycles"].preferences
    for backend in ("OPTIX", "CUDA", "HIP", "ONEAPI"):
        try:
            prefs.compute_device_type = backend
        except TypeError:
            continue
        prefs.refresh_devices() if hasattr(prefs, "refresh_devices") else prefs.get_devices()
        found = [d for d in prefs.devices if d.type == backend]
        if found:
            for d in prefs.devices:
                d.use = d.type == backend
            scene.cycles.device = "GPU"
            names = ", ".join(d.name for d in found)
            sys.stdout.write(f"Cycles renders on {backend}: {names}\n")
            return
    prefs.compute_device_type = "NONE"
    scene.cycles.device = "CPU"
    emit(
        WARNING_TAG,
        message="WARNING: the job asks for GPU rendering but this machine has no CUDA/OptiX "
        "device Cycles can use; rendering on the CPU instead (check the compute environment's "
        "instance types and the image's GPU drivers).",
    )


def check_camera(scene: Any) -> None:
    # Cameras bound to timeline markers switch during the animation render: enough. A scene
    # that renders the sequencer (a strip other than sound at the top) needs no camera.
    editor = scene.sequence_editor
    strips = () if editor is None else getattr(editor, "strips", None) or getattr(editor, "sequences", ())
    if scene.render.use_sequencer and any(s.type != "SOUND" for s in strips):
        return
    if scene.camera is None and not any(m.camera for m in scene.timeline_markers):
        cameras = [o.name for o in scene.objects if o.type == "CAMERA"]
        hint = (
            f" (it has camera objects {', '.join(cameras)} but none is the active camera)"
            if cameras
            else ""
        )
        raise ContentProblem(
            f"Scene {scene.name!r} has no active camera{hint}: set one in Scene properties and "
            "resubmit."
        )


def render_frames(scene: Any, frames: list[int]) -> None:
    import bpy

    started: dict[str, float] = {}

    def on_pre(sc: Any, *_args: Any) -> None:
        started["t"] = time.perf_counter()

    def on_write(sc: Any, *_args: Any) -> None:
        frame = sc.frame_current
        seconds = time.perf_counter() - started.get("t", time.perf_counter())
        # cpu: this process's CPU seconds so far (every thread): the scout tells its own work
        # from other programs' on a busy computer (addon/core/quote/scout.py)
        emit(FRAME_TAG, frame=frame, path=sc.render.frame_path(frame=frame), seconds=round(seconds, 4),
             cpu=round(time.process_time(), 3))  # fmt: skip

    bpy.app.handlers.render_pre.append(on_pre)
    bpy.app.handlers.render_write.append(on_write)
    for start, end, step in frame_runs(frames):
        scene.frame_start = start
        scene.frame_end = end
        scene.frame_step = step
        # An animation render (not frame_set + still renders) so markers binding cameras work.
        result = bpy.ops.render.render(animation=True, scene=scene.name)
        if "FINISHED" not in result:
            raise RuntimeError(f"Rendering frames {start}-{end} returned {result}")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1].strip() if text else type(exc).__name__


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="inner_render")
    parser.add_argument("--job", default="-", help="JSON job file, or '-' for one line on stdin")
    args = parser.parse_args(argv)
    try:
        import bpy  # the slow part of starting up: done before the job arrives
    except ImportError:
        emit(
            ERROR_TAG,
            kind="setup",
            message=f"{sys.executable} has no bpy module: set BLENDER_BIN to a Blender binary, or "
            "BLENDER_PYTHON to a Python with the bpy wheel installed.",
        )
        return CONTENT_ERROR

    if args.job == "-":
        line = sys.stdin.readline()
        if not line.strip():
            return NO_JOB  # the outer process decided there is nothing to render
        job = json.loads(line)
    else:
        with open(args.job, encoding="utf-8") as fh:
            job = json.load(fh)
    older = version_warning(job.get("saved_by", ""), tuple(bpy.app.version))
    if older:
        emit(WARNING_TAG, message=older)
    try:
        open_blend(job["blend"])
        scene = select_scene(job.get("scene", ""))
        check_camera(scene)
        set_engine(scene, job["engine"])
        setup_device(scene, job.get("device", "CPU"))
        setup_threads(scene, int(job.get("threads", 0)))
        if job.get("persistent_data") and scene.render.engine == "CYCLES":  # keep scene data between frames
            scene.render.use_persistent_data = True
        setup_output(scene, job["out_dir"], job["image_format"])
        if job.get("part"):  # a still split by sample ranges (worker/inner_still.py)
            for message in _inner_still().setup_part(scene, job["part"]):
                emit(WARNING_TAG, message=message)
        sys.stdout.write(
            f"Blender {bpy.app.version_string}: rendering {len(job['frames'])} frame(s) of scene "
            f"{scene.name!r} with {scene.render.engine}, {scene.render.threads} thread(s)"
            f"{', Persistent Data' if scene.render.use_persistent_data else ''}\n"
        )
        render_frames(scene, [int(f) for f in job["frames"]])
        if job.get("part"):
            _inner_still().check_part_file(scene.render.frame_path(frame=int(job["frames"][0])))
    except (ContentProblem, _inner_still().ContentProblem) as exc:
        emit(ERROR_TAG, kind="content", message=str(exc))
        return CONTENT_ERROR
    if job.get("part", {}).get("offer_merge"):
        emit(WAITING_TAG)  # the outer process uploads the part, then may hand over the merge
        line = sys.stdin.readline()
        if line.strip():
            _inner_still().merge_after_part(json.loads(line))
    return 0


def _inner_still() -> Any:
    # a bare blender binary runs this file without the project on its path: import the sibling by path
    import os

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import inner_still

    return inner_still


def _script_argv() -> list[str]:
    return sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]


if __name__ == "__main__":
    code = main(_script_argv())
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without Blender's exit clean-up: bpy 4.5 can hang there (after a scene whose
    # Python driver was skipped, a fluid domain), after every frame was written.
    os._exit(code)
