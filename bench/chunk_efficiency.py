"""Chunk efficiency: the sum of chunk wall times over pure frame-render time (frames x
their mean render seconds, from the progress records), for the chunk size the quote
chooses from the scout's measurements against the fixed default of 10, on the three
scenes of bench/quote_scenes.py, local backend, one chunk at a time. Target: <= 1.10
with the automatic size.

    .venv/bin/python bench/chunk_efficiency.py [--scenes heavy,slow,mixed]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quote_scenes import SCENES, make, run_local, scout_and_quote


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", default=",".join(SCENES))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="abr-chunks-") as tmp:
        for name in args.scenes.split(","):
            blend = make(Path(tmp), name)
            _m, quote, _snapshot, frames = scout_and_quote(blend)
            size = SCENES[name][1]
            auto = run_local(blend, Path(tmp) / f"a-{name}", frames, quote.chunk_size, size, f"a-{name}")
            fixed = run_local(blend, Path(tmp) / f"f-{name}", frames, 10, size, f"f-{name}")
            rows.append((name, quote, auto, fixed))
    # "one chunk": the best any chunk size can do with this many frames: one start-up (the auto
    # run's per-chunk time beyond rendering) over every frame's render time
    print(f"{'scene':>6} {'auto':>5} {'auto eff':>9} {'fixed 10 eff':>13} {'one chunk':>10} {'auto wall':>10} "
          f"{'fixed wall':>11}")  # fmt: skip
    ok = True
    for name, q, a, f in rows:
        ea, ef = a["chunk_walls"] / a["render"], f["chunk_walls"] / f["render"]
        bound = 1 + (a["chunk_walls"] - a["render"]) / a["chunks"] / a["render"]
        ok &= ea <= 1.10
        print(f"{name:>6} {q.chunk_size:>5} {ea:9.2f} {ef:13.2f} {bound:10.2f} {a['wall']:9.1f}s {f['wall']:10.1f}s")
    print(f"auto <= 1.10 everywhere: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
