"""Local backend vs. plain Blender, side by side in one run.

Wall time of the local backend rendering N frames in 2 slices (supervisor, 2 worker
processes, store uploads, progress records) against one Blender process rendering the
same frames as an animation (the same bpy, the same scene, the same thread budget: all
cores). Prints the ratio; the target is <= 1.15. Runs alternate A/B to spread noise.

    .venv/bin/python bench/local_vs_blender.py [--frames 24] [--size 320x180] [--samples 16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from addon.core.backends.local.backend import LocalBackend, wait  # noqa: E402
from tests.helpers import stage_submission  # noqa: E402


def blender_one_process(blend: Path, frames: int, out: Path) -> float:
    code = textwrap.dedent(
        f"""
        import bpy
        bpy.ops.wm.open_mainfile(filepath={str(blend)!r})
        s = bpy.context.scene
        s.frame_start, s.frame_end = 1, {frames}
        s.render.filepath = {str(out) + "/frame_"!r}
        s.render.image_settings.file_format = "PNG"
        bpy.ops.render.render(animation=True)
        """
    )
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=1800)
    elapsed = time.perf_counter() - t0
    assert len(list(out.glob("frame_*.png"))) == frames
    return elapsed


def local_backend(blend: Path, frames: int, store: Path, size: tuple[int, int], tag: str) -> float:
    half = frames // 2
    cores = os.cpu_count() or 2
    t0 = time.perf_counter()
    spec, spec_uri = stage_submission(
        store, blend, [range(1, half + 1), range(half + 1, frames + 1)], video=False,
        threads=max(1, cores // 2), size=size, submission_id=f"bench-{tag}",
    )
    backend = LocalBackend(concurrency=2)
    status = wait(backend, backend.submit(spec, spec_uri), timeout=1800, poll=0.05)
    elapsed = time.perf_counter() - t0
    assert status.state == "SUCCEEDED" and status.frames_done == frames, status
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="abr-bench-") as tmp:
        tmp = Path(tmp)
        blend = tmp / "bench.blend"
        subprocess.run(
            [sys.executable, str(ROOT / "demo" / "make_scene.py"), str(blend), "--frames", str(args.frames),
             "--size", args.size, "--samples", str(args.samples)],
            check=True, capture_output=True,
        )
        base, ours = [], []
        for r in range(args.rounds):
            base.append(blender_one_process(blend, args.frames, tmp / f"plain-{r}"))
            ours.append(local_backend(blend, args.frames, tmp / f"store-{r}", size, str(r)))
        b, o = statistics.median(base), statistics.median(ours)
        print(f"frames={args.frames} size={args.size} samples={args.samples} rounds={args.rounds} "
              f"cores={os.cpu_count()}")
        print(f"blender one process: median {b:.2f} s  {[round(x, 2) for x in base]}")
        print(f"local backend (2 slices): median {o:.2f} s  {[round(x, 2) for x in ours]}")
        print(f"ratio local/blender = {o / b:.3f}  (target <= 1.15)")


if __name__ == "__main__":
    main()
