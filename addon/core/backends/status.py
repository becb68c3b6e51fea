"""The status model shared by both backends, the add-on panel and the CLI.

Pure data and pure functions: a backend gathers raw facts (per-state chunk counts,
frames found in the output store, per-slice progress records) and :func:`summarize`
turns them into one :class:`JobStatus`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..exitcodes import CONTENT_ERROR
from ..progress import SliceProgress
from ..still_split import parts_done_text
from .eta import SCHEDULE

# AWS Batch job states, in pipeline order; the local backend uses the same words.
PENDING_STATES = ("SUBMITTED", "PENDING", "RUNNABLE")
ACTIVE_STATES = ("STARTING", "RUNNING")
DONE_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")
ALL_STATES = PENDING_STATES + ACTIVE_STATES + DONE_STATES


@dataclass
class JobStatus:
    """One snapshot of a submission's progress, for the panel and the CLI alike."""

    submission_id: str
    backend: str
    state: str  # SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, STITCHING, SUCCEEDED, FAILED, CANCELLED
    frames_total: int
    frames_done: int = 0
    chunk_counts: dict[str, int] = field(default_factory=dict)
    failed_slices: list[int] = field(default_factory=list)
    stitch_state: str = ""  # "" when there is no stitch job
    elapsed_seconds: float = 0.0
    eta_seconds: float | None = None
    seconds_per_frame: float | None = None
    latest_frame: int | None = None
    latest_frame_uri: str = ""
    video_uri: str = ""  # set once the video exists
    vcpu_hours: float = 0.0
    message: str = ""
    parts_total: int = 0  # a still split by samples: every part of every frame (0: no split)
    parts_done: int = 0

    @property
    def finished(self) -> bool:
        return self.state in DONE_STATES

    @property
    def fraction(self) -> float:
        return self.frames_done / self.frames_total if self.frames_total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate_eta(
    frames_remaining: int,
    seconds_per_frame: float | None,
    active_slices: int,
    pending_slices: int,
    throughput: float | None = None,
    straggler: float = 0.0,
) -> float | None:
    """Seconds left. From ``throughput`` (frames per second finished across all chunks at
    once, measured over a recent window: :class:`Throughput`) when it is known; otherwise
    remaining frames spread over the slices that run at once, at the per-frame render time
    (which leaves out every chunk's start-up, so it is too low until throughput is known).
    ``straggler`` (:func:`straggler_seconds`) is the longest any one chunk still needs: at
    the end fewer chunks run at once, and the last one sets the finish."""
    if frames_remaining <= 0:
        return 0.0
    if throughput and throughput > 0:
        return max(frames_remaining / throughput, straggler)
    if not seconds_per_frame or seconds_per_frame <= 0:
        return None
    parallel = max(1, active_slices or min(pending_slices, 1))
    return frames_remaining * seconds_per_frame / parallel


class Throughput:
    """Frames finished per second across every chunk of a submission, over a recent window
    of the polls seen in this process: the last :attr:`min_window_s` seconds or the last
    :attr:`window_share` of the time since the first frame, whichever is longer. Wall-clock
    throughput counts what per-frame render times leave out (chunk start-up, scene loading,
    uploads, chunks that share the CPU), so it holds on both backends."""

    min_window_s = 45.0
    window_share = 0.75
    keep = 400  # samples per submission

    def __init__(self) -> None:
        self._samples: dict[str, list[tuple[float, int]]] = {}

    def observe(self, submission_id: str, frames_done: int, now: float) -> float | None:
        """Record a poll; frames per second over the window, or None while unknown."""
        samples = self._samples.setdefault(submission_id, [])
        if samples and (now < samples[-1][0] or frames_done < samples[-1][1]):
            samples.clear()  # a retry or another clock: start over
        if not samples or frames_done != samples[-1][1] or now - samples[-1][0] >= 1.0:
            samples.append((now, frames_done))
            del samples[: -self.keep]
        moving = [x for x in samples if x[1] > 0]
        if not moving or len(samples) < 2:
            return None
        first_frame_t = moving[0][0]
        # the last poll before any frame: the moment work is known to have started
        before = [x for x in samples if x[1] == 0]
        start_t = before[-1][0] if before else first_frame_t
        window = max(self.min_window_s, self.window_share * (now - start_t))
        t0, f0 = next(((t, f) for t, f in samples if t >= now - window), samples[0])
        if t0 >= now or frames_done <= f0:
            return None
        return (frames_done - f0) / (now - t0)

    def forget(self, submission_id: str) -> None:
        self._samples.pop(submission_id, None)


