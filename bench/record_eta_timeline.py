"""Record a real render's timeline for the ETA test (tests/test_eta.py).

    PYTHONPATH=. .venv/bin/python bench/record_eta_timeline.py OUT.json [--frames 48] [--chunk 6]
        [--concurrency 2] [--samples 24]

Renders a demo scene with the local backend ("This computer": the real worker, real
Blender) and polls its status every 0.5 s, as the panel does. Each poll is kept: the time
since the submit, frames done, chunk counts and the per-slice progress records the backend
read (their times made relative to the submit, like the polls'); ``end`` is when the last
frame was written; the test
replays them through ``summarize`` and compares each ETA with the time the render really
took to finish.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import addon.core.backends.local.backend as local_backend  # noqa: E402
from addon.core.backends.local.backend import LocalBackend  # noqa: E402
from tests.helpers import make_scene, stage_submission  # noqa: E402


def compact_json(data: dict) -> str:
    """One poll a line, without the record fields the ETA never reads."""
    for poll in data["polls"]:
        for rec in poll.get("records", []):
            for key in ("message", "exit_code", "attempt"):
                rec.pop(key, None)
    head = json.dumps({k: v for k, v in data.items() if k != "polls"})[:-1]
    polls = ",\n".join(json.dumps(p, separators=(",", ":")) for p in data["polls"])
    return f'{head}, "polls": [\n{polls}\n]}}\n'


def _relative(rec: dict, t0: float) -> dict:
    for key in ("updated_at", "started_at"):
        rec[key] = round(rec[key] - t0, 3) if rec.get(key) else 0.0
    return rec


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--chunk", type=int, default=6)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--samples", type=int, default=24)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        blend = make_scene(Path(tmp) / "scene.blend", "--frames", str(args.frames), "--size", "160x90",
                           "--samples", str(args.samples))
        slices = [range(a, min(a + args.chunk, args.frames + 1)) for a in range(1, args.frames + 1, args.chunk)]
        spec, spec_uri = stage_submission(Path(tmp) / "store", blend, slices, submission_id="eta-local", video=False,
                                           size=(160, 90))
        backend = LocalBackend(concurrency=args.concurrency)
        seen: dict = {}
        real_summarize = local_backend.summarize

        def tap(**kw):  # keep the per-slice progress records the backend read for this poll
            seen["records"] = [_relative(asdict(r), t0) for r in kw.get("records", ())]
            return real_summarize(**kw)

        local_backend.summarize = tap
        t0 = time.time()
        record = backend.submit(spec, spec_uri, source_blend=str(blend))
        polls = []
        while True:
            st = backend.status(record)
            polls.append({"t": round(time.time() - t0, 3), "frames_done": st.frames_done,
                          "chunk_counts": st.chunk_counts, "state": st.state,
                          "seconds_per_frame": st.seconds_per_frame, "records": seen.get("records", [])})
            if st.finished:
                break
            time.sleep(0.5)
    last = max((r["updated_at"] for p in polls for r in p["records"]), default=polls[-1]["t"])
    data = {"backend": "local", "end": round(last, 3), "frames_total": args.frames, "chunk": args.chunk,
            "concurrency": args.concurrency, "poll_s": 0.5,
            "samples": args.samples, "polls": polls}
    Path(args.out).write_text(compact_json(data))
    print(f"{len(polls)} polls, finished in {polls[-1]['t']} s ({polls[-1]['state']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
