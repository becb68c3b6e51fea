"""How much the worker adds on top of Blender and ffmpeg, measured side by side in one run.

    .venv/bin/python bench/worker_overhead.py [--repeats 3] [--stitch-frames 8] [--compare-tree DIR]

1. ``worker render`` wall time for 8 frames (320x180, Cycles, 16 samples; inputs and frames
   in a moto S3 server on loopback) against bpy rendering the same frames in one process
   (a fresh Python: import bpy, open the .blend, render the animation). Target <= 1.15.
2. ``worker stitch`` (file:// store: list, check, read frames in place, one ffmpeg for video +
   poster, upload) against bare ffmpeg encoding the same local frames with the same
   settings. Target <= 1.3. By default 240 frames (a 10 s clip: the 8 rendered frames
   repeated); with only 8 frames the worker's fixed ~0.2 s (Python start-up, imports,
   listing, uploads) dominates a 0.1 s encode, which says little about real stitches.

``--compare-tree DIR`` also times ``worker stitch`` from another checkout of the project (e.g.
``git worktree add /tmp/before HEAD~1``) in the same alternating loop, to compare two versions
of the worker side by side under the same load.

Runs alternate (baseline, worker, baseline, ...) and each side reports its median, so
both sides see the same machine load. Prints one line per ratio, and the CPU seconds of
each side (less sensitive to other load on a shared machine than wall time).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
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

from addon.core.jobspec import (  # noqa: E402
    InputManifest,
    JobSpec,
    OutputSpec,
    RenderSettings,
    VideoSettings,
    utc_now_iso,
)
from addon.core.storage import join_uri, open_store, path_to_uri  # noqa: E402

FRAMES = list(range(1, 9))

BASELINE_SCRIPT = """
import sys, bpy
blend, out = sys.argv[1], sys.argv[2]
bpy.ops.wm.open_mainfile(filepath=blend, load_ui=False)
scene = bpy.context.scene
scene.render.filepath = out + "/frame_######"
scene.render.image_settings.file_format = "PNG"
scene.frame_start, scene.frame_end = 1, 8
bpy.ops.render.render(animation=True)
"""


CPU: dict[str, list[float]] = {}


def timed(argv: list[str], env: dict[str, str], label: str, cwd: Path = ROOT) -> float:
    """Wall seconds; the CPU seconds of the process tree go to CPU[label] (load-independent)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=cwd)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    CPU.setdefault(label, []).append(cpu)
    return elapsed


