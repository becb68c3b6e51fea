"""Synthetic render timelines for the ETA test, in the recorders' format
(bench/record_eta_timeline.py): a poll every ``poll`` seconds with the frames done, the
chunk counts and the per-slice progress records a backend would read then."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable


def chunk_sizes(frames: int, chunk: int) -> list[int]:
    """The slices the submission splits ``frames`` into: ``chunk`` each, the rest last."""
    return [min(chunk, frames - a) for a in range(0, frames, chunk)]


def synthetic(
    sizes: list[int],
    slots: int,
    pace: float | Callable[[int], float],
    startup: float = 3.0,
    first: float = 0.0,
    dispatch: float = 0.3,
    poll: float = 0.5,
) -> dict:
    """Chunks of ``sizes`` frames on ``slots`` slots, in order: each starts ``dispatch`` s
    after a slot frees, takes ``startup`` s to its first frame, then renders a frame every
    ``pace`` s (``pace(i)`` for chunk i), its first frame ``first`` s more (the scene load)."""
    free = [0.0] * slots
    chunks = []
    for i, n in enumerate(sizes):
        start = heapq.heappop(free) + dispatch
        step = pace(i) if callable(pace) else pace
        t, frames = start + startup, []
        for k in range(n):
            t += step + (first if k == 0 else 0.0)
            frames.append(round(t, 3))
        chunks.append((start, frames, step))
        heapq.heappush(free, frames[-1])
    end = max(frames[-1] for _s, frames, _p in chunks)
    polls = []
    for j in itertools.count():
        t = round(j * poll, 3)
        records, counts, done = [], {}, 0
        for i, (start, frames, step) in enumerate(chunks):
            if t < start:
                counts["RUNNABLE"] = counts.get("RUNNABLE", 0) + 1
                continue
            n = sum(1 for f in frames if f <= t)
            done += n
            state = "SUCCEEDED" if n == len(frames) else "RUNNING"
            counts[state] = counts.get(state, 0) + 1
            if t >= start + 0.2:  # the worker wrote its first record
                records.append({"index": i, "frames_total": len(frames), "frames_done": n,
                                "seconds_per_frame": round(0.9 * step, 3) if n else None,  # render time only
                                "state": state, "updated_at": frames[n - 1] if n else start,
                                "started_at": start})  # fmt: skip
        polls.append({"t": t, "frames_done": done, "chunk_counts": counts, "records": records})
        if t > end:
            break
    return {"backend": "local", "end": end, "frames_total": sum(sizes), "poll_s": poll, "polls": polls}
