"""The README's demo: a generated animation rendered on this computer, end to end.

    .venv/bin/python demo/run_demo.py [--frames 48] [--size 320x180] [--samples 16] [--out out]

1. generates ``out/demo.blend`` with bpy (kept for the next run, so nothing new uploads);
2. reads its settings through the same snapshot code the add-on uses;
3. packs and uploads it to the local store (content-addressed: a second run uploads nothing);
4. submits it to the local backend (two slices in parallel, then the stitch) and shows a
   progress bar with frames done and ETA;
5. copies the video to ``out/demo.mp4`` and prints where it is.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    from addon.core.download import download_submission
    from addon.core.errors import AwsBatchRenderError
    from addon.core.local_backend import LocalBackend, default_store_uri
    from addon.core.records import RecordStore
    from addon.core.scene_reader import read_scene
    from addon.core.status import format_duration, progress_line
    from addon.core.submit import SubmitOptions, prepare_submission

    parser = argparse.ArgumentParser(description="Render a generated sample animation on this computer.")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--out", default=str(ROOT / "out"))
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    blend = out / "demo.blend"
    if not blend.is_file():
        print(f"Generating a sample animation: {blend}")
        subprocess.run(
            [sys.executable, str(ROOT / "demo" / "make_scene.py"), str(blend), "--frames", str(args.frames),
             "--size", args.size, "--samples", str(args.samples)],
            check=True, capture_output=True,
        )
    try:
        snapshot = read_scene(blend)
        cores = os.cpu_count() or 2
        slices = 2
        frames = snapshot.frame_end - snapshot.frame_start + 1
        options = SubmitOptions(chunk_size=-(-frames // slices), threads=max(1, cores // slices))
        root = default_store_uri()
        spec, spec_uri, report = prepare_submission(blend, snapshot, options, root)
        print(f"Packed {len(report.files)} file(s), {report.bytes_total / 1e6:.1f} MB; "
              f"uploaded {report.files_uploaded} new file(s), {report.bytes_uploaded} bytes to {root}")
        backend = LocalBackend(concurrency=slices)
        record = backend.submit(spec, spec_uri, source_blend=str(blend))
        RecordStore().save(record)
        print(f"Submitted {record.submission_id}: {len(spec.frames)} frames in {len(spec.slices)} slices "
              "(follow it with: aws-batch-render status " + record.submission_id + ")")
        tty = sys.stdout.isatty()
        last = ""
        while True:
            status = backend.status(record)
            line = progress_line(status, width=100)
            if tty:
                print("\r" + line.ljust(110), end="", flush=True)
            elif line != last:
                print(line, flush=True)
            last = line
            if status.finished:
                break
            time.sleep(0.5)
        if tty:
            print()
        if status.state != "SUCCEEDED":
            print(f"The render ended {status.state}: {status.message}", file=sys.stderr)
            print(backend.logs(record, lines=30), file=sys.stderr)
            return 1
        got = download_submission(spec, out / "download", frames=False, video=True)
        video = out / "demo.mp4"
        os.replace(got.video, video)
        print(f"Done in {format_duration(status.elapsed_seconds)} "
              f"({status.seconds_per_frame or 0:.2f} s per frame per slice).")
        print(f"Video: {video}")
        return 0
    except AwsBatchRenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