def make_spec(root: str, sub: str, digest: str, slices: list[list[int]]) -> JobSpec:
    base = join_uri(root, f"submissions/{sub}/")
    return JobSpec(
        submission_id=sub,
        created_at=utc_now_iso(),
        blender_version="",
        tool_version="bench",
        inputs=InputManifest(uri=join_uri(root, "inputs/"), files={"scene.blend": digest}, main_blend="scene.blend"),
        slices=slices,
        output=OutputSpec(
            frames_uri=base + "frames/", progress_uri=base + "progress/", video_uri=base + "video/",
            video=VideoSettings(fps_num=24, fps_den=1, width=320, height=180),
        ),
        render=RenderSettings(engine="CYCLES", device="CPU", threads=0, width=320, height=180),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stitch-frames", type=int, default=240,
                        help="frames to stitch (the 8 rendered ones, repeated in order)")  # fmt: skip
    parser.add_argument("--only", choices=("render", "stitch"), default="",
                        help="measure one side only (stitch still renders its 8 frames once with bpy)")  # fmt: skip
    parser.add_argument("--compare-tree", type=Path, default=None,
                        help="another checkout whose worker stitch is timed side by side with this one")  # fmt: skip
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="abr-bench-"))
    env = {
        **os.environ,
        "BLENDER_USER_RESOURCES": str(tmp / "blender-user"),
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
    }  # fmt: skip
    from tests.helpers import start_moto_server

    moto, endpoint = start_moto_server(env=env)
    env["AWS_ENDPOINT_URL"] = endpoint
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
                                           "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")})  # fmt: skip
    try:
        blend = tmp / "bench.blend"
        subprocess.run([sys.executable, str(ROOT / "demo" / "make_scene.py"), str(blend), "--frames", "8",
                        "--size", "320x180", "--samples", "16"], check=True, capture_output=True, env=env)  # fmt: skip
        from addon.core.aws.session import AwsSettings, client

        client("s3", AwsSettings(region="us-east-1", endpoint_url=endpoint)).create_bucket(Bucket="bench")
        root = "s3://bench/"
        data = blend.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        store = open_store(root)
        store.put_bytes(data, join_uri(root, f"inputs/{digest}"))

        render_base, render_worker = [], []
        for i in range(args.repeats if args.only != "stitch" else 1):
            out = tmp / f"baseline-{i}"
            out.mkdir()
            render_base.append(timed([sys.executable, "-c", BASELINE_SCRIPT, str(blend), str(out)], env, "render-bpy"))
            if args.only == "stitch":
                break
            spec = make_spec(root, f"bench-{i}", digest, [FRAMES])
            spec_uri = join_uri(root, f"submissions/bench-{i}/spec.json")
            store.put_bytes(spec.to_json().encode(), spec_uri)
            wenv = {**env, "JOB_SPEC_URI": spec_uri, "AWS_BATCH_JOB_ARRAY_INDEX": "0"}
            render_worker.append(timed([sys.executable, "-m", "worker", "render"], wenv, "render-worker"))
            rendered = [o for o in store.list(spec.output.frames_uri)]
            assert len(rendered) == 8, f"worker rendered {len(rendered)} frames, expected 8"

        # stitch: the baseline's frames, as a file:// store (worker) and a folder (ffmpeg)
        frames_dir = tmp / "baseline-0"
        local_root = path_to_uri(tmp / "store", directory=True)
        n = args.stitch_frames
        stitch_frames = list(range(1, n + 1))
        sspec = make_spec(local_root, "stitch", digest, [stitch_frames])
        lstore = open_store(local_root)
        plain = tmp / "plain"
        plain.mkdir()
        for f in stitch_frames:
            src = frames_dir / f"frame_{(f - 1) % 8 + 1:06d}.png"
            lstore.put_file(src, sspec.frame_uri(f))
            shutil.copyfile(src, plain / f"frame_{f:06d}.png")
        lstore.put_bytes(sspec.to_json().encode(), join_uri(local_root, "spec.json"))
        bare = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-framerate", "24",
                "-start_number", "1", "-i", str(plain / "frame_%06d.png"), "-c:v", "libx264", "-preset", "medium",
                "-crf", "20", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(tmp / "bare.mp4")]  # fmt: skip
        senv = {**env, "JOB_SPEC_URI": join_uri(local_root, "spec.json")}
        stitch_base, stitch_worker, stitch_other = [], [], []
        other = args.compare_tree.resolve() if args.compare_tree else None
        for _ in range(max(args.repeats, 5) if args.only != "render" else 0):
            stitch_base.append(timed(bare, env, "stitch-ffmpeg"))
            stitch_worker.append(timed([sys.executable, "-m", "worker", "stitch"], senv, "stitch-worker"))
            if other is not None:
                oenv = {**senv, "PYTHONPATH": str(other)}
                stitch_other.append(timed([sys.executable, "-m", "worker", "stitch"], oenv, "stitch-other", other))

        if render_worker:
            rb, rw = statistics.median(render_base), statistics.median(render_worker)
            print(f"render  8 frames 320x180 Cycles 16spp: bpy alone {rb:.2f} s, worker (moto S3) {rw:.2f} s, "
                  f"ratio {rw / rb:.2f} (target <= 1.15)")  # fmt: skip
            cb, cw = statistics.median(CPU["render-bpy"]), statistics.median(CPU["render-worker"])
            print(f"        CPU seconds (moto server excluded): bpy alone {cb:.2f}, worker {cw:.2f}, "
                  f"ratio {cw / cb:.2f}")  # fmt: skip
        if stitch_worker:
            sb, sw = statistics.median(stitch_base), statistics.median(stitch_worker)
            print(f"stitch  {n} frames 320x180 h264: bare ffmpeg {sb:.3f} s, worker stitch {sw:.3f} s, "
                  f"ratio {sw / sb:.2f} (target <= 1.3)")  # fmt: skip
            cb, cw = statistics.median(CPU["stitch-ffmpeg"]), statistics.median(CPU["stitch-worker"])
            print(f"        CPU seconds: bare ffmpeg {cb:.3f}, worker stitch {cw:.3f}, ratio {cw / cb:.2f}")
        if stitch_other:
            so, co = statistics.median(stitch_other), statistics.median(CPU["stitch-other"])
            print(f"        --compare-tree worker stitch {so:.3f} s (ratio {so / sb:.2f}), CPU {co:.3f} "
                  f"(ratio {co / cb:.2f}); this tree / that tree: wall {sw / so:.2f}, CPU {cw / co:.2f}")  # fmt: skip
        print(json.dumps({"render": {"baseline": render_base, "worker": render_worker},
                          "stitch": {"baseline": stitch_base, "worker": stitch_worker}, "cpu": CPU}))  # fmt: skip
    finally:
        moto.terminate()
        moto.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
