"""AWS API calls per status refresh of the AWS Batch backend, counted with botocore's
event hooks (``provide-client-params``: one per API call, retries not counted twice).

Scenarios: 100 and 10,000 frames, each cut into several chunk counts, with mixed child
states (running, failed, pending, succeeded) and 90% of the frames already in the bucket,
against moto in this process over real HTTP. Each scenario measures, side by side, a
steady refresh "before" (the follower forgets the frames it listed, as every refresh did
before the incremental listing: every frame key each time) and "after" (the incremental
listing of :mod:`addon.core.backends.aws_batch.frame_listing`). Target: the steady
refresh after is at most 3 calls whatever the frame and chunk count; the first refresh of
a new session at most ``2 + ceil(frames / 1000)``.

    .venv/bin/python bench/status_refresh.py            # prints a table, exits 1 if over budget
    .venv/bin/python bench/status_refresh.py --json     # machine-readable
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "abr-bench"
#: a frame object big enough to count as done in a listing (addon.core.framecheck.MIN_FRAME_BYTES)
FRAME = b"\x89PNG\r\n\x1a\n" + bytes(120)


def _setup_batch(settings):
    from addon.core.aws.session import client

    role = client("iam", settings).create_role(RoleName="bench", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    batch = client("batch", settings)
    ce = batch.create_compute_environment(
        computeEnvironmentName="bench-ce", type="UNMANAGED", state="ENABLED", serviceRole=role
    )
    batch.create_job_queue(
        jobQueueName="bench-q", state="ENABLED", priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce["computeEnvironmentArn"]}],
    )  # fmt: skip
    for name in ("bench-render", "bench-stitch"):
        batch.register_job_definition(
            jobDefinitionName=name, type="container",
            containerProperties={"image": "x", "vcpus": 4, "memory": 4096, "command": ["x"]},
        )  # fmt: skip
    client("s3", settings).create_bucket(Bucket=BUCKET)


def _scenario(settings, frames: int, chunk: int, index: int) -> dict:
    from moto.batch.models import batch_backends
    from moto.s3.models import s3_backends

    from addon.core.backends.aws_batch.backend import AwsBatchBackend
    from addon.core.backends.aws_batch.following import STEADY_CALLS, required_calls
    from addon.core.frames import chunk_frames
    from addon.core.jobspec import (
        InputManifest,
        JobSpec,
        OutputSpec,
        RenderSettings,
        VideoSettings,
        utc_now_iso,
    )
    from addon.core.progress import SliceProgress
    from addon.core.storage import S3Store

    sid = f"bench-{frames}-{chunk}-{index}"
    base = f"s3://{BUCKET}/submissions/{sid}/"
    slices = chunk_frames(list(range(1, frames + 1)), chunk_size=chunk)
    spec = JobSpec(
        submission_id=sid,
        created_at=utc_now_iso(),
        blender_version="5.2.3",
        tool_version="bench",
        inputs=InputManifest(uri=f"s3://{BUCKET}/inputs/", files={"s.blend": "a" * 64}, main_blend="s.blend"),
        slices=slices,
        output=OutputSpec(
            frames_uri=base + "frames/",
            progress_uri=base + "progress/",
            video_uri=base + "video/",
            video=VideoSettings(fps_num=24, fps_den=1, width=64, height=36),
        ),
        render=RenderSettings(engine="CYCLES", threads=4, width=64, height=36),
    )
    spec_uri = base + "spec.json"
    store = S3Store(settings)
    store.put_bytes(spec.to_json().encode(), spec_uri)
    backend = AwsBatchBackend(settings, "bench-q", "bench-render", "bench-stitch", vcpus=4)
    record = backend.submit(spec, spec_uri)

    # Mixed child states. The first 90% of the frames (by number) are in the bucket,
    # whatever the chunking, so the listing costs the same in every scenario: slices
    # wholly inside that range SUCCEEDED (about 1 in 97 FAILED), those it cuts through
    # are RUNNING, and the next 1% of the slices are RUNNING
    # without a frame yet, the rest wait in RUNNABLE.
    jobs = batch_backends[ACCOUNT][REGION]._jobs
    n = len(slices)
    parent = record.jobs["render_job_id"]
    present = int(frames * 0.9)
    plan_states = []
    started = 0  # slices after the present frames that have started (no frame written yet)
    for i, frames_of_slice in enumerate(slices):
        if frames_of_slice[-1] <= present:
            state = "FAILED" if i % 97 == 3 else "SUCCEEDED"
        elif frames_of_slice[0] <= present or started < max(1, n // 100):
            state = "RUNNING"
            started += frames_of_slice[0] > present
        else:
            state = "RUNNABLE"
        plan_states.append(state)
    if n == 1:
        jobs[parent].status = plan_states[0]
    else:
        for i, state in enumerate(plan_states):
            child = jobs[f"{parent}:{i}"]
            child.status = state
            child.job_stopped = state in ("SUCCEEDED", "FAILED")
        jobs[parent].status = "PENDING"
    jobs[record.jobs["stitch_job_id"]].status = "PENDING"
    s3 = s3_backends[ACCOUNT]["aws"]
    for f in range(1, present + 1):  # straight into moto's backend: 9,000 puts over HTTP are slow
        s3.put_object(BUCKET, f"submissions/{sid}/frames/{spec.frame_name(f)}", FRAME)
    running = [i for i, s in enumerate(plan_states) if s == "RUNNING"]
    for i in running:
        store.put_bytes(
            SliceProgress(index=i, frames_total=len(slices[i]), frames_done=0, seconds_per_frame=20.0).to_json(),
            spec.progress_record_uri(i),
        )

    # A new backend, as a new session would have: the first refresh also reads the spec.
    follower = AwsBatchBackend(settings, "bench-q", "bench-render", "bench-stitch")
    counted: Counter = Counter()

    def count(model, **_kwargs):
        counted[model.name] += 1

    for service in ("batch", "s3", "logs"):
        follower.client(service).meta.events.register("provide-client-params.*.*", count)

    def refresh(forget: bool) -> dict:
        if forget:
            follower._frame_listings.clear()
        counted.clear()
        t0 = time.perf_counter()
        status = follower.status(record)
        return {"calls": sum(counted.values()), "by_operation": dict(counted),
                "seconds": round(time.perf_counter() - t0, 3), "frames_done": status.frames_done}  # fmt: skip

    first = refresh(forget=False)
    before = [refresh(forget=True) for _ in range(2)]
    after = [refresh(forget=False) for _ in range(2)]
    steady = max(r["calls"] for r in after)
    return {
        "frames": frames,
        "chunk": chunk,
        "chunks": n,
        "frames_done": after[-1]["frames_done"],
        "same_frames_done": len({r["frames_done"] for r in [first, *before, *after]}) == 1,
        "first_refresh": first,
        "steady_before": before[-1],
        "steady_refresh": after[-1],
        "steady_calls": steady,
        "budget": STEADY_CALLS,
        "within_budget": steady <= STEADY_CALLS and first["calls"] <= required_calls(frames) + 1,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request

    from addon.core.aws.session import AwsSettings
    from tests.helpers import moto_api, start_inproc_moto

    server, endpoint = start_inproc_moto()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
    )  # fmt: skip
    try:
        moto_api(endpoint, "config", {"batch": {"use_docker": False}})
        settings = AwsSettings(region=REGION, endpoint_url=endpoint)
        _setup_batch(settings)
        rows = []
        plan = [(100, 1), (100, 10), (100, 100), (10_000, 1), (10_000, 10), (10_000, 100), (10_000, 10_000)]
        for i, (frames, chunk) in enumerate(plan):
            rows.append(_scenario(settings, frames, chunk, i))
    finally:
        server.stop()

    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        head = f"{'frames':>7} {'chunks':>7} {'first':>6} {'before':>14} {'after':>14} {'ratio':>6}"
        print(head + "  after: calls by operation")
        for r in rows:
            b, a = r["steady_before"], r["steady_refresh"]
            ops = ", ".join(f"{k} {v}" for k, v in sorted(a["by_operation"].items()))
            print(
                f"{r['frames']:>7} {r['chunks']:>7} {r['first_refresh']['calls']:>6} "
                f"{b['calls']:>3} / {b['seconds']:6.2f} s {a['calls']:>3} / {a['seconds']:6.2f} s "
                f"{b['seconds'] / max(a['seconds'], 1e-3):5.1f}x  {ops}"
            )
        print(
            f"steady calls after <= {rows[0]['budget']} everywhere: {all(r['within_budget'] for r in rows)}; "
            f"frames done identical before/after: {all(r['same_frames_done'] for r in rows)}"
        )
    ok = all(r["within_budget"] and r["same_frames_done"] for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
