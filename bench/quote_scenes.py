"""Shared by bench/quote_accuracy.py and bench/chunk_efficiency.py: three generated scenes
of different character, and one measured run of a scene on the local backend.

* ``heavy``: a heavy file (a dense mesh: long load) with fast frames (1 Cycles sample);
* ``slow``: a light file with slow frames (many samples, larger frames);
* ``mixed``: some of both.

Scenes are made with demo/make_scene.py, then a child Blender adds the mesh (bpy runs in
the child only). Sizes are kept small enough for a few minutes on 2 shared cores.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: name -> (frames, size, samples, mesh subdivisions: 0 none, 7 ~ 330k faces). Enough frames
#: for a real animation: with ~2 s of start-up per chunk and ~0.2 s frames, 10% of a chunk's
#: render time needs ~100 frames per chunk (24 or 16 frames could not reach 1.10 at any size);
#: slow frames (~1.7 s alone) after ~3 s of start-up need ~18 (8 could not)
SCENES = {
    "heavy": (120, "48x27", 1, 8),
    "slow": (24, "192x108", 96, 0),
    "mixed": (120, "96x54", 16, 7),
}

ADD_MESH = """
import sys, bpy
path, level = sys.argv[-2], int(sys.argv[-1])
bpy.ops.wm.open_mainfile(filepath=path)
if level:
    bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=level, radius=0.5, location=(0, 0, 1.5))
bpy.ops.wm.save_as_mainfile(filepath=path)
"""


def make(folder: Path, name: str) -> Path:
    frames, size, samples, level = SCENES[name]
    blend = folder / f"{name}.blend"
    subprocess.run(
        [sys.executable, str(ROOT / "demo" / "make_scene.py"), str(blend), "--frames", str(frames),
         "--size", size, "--samples", str(samples)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-c", ADD_MESH, str(blend), str(level)], check=True, capture_output=True, timeout=300
    )
    return blend


def scout_and_quote(blend: Path, chunk: int | None = None):
    """(Measured, Quote) for a local render with one chunk at a time on every core."""
    from addon.core.quote.quoting import local_quote, scene_frames
    from addon.core.quote.scout import scout_frames, scout_render

    snapshot, frames = scene_frames(blend, "", "")
    picks = scout_frames(frames[0], frames[-1])
    measured = scout_render(blend, picks, engine=snapshot.engine, saved_by=snapshot.blender_version)
    return measured, local_quote(measured, len(frames), 1, measured.threads, chunk), snapshot, frames


def frame_seconds(log: str) -> list[float]:
    """Each frame's render seconds (Blender's render_pre to render_write) from a worker's
    log, in frame order (the chunk renders its frames in that order)."""
    text = Path(log).read_text(encoding="utf-8", errors="replace") if log else ""
    found = re.findall(r"Frame (\d+) rendered in ([0-9.]+) s", text)
    return [float(seconds) for _frame, seconds in sorted(found, key=lambda m: int(m[0]))]


def run_local(blend: Path, store: Path, frames: list[int], chunk: int, size: str, tag: str) -> dict:
    """Render on the local backend, one chunk at a time with every core: wall time from
    the submit (the input already in the store) to the end, the sum of chunk wall times,
    and two render times: ``render`` (frames x their mean render seconds, as the progress
    records hold them: each chunk's first frame with its first-frame extra) and ``pure`` (every
    frame's render seconds from the workers' logs, less each chunk's first-frame extra: its first
    frame over the median of its others. That extra (kernel and shader set-up, first sync) is
    start-up, which a chunk pays once, not frame rendering; frames slowed by other programs'
    load stay rendering time)."""
    from addon.core.backends.local.backend import LocalBackend, wait
    from addon.core.backends.local.state import read_state
    from addon.core.frames import chunk_frames
    from addon.core.progress import SliceProgress
    from addon.core.storage import FileStore
    from tests.helpers import stage_submission

    slices = chunk_frames(frames, chunk_size=chunk)
    w, h = (int(v) for v in size.split("x"))
    spec, spec_uri = stage_submission(store, blend, slices, video=False, threads=os.cpu_count() or 1,
                                      size=(w, h), submission_id=f"bench-{tag}")  # fmt: skip
    # the quote covers rendering, not packing and upload: the clock starts at the submit
    t0 = time.perf_counter()
    backend = LocalBackend(concurrency=1)
    record = backend.submit(spec, spec_uri)
    status = wait(backend, record, timeout=1800, poll=0.1)
    wall = time.perf_counter() - t0
    assert status.state == "SUCCEEDED" and status.frames_done == len(frames), status
    state = read_state(Path(record.jobs["state_dir"]))
    chunk_walls = sum(t.stopped_at - t.started_at for t in state.slices)
    render = 0.0
    for i in range(len(slices)):
        rec = SliceProgress.from_json(FileStore().get_bytes(spec.progress_record_uri(i)))
        render += (rec.seconds_per_frame or 0.0) * len(slices[i])
    per_chunk = [frame_seconds(t.log) for t in state.slices]
    extra = sum(max(0.0, s[0] - statistics.median(s[1:])) for s in per_chunk if len(s) > 1)
    logged = sum(sum(s) for s in per_chunk)
    pure = logged - extra if sum(len(s) for s in per_chunk) == len(frames) else render
    return {"wall": wall, "chunk_walls": chunk_walls, "render": render, "pure": pure, "chunks": len(slices)}
