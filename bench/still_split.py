"""What splitting one still across N machines by sample ranges costs, measured side by side.

    .venv/bin/python bench/still_split.py [--parts 4] [--size 320x180] [--samples 480] [--rounds 2]

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
* merge step wall / single render wall (target <= 0.05), and the in-Blender merge time. The
  last part to finish merges in its own Blender (``worker/merge.py``: ``merge_after_part``) and
  the merge job then only checks the result: the merge step is that part's merge wall (from
  the worker's log times, counted out of the part's wall) plus the merge job's wall;
* the projected wall time with N machines: the slowest part's render + the merge step, beside the single
  process's wall time, and the same from the two ratios;
* the split's extra CPU seconds in absolute terms, and what they would be as an overhead on a
  frame of 20 s (and 10 min) on a 16-vCPU machine: the extra is mostly per process (start-up,
  scene sync), so it shrinks as the frame grows.

The single render and the split alternate ``--rounds`` times and the figures are means: on a
shared machine one run's CPU seconds swing by 10-30 %.

The single render and the parts run one after another on the same machine, so both sides see
the same load. The development machine has 2 shared cores: say so when quoting the figures.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
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


MERGED = r"merged from \d+ parts in ([\d.]+) s"
MERGE_START = r"(\d\d:\d\d:\d\d,\d+) INFO worker.parts: Part \d+/\d+ of frame \d+: .* uploaded"
MERGED_AT = r"(\d\d:\d\d:\d\d,\d+) INFO worker.merge: Frame \d+ merged from"


def merge_in_part_wall(stderr: str) -> float:
    """Wall seconds of the merge a part did after its upload (from the worker's log times: the
    part uploaded, then the merged frame uploaded), 0 if none."""
    a, b = re.search(MERGE_START, stderr), re.search(MERGED_AT, stderr)
    if not (a and b):
        return 0.0

    def secs(t: str) -> float:
        h, m, s = t.replace(",", ".").split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)

    return secs(b.group(1)) - secs(a.group(1))


def one_round(single_uri: str, split_uri: str, n: int) -> dict:
    """The single render, then the N parts and the merge: wall, CPU and logged render seconds.
    The last part merges in its own Blender (worker/merge.py: merge_after_part): its merge
    wall (``p_merge``) counts as merge time, not part time, and the merge job only checks."""
    m: dict = {"p_wall": [], "p_cpu": [], "p_render": [], "p_merge": []}
    m["s_wall"], m["s_cpu"], err = timed("render", single_uri, 0)
    m["s_render"] = logged_seconds(err, r"Frame 1 rendered in ([\d.]+) s")
    for i in range(n):
        wall, cpu, err = timed("render", split_uri, i)
        m["p_wall"].append(wall)
        m["p_cpu"].append(cpu)
        m["p_render"].append(logged_seconds(err, r"samples in ([\d.]+) s, uploaded"))
        m["p_merge"].append(merge_in_part_wall(err))
        if m["p_merge"][-1]:
            m["p_merge_inner"] = logged_seconds(err, MERGED)
    m["m_wall"], m["m_cpu"], err = timed("merge", split_uri)
    m["m_inner"] = logged_seconds(err, MERGED)
    if m["m_inner"] != m["m_inner"]:  # NaN: the merge job only checked the part's merge
        m["m_inner"] = m.get("p_merge_inner", float("nan"))
    # the merge step: the merge job, plus the merge a part did in its own process
    m["m_step"] = m["m_wall"] + sum(m["p_merge"])
    m["overhead"] = (sum(m["p_cpu"]) + m["m_cpu"]) / m["s_cpu"]
    return m


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--samples", type=int, default=480)  # a single frame of 20 s here (320: 12-19 s)
    parser.add_argument("--threads", type=int, default=0, help="render threads (0: every core)")
    parser.add_argument("--rounds", type=int, default=2, help="single + split, one after the other, this many times")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="bench-still-"))
    try:
        src = make_scene(work / "src.blend", "--frames", "1", "--size", args.size)
        blend = tune_scene(src, work / "heavy.blend", width, height, args.samples, denoise=False)
        root = path_to_uri(work / "store", directory=True)
        single_spec, single_uri = pack_job(
            root, blend, [1], 1, submission_id="single", threads=args.threads, size=(width, height)
        )
        split_spec, split_uri = pack_job(
            root, blend, [1], args.parts, submission_id="split", threads=args.threads, size=(width, height)
        )

        n = args.parts
        rounds = []  # the single render and the split, one after the other, --rounds times
        for r in range(args.rounds):
            if r:  # a fresh split: the parts of the previous round are in the store
                split_spec, split_uri = pack_job(root, blend, [1], n, submission_id=f"split{r}", threads=args.threads,
                                                 size=(width, height))  # fmt: skip
                single_spec, single_uri = pack_job(root, blend, [1], 1, submission_id=f"single{r}",
                                                   threads=args.threads, size=(width, height))  # fmt: skip
            rounds.append(one_round(single_uri, split_uri, n))
        # What every extra process pays before its first sample: import bpy and open the .blend.
        fixed_cpu = min(startup_cpu(blend) for _ in range(2))
        quality = psnr(*pixels(Path(split_spec.frame_uri(1)[7:]), Path(single_spec.frame_uri(1)[7:])))

        print(f"still {width}x{height}, Cycles {args.samples} samples, {n} parts, threads "
              f"{args.threads or 'all'}; machine: {os.cpu_count()} shared cores")  # fmt: skip
        for r, m in enumerate(rounds):
            print(f"round {r + 1}")
            print(f"  single process   wall {m['s_wall']:7.2f} s  CPU {m['s_cpu']:7.2f} s  "
                  f"(render {m['s_render']:.2f} s)")  # fmt: skip
            for i in range(n):
                print(f"  part {i + 1}/{n}         wall {m['p_wall'][i]:7.2f} s  CPU {m['p_cpu'][i]:7.2f} s  "
                      f"(render {m['p_render'][i]:.2f} s)")  # fmt: skip
            print(f"  merge job        wall {m['m_wall']:7.2f} s  CPU {m['m_cpu']:7.2f} s  "
                  f"(merged in Blender in {m['m_inner']:.2f} s)")  # fmt: skip
            print(f"  merge done by a part: {sum(m['p_merge']):.2f} s wall of its own (in its CPU above); "
                  f"merge step {m['m_step']:.2f} s")  # fmt: skip
            print(
                f"  split overhead {m['overhead']:.3f}, merge step wall / single wall {m['m_step'] / m['s_wall']:.3f}"
            )
        s_cpu = statistics.mean(m["s_cpu"] for m in rounds)
        split_cpu = statistics.mean(sum(m["p_cpu"]) + m["m_cpu"] for m in rounds)
        overhead = split_cpu / s_cpu
        no_startup = (split_cpu - (n + 1) * fixed_cpu) / (s_cpu - fixed_cpu)
        m_ratio = statistics.mean(m["m_step"] / m["s_wall"] for m in rounds)
        s_wall = statistics.mean(m["s_wall"] for m in rounds)
        # parallel parts: the slowest part's render, then the merge (in the last part, then the job)
        projected = statistics.mean(
            max(w - pm for w, pm in zip(m["p_wall"], m["p_merge"])) + m["m_step"] for m in rounds
        )
        shortest = min(m["s_wall"] for m in rounds)
        if shortest < 20:  # the benchmark scene: a single frame of at least 20 s
            more = int(args.samples * 22 / shortest)
            print(f"NOTE: the single frame took {shortest:.1f} s, under the 20 s this benchmark is meant for; "
                  f"the fixed start-ups weigh more: run it with --samples {more}")  # fmt: skip
        print(f"means over {len(rounds)} round(s):")
        print(f"split overhead, CPU s (parts + merge) / single:          {overhead:.3f}  (target <= 1.15)")
        per_round = ", ".join(f"{m['overhead']:.3f}" for m in rounds)
        print(f"  per round: {per_round}")
        print(f"fixed start-up CPU per process (import bpy, open .blend): {fixed_cpu:.2f} s")
        print(f"split overhead, CPU s without the start-ups:             {no_startup:.3f}")
        extra = split_cpu - s_cpu
        print(f"extra CPU of the split: {extra:.2f} s, of which {n} extra processes' start-ups {n * fixed_cpu:.2f} s")
        for cores, wall in ((16, 20.0), (16, 600.0)):
            print(f"  the same extra on a {wall:.0f} s frame with {cores} vCPUs ({cores * wall:.0f} CPU s): overhead "
                  f"{1 + extra / (cores * wall):.3f}")  # fmt: skip
        print(f"merge step wall (merge in the last part + merge job) / single render wall: {m_ratio:.3f}  "
              "(target <= 0.05)")  # fmt: skip
        print(f"  merge job alone / single render wall:                 "
              f"{statistics.mean(m['m_wall'] / m['s_wall'] for m in rounds):.3f}")  # fmt: skip
        print(f"merge in Blender / single render wall:                  "
              f"{statistics.mean(m['m_inner'] / m['s_wall'] for m in rounds):.3f}")  # fmt: skip
        print(f"projected wall with {n} machines (slowest part + merge): {projected:.2f} s vs single {s_wall:.2f} s "
              f"({s_wall / projected:.2f}x faster)")  # fmt: skip
        ideal = s_wall * overhead / n + m_ratio * s_wall
        print(f"projected wall with {n} machines from the two ratios (single x overhead / {n} + merge): {ideal:.2f} s")
        print(f"PSNR merged vs single: {quality:.1f} dB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
