"""The time left for a submission, from a schedule of its chunks rather than an average.

A submission's chunks run a few at a time (the local backend's concurrency, the compute
environment's instances on AWS); each pays a start-up (Blender starting, the scene
loading, on AWS the container) and then renders its frames one after another. So the
time left is a schedule: every running chunk finishes its own frames at its own pace,
counted from its last frame; each waiting chunk takes the first slot that frees up, pays
the start-up and renders its frames. The estimate is when the last slot frees.

What it learns comes from the per-slice progress records both backends read, seen poll
after poll in this process (:class:`ChunkSchedule` keeps that history per submission):
- the wall-clock pace of a chunk: seconds between its frames as they arrive, which counts
  the saving, uploading and sharing of the CPU that the render time leaves out; chunks
  still to come take the median pace of the chunks started last, so one straggler does
  not stretch them;
- the start-up: from a chunk's slot freeing to its first record with frames, less those
  frames (a poll now and then may see several at once);
- the sizes of chunks no record describes yet: the submission's chunk size, the rest in
  the last one.
Pure functions and plain data: no bpy, no I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..progress import SliceProgress

ACTIVE = ("STARTING", "RUNNING")
#: the weight of a chunk's newest frame interval in its own pace
RECENT_WEIGHT = 0.5
#: ... in the pace of all chunks (a shared machine slows down and speeds up as it goes)
SHARED_WEIGHT = 0.2
#: the weight of the newest chunk's start-up in the start-up of chunks still to come
STARTUP_WEIGHT = 0.5
WAITING = ("SUBMITTED", "PENDING", "RUNNABLE")


@dataclass
class _Slice:
    first_seen: tuple[int, float] = (0, 0.0)  # (frames done, time of the last frame) at first sight
    last: tuple[int, float] = (0, 0.0)
    started_at: float = 0.0
    lead_seen: bool = False  # its start-up is in ``_History.leads``
    ended: bool = False  # its last frame is in ``_History.ends``
    recent: float = 0.0  # seconds per frame, recent frames weighing most (0: unknown)


@dataclass
class _History:
    slices: dict[int, _Slice] = field(default_factory=dict)
    capacity: int = 0  # the most chunks seen running at once while others waited
    pace: float = 0.0  # seconds per frame over every chunk, recent frames weighing most
    # (frames, seconds) from a slot freeing to the first record of its chunk with frames:
    # a poll now and then may see several frames at once, so the frame count comes along
    leads: list[tuple[int, float]] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)  # when each finished chunk wrote its last frame
    started: int = 0  # chunks that had started (running or ended) at the last poll
    activations: list[float] = field(default_factory=list)  # the poll that first saw each of them


class ChunkSchedule:
    """Per-submission history of the progress records, and the schedule estimate."""

    def __init__(self) -> None:
        self._runs: dict[str, _History] = {}

    def forget(self, submission_id: str) -> None:
        self._runs.pop(submission_id, None)

    def estimate(
        self,
        submission_id: str,
        records: Iterable[SliceProgress],
        chunk_counts: Mapping[str, int],
        frames_left: int,
        now: float,
    ) -> float | None:
        """Seconds until the last frame, or None while no chunk has a pace yet (or the
        records carry no times: then the caller falls back to throughput)."""
        if frames_left <= 0:
            return 0.0
        records = [r for r in records if r.updated_at]
        if not records:
            return None
        hist = self._runs.setdefault(submission_id, _History())
        for r in records:
            self._observe(hist, r)
        active = sum(chunk_counts.get(s, 0) for s in ACTIVE)
        waiting = sum(chunk_counts.get(s, 0) for s in WAITING)
        started = active + sum(chunk_counts.get(s, 0) for s in ("SUCCEEDED", "FAILED", "CANCELLED"))
        hist.activations += [now] * max(0, started - hist.started)
        hist.started = started
        if waiting:
            hist.capacity = max(hist.capacity, active)
        pace = _typical_pace(hist, 2 * max(hist.capacity, active, 1) + 1) or hist.pace or _render_pace(records)
        if pace is None:
            return None
        startup = _startup(hist, pace)
        running = [r for r in records if r.state == "RUNNING" and r.frames_done < r.frames_total]
        ends = []
        left_in_running = 0
        for r in running:
            own = _slice_pace(hist.slices.get(r.index)) or pace
            left = r.frames_total - r.frames_done
            left_in_running += left
            if r.frames_done:
                since = max(0.0, now - r.updated_at)
                ends.append(max(left * own - since, (left - 1 + 0.1) * own))
            else:
                began = _freed(hist, r.started_at) if r.started_at else now
                ends.append(max(began + startup + own - now, 0.1 * own) + (left - 1) * own)
        # running without a record yet (AWS reads one now and then): started when a poll
        # first saw that many chunks running, with a share of the frames no record claims
        unseen = max(0, active - len(running))
        chunk = max(r.frames_total for r in records)
        sizes = _sizes(max(0, frames_left - left_in_running), waiting + unseen, chunk)
        for began, size in zip(sorted(hist.activations)[len(hist.activations) - unseen :] if unseen else (), sizes):
            ends.append(max(began + startup + pace - now, 0.1 * pace) + (size - 1) * pace)
        slots = [*ends, *[0.0] * max(0, max(hist.capacity, active, 1) - len(ends))]
        heapq.heapify(slots)
        finish = max(ends, default=0.0)
        for size in sizes[unseen:]:
            t = heapq.heappop(slots) + startup + size * pace
            finish = max(finish, t)
            heapq.heappush(slots, t)
        return finish

    @staticmethod
    def _observe(hist: _History, r: SliceProgress) -> None:
        s = hist.slices.get(r.index)
        now_seen = (r.frames_done, r.updated_at)
        if s is None or r.frames_done < s.last[0]:  # new, or a retry started it again
            s = hist.slices[r.index] = _Slice(first_seen=now_seen, last=now_seen)
        if s.first_seen[0] == 0:  # the pace counts from a frame, never from the start-up
            s.first_seen = now_seen
        if r.started_at:
            s.started_at = r.started_at
        if s.last[0] > 0 and r.frames_done > s.last[0] and r.updated_at > s.last[1]:
            step = (r.updated_at - s.last[1]) / (r.frames_done - s.last[0])
            s.recent = _blend(s.recent, step, RECENT_WEIGHT)
            hist.pace = _blend(hist.pace, step, SHARED_WEIGHT)
        if r.frames_done and not s.lead_seen and s.started_at and r.updated_at >= s.started_at:
            s.lead_seen = True
            # from when its slot freed (the chunk before it ended), so the time the next
            # chunk takes to be started counts too
            hist.leads.append((r.frames_done, max(0.0, r.updated_at - _freed(hist, s.started_at))))
        if r.frames_done >= r.frames_total and not s.ended:  # seen running or already done
            s.ended = True
            hist.ends.append(r.updated_at)
        s.last = now_seen


def _slice_pace(s: _Slice | None) -> float | None:
    """A chunk's own pace, its latest frames weighing most: when fewer chunks share the
    machine at the end, the last ones speed up."""
    if s is None:
        return None
    if s.recent:
        return s.recent
    frames = s.last[0] - s.first_seen[0]
    return (s.last[1] - s.first_seen[1]) / frames if frames > 0 and s.last[1] > s.first_seen[1] else None


def _sizes(frames: int, count: int, chunk: int) -> list[float]:
    """The frames of ``count`` chunks no record describes yet, in the order they run: a
    submission splits its frames into chunks of one size with the rest in the last, so
    ``chunk`` frames each and the rest last where that adds up, else an even share."""
    if count <= 0:
        return []
    if chunk and (count - 1) * chunk < frames <= count * chunk:
        return [float(chunk)] * (count - 1) + [float(frames - (count - 1) * chunk)]
    return [frames / count] * count


def _startup(hist: _History, pace: float) -> float:
    """Seconds from a slot freeing to a chunk's first frame there, less that frame (so the
    first frame's extra cost, the scene loading, counts as start-up): each chunk's lead less
    the frames it held by then at ``pace``, the latest chunks weighing most."""
    out = -1.0
    for frames, lead in hist.leads:
        one = max(0.0, lead - frames * pace)
        out = one if out < 0 else STARTUP_WEIGHT * one + (1 - STARTUP_WEIGHT) * out
    return out if out >= 0 else pace


def _typical_pace(hist: _History, window: int) -> float | None:
    """The pace a chunk still to come will likely have: the median of the own paces of the
    ``window`` chunks started last (one slot more than run at once), so one straggler, slow
    for its own frames' sake, does not stretch every chunk after it."""
    recent = sorted(hist.slices.values(), key=lambda s: s.started_at or s.first_seen[1])
    paces = [p for p in (_slice_pace(s) for s in recent) if p][-window:]
    if not paces:
        return None
    paces.sort()
    mid = len(paces) // 2
    return paces[mid] if len(paces) % 2 else (paces[mid - 1] + paces[mid]) / 2


def _freed(hist: _History, started_at: float) -> float:
    """When the slot of a chunk that started at ``started_at`` freed: the last chunk end
    before it (so the time it took to start the next chunk counts), or its own start."""
    return max((e for e in hist.ends if e <= started_at), default=started_at)


def _blend(old: float, new: float, weight: float) -> float:
    return new if not old else weight * new + (1 - weight) * old


def _render_pace(records: list[SliceProgress]) -> float | None:
    """The workers' own render times, until two frames of one chunk were seen."""
    own = [(r.seconds_per_frame, r.frames_done) for r in records if r.seconds_per_frame and r.frames_done]
    n = sum(d for _, d in own)
    return sum(p * d for p, d in own) / n if n else None


#: The process-wide history :func:`.status.summarize` feeds.
SCHEDULE = ChunkSchedule()
