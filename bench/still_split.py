"""What splitting one still across N machines by sample ranges costs, measured side by side.

    .venv/bin/python bench/still_split.py [--parts 4] [--size 320x180] [--samples 320]

One heavy still (the demo scene, Cycles, adaptive sampling off, Classic pattern) is rendered

1. by one process: ``worker render`` of an ordinary one-frame spec, and
2. split in N parts: N ``worker render`` runs (one per array child, one after another here)
   and one ``worker merge``,

with file:// stores. CPU seconds come from ``getrusage(RUSAGE_CHILDREN)`` around each run
(worker and Blender together, start-up included); the render seconds of each process are the
ones the worker logs (Blender's own wall time for the frame or part). Printed:

* split overhead = (sum of the parts' CPU s + the merge's CPU s) / the single process's CPU s
  (target <= 1.15 at N = 4), and the same without each process's fixed start-up CPU (a fresh Python importing bpy
  and opening the .blend, measured here);
* merge wall / single render wall (target <= 0.05), and the in-Blender merge time;
* the projected wall time with N machines: the slowest part + the merge, beside the single
  process's wall time.

The single render and the parts run one after another on the same machine, so both sides see
the same load. The development machine has 2 shared cores: say so when quoting the figures.
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from still_split_helpers import pack_job, pixels, psnr, tune_scene, worker  # noqa: E402

from addon.core.storage import path_to_uri  # noqa: E402
from tests.helpers import make_scene  # noqa: E402


def timed(command: str, spec_uri: str, index: int | None = None) -> tuple[float, float, str]:
    """(wall s, CPU s of the worker and its Blender, stderr) of one worker run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = worker(command, spec_uri, index, timeout=3600)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"worker {command} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stderr


def startup_cpu(blend: Path) -> float:
    """CPU seconds of a fresh Python importing bpy and opening ``blend``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    code = "import sys, bpy; bpy.ops.wm.open_mainfile(filepath=sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(blend)], check=True, capture_output=True, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def logged_seconds(stderr: str, pattern: str) -> float:
    m = re.search(pattern, stderr)
    return float(m.group(1)) if m else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--samples", type=int, default=320)
    parser.add_argument("--threads", type=int, default=0, help="render threads (0: every core)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="bench-still-"))
    try:
        src = make_scene(work / "src.blend", "--frames", "1", "--size", args.size)
        blend = tune_scene(src, work / "heavy.blend", width, height, args.samples, denoise=False)
        root = path_to_uri(work / "store", directory=True)
        single_spec, single_uri = pack_job(root, blend, [1], 1, submission_id="single", threads=args.threads,
                                           size=(width, height))
        split_spec, split_uri = pack_job(root, blend, [1], args.parts, submission_id="split", threads=args.threads,
                                         size=(width, height))

        s_wall, s_cpu, s_err = timed("render", single_uri, 0)
        s_render = logged_seconds(s_err, r"Frame 1 rendered in ([\d.]+) s")
        part_walls, part_cpus, part_renders = [], [], []
        for i in range(args.parts):
            wall, cpu, err = timed("render", split_uri, i)
            part_walls.append(wall)
            part_cpus.append(cpu)
            part_renders.append(logged_seconds(err, r"samples in ([\d.]+) s, uploaded"))
        m_wall, m_cpu, m_err = timed("merge", split_uri)
        m_inner = logged_seconds(m_err, r"merged from \d+ parts in ([\d.]+) s")
        # What every extra process pays before its first sample: import bpy and open the .blend.
        fixed_cpu = min(startup_cpu(blend) for _ in range(2))
        quality = psnr(*pixels(Path(split_spec.frame_uri(1)[7:]), Path(single_spec.frame_uri(1)[7:])))

        n = args.parts
        print(f"still {width}x{height}, Cycles {args.samples} samples, {n} parts; machine: 2 shared cores")
        print(f"single process     wall {s_wall:7.2f} s  CPU {s_cpu:7.2f} s  (render {s_render:.2f} s)")
        for i in range(n):
            print(f"part {i + 1}/{n}           wall {part_walls[i]:7.2f} s  CPU {part_cpus[i]:7.2f} s  "
                  f"(render {part_renders[i]:.2f} s)")  # fmt: skip
        print(f"merge              wall {m_wall:7.2f} s  CPU {m_cpu:7.2f} s  (in Blender {m_inner:.2f} s)")
        overhead = (sum(part_cpus) + m_cpu) / s_cpu
        no_startup = (sum(part_cpus) + m_cpu - (n + 1) * fixed_cpu) / (s_cpu - fixed_cpu)
        print(f"split overhead, CPU s (parts + merge) / single:          {overhead:.3f}  (target <= 1.15)")
        print(f"fixed start-up CPU per process (import bpy, open .blend): {fixed_cpu:.2f} s")
        print(f"split overhead, CPU s without the start-ups:             {no_startup:.3f}")
        print(f"merge wall / single render wall:                        {m_wall / s_wall:.3f}  (target <= 0.05)")
        print(f"merge in Blender / single render wall:                  {m_inner / s_wall:.3f}")
        projected = max(part_walls) + m_wall
        print(f"projected wall with {n} machines (slowest part + merge): {projected:.2f} s vs single {s_wall:.2f} s "
              f"({s_wall / projected:.2f}x faster)")  # fmt: skip
        print(f"PSNR merged vs single: {quality:.1f} dB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
