"""The README's demo: a generated animation rendered on this computer, end to end.

    .venv/bin/python demo/run_demo.py [--frames 48] [--size 320x180] [--samples 16] [--out out]

1. generates ``out/demo.blend`` with bpy (kept for the next run, so nothing new uploads);
2. ``aws-batch-render submit out/demo.blend --backend local --watch``: reads the scene with
   Blender, packs and uploads it to the local store (content-addressed), renders two slices
   in parallel and stitches them, with a progress bar showing frames done and ETA;
3. ``aws-batch-render download ID --video --dest out``, which writes ``out/demo.mp4``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLICES = 2


def main(argv: list[str] | None = None) -> int:
    from addon.cli import main as cli
    from addon.core.records import RecordStore

    parser = argparse.ArgumentParser(description="Render a generated sample animation on this computer.")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--out", default=str(ROOT / "out"))
    args = parser.parse_args(argv)

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    blend = out / "demo.blend"
    if not blend.is_file():
        print(f"Generating a sample animation: {blend}", flush=True)
        subprocess.run(
            [sys.executable, str(ROOT / "demo" / "make_scene.py"), str(blend), "--frames", str(args.frames),
             "--size", args.size, "--samples", str(args.samples)],
            check=True, capture_output=True,
        )
    frames = args.frames
    threads = max(1, (os.cpu_count() or SLICES) // SLICES)
    code = cli([
        "submit", str(blend), "--backend", "local", "--chunk", str(-(-frames // SLICES)),
        "--threads", str(threads), "--concurrency", str(SLICES), "--watch", "--interval", "0.5",
    ])
    if code != 0:
        return code
    submission = RecordStore().list(str(blend))[0].submission_id
    # The video is named after the .blend: out/demo.mp4.
    return cli(["download", submission, "--video", "--dest", str(out)])


if __name__ == "__main__":
    sys.exit(main())
