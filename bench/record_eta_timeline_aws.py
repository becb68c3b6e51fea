"""Record an AWS Batch run's timeline for the ETA test (tests/test_eta.py), with no AWS
account: the real AWS backend submits to moto (in this process), and a scripted run then
plays the parts no fake can render:

    PYTHONPATH=. .venv/bin/python bench/record_eta_timeline_aws.py OUT.json [--seed 7]
        [--frames 120] [--chunk 10] [--instances 4] [--poll 10]

What is scripted, poll after poll, on a virtual clock (seeded): moto's array children go
RUNNABLE -> STARTING -> RUNNING -> SUCCEEDED as a compute environment of ``--instances``
instances would run them (the first instances come up after 45-75 s, the image pull takes
15-30 s on a fresh instance and 3-6 s on a warm one, Batch hands a freed instance to the
next child after 5-15 s); each worker downloads and loads the scene (12-22 s), then renders
its frames at 12 s +- 25 % each, uploading each frame (valid PNG bytes, with the object's
LastModified set to the virtual time) and its progress record after each, as the worker
does. What is real: the backend's follower reads all of it over HTTP (describe_jobs, the
frame listing, the progress records) exactly as against AWS; each poll keeps what it
handed to ``summarize`` (chunk counts, frames done, per-slice records), times made
relative to the submit. ``end`` is the last frame's upload time.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import addon.core.backends.aws_batch.following as following  # noqa: E402
from addon.core.aws.session import AwsSettings, client  # noqa: E402
from addon.core.progress import SliceProgress  # noqa: E402
from addon.core.storage import S3Store  # noqa: E402
from bench.record_eta_timeline import compact_json  # noqa: E402
from tests.frame_images import png_bytes  # noqa: E402
from tests.helpers import moto_api, start_inproc_moto  # noqa: E402
from tests.test_aws_batch_support import BUCKET, create_batch_env, write_spec  # noqa: E402

ACCOUNT, REGION = "123456789012", "us-east-1"
T0 = 1_800_000_000.0  # the virtual clock's zero (unix seconds)


@dataclass
class Chunk:
    frames: list[int]
    queued_until: float = 0.0  # RUNNABLE until then
    running_at: float = 0.0  # STARTING until then; the worker starts here
    frame_times: list[float] = field(default_factory=list)
    renders: list[float] = field(default_factory=list)  # Blender's own seconds per frame

    def state(self, t: float) -> str:
        if t < self.queued_until:
            return "RUNNABLE"
        if t < self.running_at:
            return "STARTING"
        return "SUCCEEDED" if t >= self.frame_times[-1] + 1.0 else "RUNNING"


def plan(rng: random.Random, frames: int, chunk: int, instances: int) -> list[Chunk]:
    chunks = [Chunk(list(range(a, min(a + chunk, frames + 1)))) for a in range(1, frames + 1, chunk)]
    free = sorted(rng.uniform(45, 75) for _ in range(instances))  # when each instance can take a child
    warm = [False] * instances
    for c in chunks:  # Batch starts array children in index order
        slot = min(range(instances), key=lambda i: free[i])
        c.queued_until = free[slot] + (rng.uniform(5, 15) if warm[slot] else 0.0)
        c.running_at = c.queued_until + (rng.uniform(3, 6) if warm[slot] else rng.uniform(15, 30))
        t = c.running_at + rng.uniform(12, 22)  # download the inputs, load the scene
        for _ in c.frames:
            step = 12.0 * rng.uniform(0.75, 1.25)
            t += step
            c.frame_times.append(t)
            c.renders.append(step - 1.0)  # the rest is saving and uploading
        free[slot], warm[slot] = t + 1.0, True
    return chunks


def main() -> int:
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ[key] = value  # moto's dummy credentials
    os.environ.pop("AWS_PROFILE", None)
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--instances", type=int, default=4)
    ap.add_argument("--poll", type=float, default=10.0)
    args = ap.parse_args()
    chunks = plan(random.Random(args.seed), args.frames, args.chunk, args.instances)

    server, endpoint = start_inproc_moto()
    try:
        moto_api(endpoint, "config", {"batch": {"use_docker": False}})
        settings = AwsSettings(region=REGION, endpoint_url=endpoint)
        client("s3", settings).create_bucket(Bucket=BUCKET)
        env = create_batch_env(settings)
        spec, spec_uri = write_spec(settings, slices=[c.frames for c in chunks], submission_id="eta-aws")
        backend = env.backend(vcpus=4)
        record = backend.submit(spec, spec_uri)
        polls = record_polls(backend, record, spec, settings, chunks, args.poll)
    finally:
        server.stop()
    end = max(c.frame_times[-1] for c in chunks)
    data = {"backend": "aws", "end": round(end, 3), "frames_total": args.frames, "chunk": args.chunk,
            "instances": args.instances, "seed": args.seed, "poll_s": args.poll, "polls": polls}  # fmt: skip
    Path(args.out).write_text(compact_json(data))
    print(f"{len(polls)} polls, last frame at {end:.1f} s")
    return 0


def record_polls(backend, record, spec, settings, chunks: list[Chunk], poll: float) -> list[dict]:
    from moto.batch.models import batch_backends
    from moto.s3.models import s3_backends

    jobs = batch_backends[ACCOUNT][REGION]._jobs
    bucket = s3_backends[ACCOUNT]["aws"].buckets[BUCKET]
    store = S3Store(settings)
    body = png_bytes(spec.render.width, spec.render.height)
    parent = record.jobs["render_job_id"]
    seen: dict = {}
    real_summarize = following.summarize

    def tap(**kw):
        seen["kw"] = kw
        return real_summarize(**kw)

    following.summarize = tap
    uploaded: set[int] = set()
    polls = []
    t = 0.0
    while True:
        for i, c in enumerate(chunks):
            state = c.state(t)
            job = jobs[f"{parent}:{i}"]
            job.status = state
            job.job_stopped = state == "SUCCEEDED"
            done = [(f, ft) for f, ft in zip(c.frames, c.frame_times, strict=True) if ft <= t]
            for f, ft in done:
                if f not in uploaded:
                    uri = spec.frame_uri(f)
                    store.put_bytes(body, uri)
                    bucket.keys[uri.split(f"s3://{BUCKET}/", 1)[1]].last_modified = datetime.fromtimestamp(T0 + ft, UTC)
                    uploaded.add(f)
            if state in ("RUNNING", "SUCCEEDED"):
                n = len(done)
                rec = SliceProgress(index=i, frames_total=len(c.frames), frames_done=n,
                                    seconds_per_frame=sum(c.renders[:n]) / n if n else None,
                                    state="SUCCEEDED" if n == len(c.frames) else "RUNNING",
                                    updated_at=T0 + (done[-1][1] if done else c.running_at),
                                    started_at=T0 + c.running_at)  # fmt: skip
                store.put_bytes(rec.to_json(), spec.progress_record_uri(i))
        jobs[parent].status = "SUCCEEDED" if all(c.state(t) == "SUCCEEDED" for c in chunks) else "PENDING"
        st = backend.status(record)
        kw = seen["kw"]
        polls.append({"t": round(t, 3), "frames_done": kw["frames_done"], "chunk_counts": kw["chunk_counts"],
                      "state": st.state, "records": [_relative(asdict(r)) for r in kw["records"]]})  # fmt: skip
        if kw["frames_done"] >= sum(len(c.frames) for c in chunks):
            return polls
        t += poll


def _relative(rec: dict) -> dict:
    for key in ("updated_at", "started_at"):
        rec[key] = round(rec[key] - T0, 3) if rec.get(key) else 0.0
    return rec


if __name__ == "__main__":
    raise SystemExit(main())