def straggler_seconds(records: Iterable[SliceProgress], unstarted_running: int = 0) -> float:
    """The longest time one chunk still needs at its own pace; ``unstarted_running`` chunks
    that run but have no frame yet need a whole chunk at the mean pace."""
    longest = 0.0
    paces = []
    size = 0
    for r in records:
        if r.seconds_per_frame and r.seconds_per_frame > 0:
            paces.append(r.seconds_per_frame)
            size = max(size, r.frames_total)
            longest = max(longest, max(0, r.frames_total - r.frames_done) * r.seconds_per_frame)
    if unstarted_running > 0 and paces:
        longest = max(longest, size * sum(paces) / len(paces))
    return longest


#: The process-wide throughput history :func:`summarize` feeds (polls of the panel and the CLI).
THROUGHPUT = Throughput()


def mean_seconds_per_frame(records: Iterable[SliceProgress]) -> float | None:
    """Frame-weighted mean over every slice that has rendered a frame."""
    total_frames = 0
    total_seconds = 0.0
    for r in records:
        if r.seconds_per_frame and r.frames_done:
            total_frames += r.frames_done
            total_seconds += r.seconds_per_frame * r.frames_done
    return total_seconds / total_frames if total_frames else None


def overall_state(chunk_counts: Mapping[str, int], stitch_state: str, frames_done: int) -> str:
    """One word for the whole submission from its children's and the stitch's states."""
    total = sum(chunk_counts.values())
    if stitch_state == "CANCELLED" or (chunk_counts.get("CANCELLED", 0) and not _active(chunk_counts)):
        return "CANCELLED"
    if chunk_counts.get("FAILED", 0) and not _active(chunk_counts) and not _pending(chunk_counts):
        return "FAILED"
    if stitch_state == "FAILED":
        return "FAILED"
    if total and chunk_counts.get("SUCCEEDED", 0) == total:
        if stitch_state in ("", "SUCCEEDED"):
            return "SUCCEEDED"
        return "STITCHING"
    if _active(chunk_counts):
        return "RUNNING"
    for s in ("RUNNABLE", "PENDING", "SUBMITTED"):
        if chunk_counts.get(s, 0):
            return "RUNNING" if frames_done else s
    return "SUBMITTED"


def summarize(
    *,
    submission_id: str,
    backend: str,
    frames_total: int,
    chunk_counts: Mapping[str, int],
    stitch_state: str,
    frames_done: int,
    records: Iterable[SliceProgress] = (),
    elapsed_seconds: float = 0.0,
    latest_frame: int | None = None,
    latest_frame_uri: str = "",
    failed_slices: Iterable[int] = (),
    video_uri: str = "",
    vcpu_hours: float = 0.0,
    message: str = "",
    parts_total: int = 0,
    now: float | None = None,
) -> JobStatus:
    records = list(records)
    state = overall_state(chunk_counts, stitch_state, frames_done)
    spf = mean_seconds_per_frame(records)
    active = sum(chunk_counts.get(s, 0) for s in ACTIVE_STATES)
    pending = sum(chunk_counts.get(s, 0) for s in PENDING_STATES)
    now = time.time() if now is None else now
    rate = THROUGHPUT.observe(submission_id, frames_done, now)
    started = sum(1 for r in records if r.seconds_per_frame and r.frames_done < r.frames_total)
    straggler = straggler_seconds(records, max(0, active - started))
    # the chunks' schedule when their progress records tell it; throughput, then averages, before
    eta = SCHEDULE.estimate(submission_id, records, chunk_counts, frames_total - frames_done, now)
    if eta is None:
        eta = estimate_eta(frames_total - frames_done, spf, active, pending, rate, straggler)
    if state in DONE_STATES:
        eta = None
    if state in ("SUCCEEDED",):
        eta = 0.0
    return JobStatus(
        submission_id=submission_id,
        backend=backend,
        state=state,
        frames_total=frames_total,
        frames_done=frames_done,
        chunk_counts={k: v for k, v in chunk_counts.items() if v},
        failed_slices=sorted(set(failed_slices)),
        stitch_state=stitch_state,
        elapsed_seconds=elapsed_seconds,
        eta_seconds=eta,
        seconds_per_frame=spf,
        latest_frame=latest_frame,
        latest_frame_uri=latest_frame_uri,
        video_uri=video_uri,
        vcpu_hours=vcpu_hours,
        message=message,
        parts_total=parts_total,
        parts_done=min(parts_total, chunk_counts.get("SUCCEEDED", 0)) if parts_total else 0,  # a chunk is a part
    )


