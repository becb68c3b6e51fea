"""The scout render: a few representative frames (first, middle, last) of the scene,
rendered on this computer in a child Blender with the scene's full settings, timed.

The child runs the worker's own inner script (``worker/inner_render.py``), the same code
that renders on AWS and in the local backend, so what is timed is what a chunk does:
start Blender, open the file, render frames one after the other. From the moment the
child starts to each ``ABR_FRAME`` line:

* seconds per frame F: the mean render time of the frames after the first (of the only
  frame when one is rendered); the first frame's extra (shader compile, first sync) is
  counted with the start-up, since every chunk pays it once;
* start-up + load L: time to the first frame written, minus F;
* peak resident memory: the child's ``ru_maxrss`` from ``wait4``;
* other programs' load: on a busy computer (two cores shared with a compiler, another
  render) the frames take longer than they would alone, and the quote would carry that
  into every chunk. Each frame event also carries the child's CPU seconds; with the whole
  computer's busy time from ``/proc/stat`` over the same span, the CPU the others took is
  known, and F alone is F scaled to the cores the scout would have had (up to its threads):
  ``F x ours / min(threads, ours + others)``, both in cores. Start-up and loading run
  mostly on one core: alone they take about their CPU seconds, so L alone is at most the
  child's CPU seconds before its first frame (less that frame's). Without ``/proc/stat``
  (not Linux) both are as timed. AWS quotes use the figures alone (an instance renders one
  job per vCPU set, not the user's other programs); local quotes keep them as timed (the
  render runs on this computer, under its load).

Nothing is written next to the user's file: frames go to a temporary folder, removed.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..backends.local.processes import import_root
from ..errors import AwsBatchRenderError
from .model import Measured

FRAME_TAG = "ABR_FRAME"  # the same text as worker/inner_render.py's FRAME_TAG
ERROR_TAG = "ABR_ERROR"


class ScoutError(AwsBatchRenderError):
    """The scout render could not run or failed."""

    exit_code = 45


class ScoutCancelled(ScoutError):
    """The scout render was cancelled (Esc, Cancel) before it ended."""

    exit_code = 130


def scout_frames(frame_start: int, frame_end: int, frame_step: int = 1, count: int = 3) -> list[int]:
    """First, middle and last frame of the range (fewer when the range is shorter)."""
    frames = list(range(frame_start, frame_end + 1, max(1, frame_step)))
    if len(frames) <= count:
        return frames
    picks = {frames[0], frames[len(frames) // 2], frames[-1]}
    return sorted(picks)


def inner_argv(blender_bin: str = "") -> list[str]:
    """A Blender binary (``blender_bin``, else ``BLENDER_BIN``), a Python with bpy
    (``BLENDER_PYTHON``), or this Python, running the worker's inner render script with the
    job on stdin. Inside a Blender binary the add-on passes ``bpy.app.binary_path``: its
    ``sys.executable`` is a Python without bpy."""
    script = str(import_root() / "worker" / "inner_render.py")
    binary = blender_bin or os.environ.get("BLENDER_BIN", "")
    if binary:
        return [binary, "-b", "--factory-startup", "--python", script, "--", "--job", "-"]
    return [os.environ.get("BLENDER_PYTHON", "") or sys.executable, script, "--job", "-"]


def scout_render(
    blend: Path,
    frames: list[int],
    *,
    scene: str = "",
    engine: str,
    threads: int = 0,
    saved_by: str = "",
    timeout: float = 1800,
    blender_bin: str = "",
    cancel: threading.Event | None = None,
) -> Measured:
    """Render ``frames`` of ``blend`` once in a child Blender and measure it. ``cancel``
    (set from another thread) stops the child Blender at once: :class:`ScoutCancelled`."""
    if not frames:
        raise ScoutError("The scene has no frames to render: check its frame range.")
    out_dir = Path(tempfile.mkdtemp(prefix="abr-scout-"))
    job = {
        "blend": str(blend), "scene": scene, "engine": engine, "device": "CPU", "threads": threads,
        "out_dir": str(out_dir), "image_format": "PNG", "frames": frames, "saved_by": saved_by,
    }  # fmt: skip
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(import_root()), os.environ.get("PYTHONPATH")) if p)
    )
    events: list[tuple[float, float, float, float | None]] = []  # (since start, render s, child CPU s, busy)
    errors: list[str] = []
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(
            inner_argv(blender_bin), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=env, cwd=str(out_dir),
        )  # fmt: skip
    except OSError as exc:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise ScoutError(
            f"Cannot start Blender for the scout render: {exc}. Set BLENDER_BIN or BLENDER_PYTHON."
        ) from exc
    if cancel is not None:
        threading.Thread(target=_kill_on_cancel, args=(proc, cancel), name="scout-cancel", daemon=True).start()
    try:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(job) + "\n")
            proc.stdin.close()
        except BrokenPipeError:  # the child ended at once (killed on cancel): said below
            pass
        for line in proc.stdout:
            tag, _, payload = line.strip().partition(" ")
            if tag == FRAME_TAG:
                data = json.loads(payload)
                events.append((time.perf_counter() - t0, float(data.get("seconds", 0.0)), float(data.get("cpu", 0.0)),
                               busy_core_seconds()))  # fmt: skip
            elif tag == ERROR_TAG:
                errors.append(str(json.loads(payload).get("message", payload)))
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                break
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(out_dir, ignore_errors=True)
    if cancel is not None and cancel.is_set():
        raise ScoutCancelled("Scout render cancelled; nothing was started.")
    if proc.returncode != 0 or len(events) < len(frames):
        why = errors[0] if errors else f"Blender exited with {proc.returncode} after {len(events)} frame(s)"
        raise ScoutError(f"The scout render of {blend.name} failed: {why}")
    load, frame_s = load_and_frame_seconds(events)
    used = threads or (os.cpu_count() or 1)
    factor, others = alone_factor(events, used)
    alone_load = load
    frame_cpu = (events[-1][2] - events[0][2]) / (len(events) - 1) if len(events) > 1 else 0.0
    if factor < 1.0:  # others were busy: start-up and load alone take about their CPU seconds
        alone_load = min(load, max(0.0, events[0][2] - frame_cpu))
    return Measured(
        load_seconds=load,
        seconds_per_frame=frame_s,
        peak_rss_mib=usage.ru_maxrss / 1024,  # KiB on Linux
        threads=used,
        frames=list(frames),
        alone_load_seconds=alone_load,
        alone_seconds_per_frame=frame_s * factor,
        others_cores=others,
        cpu_per_frame=frame_cpu,
    )


def load_and_frame_seconds(events: list[tuple[float, float, float, float | None]]) -> tuple[float, float]:
    """(start-up + load L, seconds per frame F) from the frame events (since start, render s, ...).

    F: the mean render time of the frames after the first, or the wall time between events
    when larger (it also counts writing the image). L: the time to the first frame written
    less that frame's steady part, min(F, its own render time): the first frame's extra
    (shader compile, first sync) is start-up, which every chunk pays once; but a first frame
    faster than F (the computer got busier after it) takes no more than itself off the
    start-up, which would otherwise read as nothing and size the chunks too small."""
    renders = [e[1] for e in events]
    frame_s = statistics.mean(renders[1:]) if len(renders) > 1 else renders[0]
    if len(events) > 1:
        frame_s = max(frame_s, (events[-1][0] - events[0][0]) / (len(events) - 1))
    return max(0.0, events[0][0] - min(frame_s, renders[0])), frame_s


def _kill_on_cancel(proc: subprocess.Popen, cancel: threading.Event) -> None:
    while proc.poll() is None:
        if cancel.wait(0.2):
            proc.kill()
            return


def alone_factor(events: list[tuple[float, float, float, float | None]], threads: int) -> tuple[float, float]:
    """(factor for the frame time had the computer been ours alone, cores the others used)
    from the first to the last frame event: ours = child CPU seconds / wall seconds, others =
    the computer's busy core-seconds / wall seconds - ours."""
    if len(events) < 2 or events[0][3] is None or events[-1][3] is None:
        return 1.0, 0.0
    span = events[-1][0] - events[0][0]
    if span <= 0:
        return 1.0, 0.0
    ours = max(0.0, events[-1][2] - events[0][2]) / span
    others = max(0.0, (events[-1][3] - events[0][3]) / span - ours)
    if ours <= 0:
        return 1.0, others
    alone = min(float(threads), ours + others)
    return (min(1.0, ours / alone) if alone > 0 else 1.0), others


def busy_core_seconds() -> float | None:
    """Seconds every core of this computer has been busy since boot (``/proc/stat``), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    guest = sum(ticks[8:10]) if len(ticks) > 9 else 0  # guest time is also counted in user
    return (sum(ticks) - idle - guest) / os.sysconf("SC_CLK_TCK")
