"""Quote accuracy: the estimate's wall time against the actual wall time of the same
render on the local backend, for three generated scenes of different character (heavy
load with fast frames; slow frames; mixed), chunk size chosen by the quote. Target:
within 20% on each. Also prints the scout's figures, what the run itself showed, the
estimate from the scout's figures alone (less the CPU other programs took during the scout,
as AWS quotes use them; a local quote keeps them as timed), the cores the others kept busy,
and the load average during the run. "no worker" is the same quote without the worker's
own per-chunk time (``LOCAL_CHUNK_OVERHEAD_S``), as quotes were before it was measured:
its ratio against the same actual run.

    .venv/bin/python bench/quote_accuracy.py [--scenes heavy,slow,mixed]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quote_scenes import SCENES, make, run_local, scout_and_quote

from addon.core.quote.model import LOCAL_CHUNK_OVERHEAD_S
from addon.core.quote.quoting import local_quote


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", default=",".join(SCENES))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="abr-quote-") as tmp:
        for name in args.scenes.split(","):
            blend = make(Path(tmp), name)
            measured, quote, _snapshot, frames = scout_and_quote(blend)
            # the same scout with this computer to itself (what an AWS quote uses)
            alone = local_quote(measured.alone(), len(frames), 1, measured.threads, quote.chunk_size)
            # the same quote without the worker's own per-chunk time
            bare = replace(measured, load_seconds=measured.load_seconds - LOCAL_CHUNK_OVERHEAD_S)
            no_worker = local_quote(bare, len(frames), 1, measured.threads, quote.chunk_size)
            before = os.getloadavg()[0]
            actual = run_local(blend, Path(tmp) / f"store-{name}", frames, quote.chunk_size, SCENES[name][1], name)
            actual["load_avg"] = (before + os.getloadavg()[0]) / 2
            rows.append((name, measured, quote, actual, alone, no_worker))
    print(f"{'scene':>6} {'frames':>6} {'L s':>5} {'F s':>6} {'chunk':>5} {'estimate':>9} {'actual':>8} {'ratio':>6}"
          f" | actual: {'L s':>5} {'F s':>6} {'outside':>8} | alone: {'F s':>6} {'ratio':>6} | "
          f"others {'scout':>5} {'loadavg':>7} | no worker: {'ratio':>6}")  # fmt: skip
    ok = True
    for name, m, q, a, t, nw in rows:
        ratio = a["wall"] / q.wall_seconds
        ok &= 0.8 <= ratio <= 1.2
        # what the run itself shows: per-chunk time beyond pure rendering, pure render seconds
        # per frame, and the wall time outside every chunk (supervisor start, gaps, end)
        load = (a["chunk_walls"] - a["render"]) / a["chunks"]
        outside = a["wall"] - a["chunk_walls"]
        print(f"{name:>6} {q.frames:>6} {m.load_seconds:5.1f} {m.seconds_per_frame:6.2f} {q.chunk_size:>5} "
              f"{q.wall_seconds:8.1f}s {a['wall']:7.1f}s {ratio:6.2f} |         {load:5.1f} "
              f"{a['render'] / q.frames:6.2f} {outside:7.1f}s |        {m.alone().seconds_per_frame:6.2f} "
              f"{a['wall'] / t.wall_seconds:6.2f} |        {m.others_cores:5.1f} {a['load_avg']:7.1f} | "
              f"{a['wall'] / nw.wall_seconds:16.2f}")  # fmt: skip
    print(f"all within 20%: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
