"""The worker's own per-chunk time on this computer, beyond what the scout render measures:
a chunk on the local backend runs ``python -m worker`` (Python start, imports), copies its
inputs, checks each frame and "uploads" it; the scout is only Blender starting, loading and
rendering. Both run the same small scene, alternating, side by side in one run.

    .venv/bin/python bench/chunk_overhead.py [--repeats 3] [--frames 4]

Per run: the scout's start-up+load L, and the chunk's wall time less its frames' render
time (progress record) = the chunk's time outside rendering. The median of the paired
differences is the worker's overhead that the quote adds per chunk (``quote.model.LOCAL_CHUNK_OVERHEAD_S``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quote_scenes import ROOT, run_local, scout_and_quote

SIZE = "64x36"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=4)
    args = parser.parse_args(argv)
    scout_l, outside = [], []
    with tempfile.TemporaryDirectory(prefix="abr-overhead-") as tmp:
        blend = Path(tmp) / "small.blend"
        subprocess.run(
            [sys.executable, str(ROOT / "demo" / "make_scene.py"), str(blend), "--frames", str(args.frames),
             "--size", SIZE, "--samples", "1"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        for i in range(args.repeats):
            measured, _quote, _snapshot, frames = scout_and_quote(blend)
            a = run_local(blend, Path(tmp) / f"store-{i}", frames, len(frames), SIZE, f"overhead-{i}")
            scout_l.append(measured.load_seconds)
            outside.append(a["chunk_walls"] - a["render"])
            print(f"run {i}: scout L {scout_l[-1]:5.2f} s | chunk outside rendering {outside[-1]:5.2f} s")
    s, c = statistics.median(scout_l), statistics.median(outside)
    paired = statistics.median(o - x for o, x in zip(outside, scout_l, strict=True))
    print(f"median: scout L {s:.2f} s, chunk outside rendering {c:.2f} s, ratio {c / s:.2f}; "
          f"worker overhead {paired:.2f} s (median of the paired differences)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
