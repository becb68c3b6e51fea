"""Chunk efficiency: the sum of chunk wall times over pure frame-render time (every frame's
render seconds from the workers' logs, less each chunk's first-frame extra over its other
frames' median: that extra is start-up, not rendering), for the chunk size
the quote chooses from the scout's measurements against the fixed default of 10, on the
three scenes of bench/quote_scenes.py, local backend, one chunk at a time. Target: <= 1.10
with the automatic size. "as recorded" is the same over the progress records' mean render
seconds (each chunk's first frame with its extra), as this benchmark measured before.

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
    print(f"{'scene':>6} {'frames':>6} {'auto':>5} {'auto eff':>9} {'fixed 10 eff':>13} {'one chunk':>10} "
          f"{'auto wall':>10} {'fixed wall':>11} | as recorded: {'auto':>5} {'fixed 10':>8}")  # fmt: skip
    ok = True
    for name, q, a, f in rows:
        ea, ef = a["chunk_walls"] / a["pure"], f["chunk_walls"] / f["pure"]
        bound = 1 + (a["chunk_walls"] - a["pure"]) / a["chunks"] / a["pure"]
        ok &= ea <= 1.10
        print(f"{name:>6} {q.frames:>6} {q.chunk_size:>5} {ea:9.2f} {ef:13.2f} {bound:10.2f} {a['wall']:9.1f}s "
              f"{f['wall']:10.1f}s |              {a['chunk_walls'] / a['render']:5.2f} "
              f"{f['chunk_walls'] / f['render']:8.2f}")  # fmt: skip
    print(f"auto <= 1.10 everywhere: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