def failure_note(
    failed_slices: Iterable[int], records: Iterable[SliceProgress], exit_codes: Mapping[int, int] | None = None
) -> str:
    """The worker's own one-line reason for the first failed slice that left one in its
    progress record, and whether ``retry`` can help (not after a content error, exit 65)."""
    failed = sorted(set(failed_slices))
    by_index = {r.index: r for r in records if r.state == "FAILED" and r.message}
    for i in failed:
        rec = by_index.get(i)
        if rec is None:
            continue
        reason = rec.message.strip().rstrip(".")
        more = f" ({len(failed) - 1} more slice(s) failed too)" if len(failed) > 1 else ""
        code = rec.exit_code if rec.exit_code is not None else (exit_codes or {}).get(i)
        if code == CONTENT_ERROR:
            return (f"Slice {i} failed: {reason}{more}. Retrying will not help: fix the scene or its settings "
                    "and submit again.")  # fmt: skip
        return f"Slice {i} failed: {reason}{more}. 'retry' renders it again."
    return ""


def format_duration(seconds: float | None) -> str:
    """``95 -> '1m 35s'``; None -> '--'."""
    if seconds is None or math.isnan(seconds):
        return "--"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {s:02d}s"
    return f"{s}s"


def _active(counts: Mapping[str, int]) -> bool:
    return any(counts.get(s, 0) for s in ACTIVE_STATES)


def _pending(counts: Mapping[str, int]) -> bool:
    return any(counts.get(s, 0) for s in PENDING_STATES)


def progress_line(status: JobStatus, width: int = 0) -> str:
    """``[#####-----] 37/240 frames 15% | run 3 wait 9 ok 20 fail 1 | ETA 4m 10s | RUNNING``.

    ``width`` 0 gives a line without the bar (for logs and pipes).
    """
    c = status.chunk_counts
    chunks = []
    for label, states in (
        ("run", ACTIVE_STATES),
        ("wait", PENDING_STATES),
        ("ok", ("SUCCEEDED",)),
        ("fail", ("FAILED",)),
        ("cancelled", ("CANCELLED",)),
    ):
        n = sum(c.get(s, 0) for s in states)
        if n:
            chunks.append(f"{label} {n}")
    pct = math.floor(100 * status.fraction)
    done_text = f"{status.frames_done}/{status.frames_total} frames {pct}%"
    if status.parts_total:  # a split still: "1 frame, 3 of 8 parts"
        done_text = parts_done_text(status.frames_total, status.parts_total, status.parts_done)
    tail = (
        f"{done_text} | chunks {' '.join(chunks) or '-'} | "
        f"ETA {format_duration(status.eta_seconds)} | {status.state}"
    )
    if status.stitch_state and status.state in ("STITCHING",):
        tail += f" (stitch {status.stitch_state})"
    if width <= 0:
        return f"{status.submission_id}: {tail}"
    bar_width = max(10, min(40, width - len(tail) - 4))
    filled = int(bar_width * status.fraction)
    return f"[{'#' * filled}{'-' * (bar_width - filled)}] {tail}"
