"""Cycles Persistent Data: one chunk of every frame of each scene of bench/quote_scenes.py,
rendered by the worker's inner script (what a chunk runs) with and without Persistent
Data, side by side in one run (alternating, ``--repeat`` times each), every core.
Prints the chunk's wall time (Blender start to exit) and the mean per-frame render time
of each, and the ratios on/off (below 1: Persistent Data is faster).

    .venv/bin/python bench/persistent_data.py [--scenes heavy,slow,mixed] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quote_scenes import ROOT, SCENES, make

FRAME_TAG = "ABR_FRAME"


def render_chunk(blend: Path, frames: list[int], out: Path, persist: bool) -> tuple[float, float]:
    """(wall seconds, mean render seconds per frame after the first) of one chunk."""
    from addon.core.quote.scout import inner_argv

    out.mkdir(parents=True, exist_ok=True)
    job = {"blend": str(blend), "engine": "CYCLES", "threads": 0, "out_dir": str(out), "image_format": "PNG",
           "frames": frames, "persistent_data": persist}  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.run(inner_argv(), input=json.dumps(job) + "\n", capture_output=True, text=True,
                          env=env, timeout=1800)  # fmt: skip
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"render failed ({proc.returncode}): {proc.stdout[-1500:]}")
    assert ("Persistent Data" in proc.stdout) is persist
    seconds = [json.loads(line.split(" ", 1)[1])["seconds"] for line in proc.stdout.splitlines()
               if line.startswith(FRAME_TAG + " ")]  # fmt: skip
    assert len(seconds) == len(frames)
    return wall, statistics.mean(seconds[1:] or seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", default=",".join(SCENES))
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    print(f"{'scene':>6} {'frames':>6} {'wall off':>9} {'wall on':>8} {'on/off':>7} "
          f"{'frame off':>10} {'frame on':>9} {'on/off':>7}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="abr-persist-") as tmp:
        for name in args.scenes.split(","):
            blend = make(Path(tmp), name)
            frames = list(range(1, SCENES[name][0] + 1))
            runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
            for i in range(args.repeat):
                for persist in ((False, True) if i % 2 == 0 else (True, False)):
                    runs[persist].append(render_chunk(blend, frames, Path(tmp) / f"{name}-{i}-{persist}", persist))
            off = [statistics.median(v) for v in zip(*runs[False], strict=True)]
            on = [statistics.median(v) for v in zip(*runs[True], strict=True)]
            print(f"{name:>6} {len(frames):>6} {off[0]:8.1f}s {on[0]:7.1f}s {on[0] / off[0]:7.2f} "
                  f"{off[1]:9.3f}s {on[1]:8.3f}s {on[1] / off[1]:7.2f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
