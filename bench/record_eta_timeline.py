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
import os
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


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU since boot."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + vals[4]
    return sum(vals) - idle, sum(vals)


def _tree(root: int) -> dict[int, int]:
    """CPU jiffies (user + system) of ``root`` and every live process under it, by pid."""
    parent, cpu = {}, {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(d.name)] = int(fields[1])
        cpu[int(d.name)] = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    ours = {root}
    changed = True
    while changed:
        changed = False
        for pid, pp in parent.items():
            if pp in ours and pid not in ours:
                ours.add(pid)
                changed = True
    return {pid: cpu.get(pid, 0) for pid in ours}


def _favour(pids, nice: int) -> None:
    """Give this render's processes the scheduler's preference over the rest of a shared
    machine: the local backend starts each worker in its own session, hence its own
    scheduler autogroup, where a plain nice value does not reach."""
    for pid in pids:
        try:
            Path(f"/proc/{pid}/autogroup").write_text(str(nice))
        except OSError:
            pass


class CpuAccount:
    """Per poll: cores busy on the whole machine and in this render's own processes since the
    poll before, so a recording shows whether something else took the CPU under it."""

    def __init__(self, nice: int | None) -> None:
        self.nice = nice
        self.prev = (*_machine_jiffies(), sum(_tree(os.getpid()).values()))

    def sample(self) -> dict:
        busy, total = _machine_jiffies()
        tree = _tree(os.getpid())
        if self.nice is not None:
            _favour(tree, self.nice)
        own = sum(tree.values())
        pb, pt, po = self.prev
        self.prev = (busy, total, own)
        ncpu = os.cpu_count() or 1
        span = max(1, total - pt) / ncpu  # jiffies of wall time
        return {
            "busy": round((busy - pb) / span, 2),
            "own": round(max(0, own - po) / span, 2),
            "load1": round(os.getloadavg()[0], 2),
        }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--chunk", type=int, default=6)
    ap.add_argument("--concurrency", type=int, default=None, help="default: the backend's (cores / threads)")
    ap.add_argument("--samples", type=int, default=24)
    ap.add_argument("--favour", type=int, default=None, metavar="NICE",
                    help="scheduler autogroup nice (-20..19) for the render's processes, as root: "
                         "a render as the machine's main job while others run tests")  # fmt: skip
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        blend = make_scene(
            Path(tmp) / "scene.blend", "--frames", str(args.frames), "--size", "160x90", "--samples", str(args.samples)
        )
        slices = [range(a, min(a + args.chunk, args.frames + 1)) for a in range(1, args.frames + 1, args.chunk)]
        spec, spec_uri = stage_submission(
            Path(tmp) / "store", blend, slices, submission_id="eta-local", video=False, size=(160, 90)
        )
        backend = LocalBackend(concurrency=args.concurrency)
        seen: dict = {}
        real_summarize = local_backend.summarize

        def tap(**kw):  # keep the per-slice progress records the backend read for this poll
            seen["records"] = [_relative(asdict(r), t0) for r in kw.get("records", ())]
            return real_summarize(**kw)

        local_backend.summarize = tap
        cpu = CpuAccount(args.favour)
        t0 = time.time()
        record = backend.submit(spec, spec_uri, source_blend=str(blend))
        polls = []
        while True:
            st = backend.status(record)
            polls.append(
                {
                    "t": round(time.time() - t0, 3),
                    "frames_done": st.frames_done,
                    "chunk_counts": st.chunk_counts,
                    "state": st.state,
                    "seconds_per_frame": st.seconds_per_frame,
                    "cpu": cpu.sample(),
                    "records": seen.get("records", []),
                }
            )
            if st.finished:
                break
            time.sleep(0.5)
    last = max((r["updated_at"] for p in polls for r in p["records"]), default=polls[-1]["t"])
    slots = args.concurrency or local_backend.default_concurrency(spec.render.threads)
    data = {
        "backend": "local",
        "favour": args.favour,
        "end": round(last, 3),
        "frames_total": args.frames,
        "chunk": args.chunk,
        "concurrency": slots,
        "poll_s": 0.5,
        "samples": args.samples,
        "polls": polls,
    }
    Path(args.out).write_text(compact_json(data))
    other = [p["cpu"]["busy"] - p["cpu"]["own"] for p in polls]
    print(
        f"{len(polls)} polls, finished in {polls[-1]['t']} s ({polls[-1]['state']}); cores busy with other "
        f"processes: mean {sum(other) / len(other):.2f}, max {max(other):.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
