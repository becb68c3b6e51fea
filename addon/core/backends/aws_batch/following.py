"""Following a submission on AWS Batch: its status, frames done, speed, ETA and vCPU-hours.

Cost of one status refresh (what ``bench/status_refresh.py`` measures), in AWS calls:

* one ``DescribeJobs`` for every render job of the submission (the first array and any
  retry arrays) plus the current stitch job — never one call per child;
* ``ListObjectsV2`` of the frames prefix, only where new frames can appear (see
  :mod:`.frame_listing`): one page in the steady state whatever the frame count, none
  once every render job has ended and was listed after. Frames done, the latest frame
  and each frame's upload time come from it; seconds per frame come from those times
  (consecutive frames of one slice), so the ETA needs no extra call;
* at most ONE extra call, only while something is left to do: either
  ``ListJobs(arrayJobId, jobStatus=FAILED)`` when the FAILED count of an array changed
  since the last refresh (its answer is cached: failed children stay failed), or else
  one ``GetObject`` of the progress record of the slice that wrote the newest frame (it
  knows the render time of a one-frame slice, which frame times cannot give). Records
  read are cached, so their knowledge accumulates across refreshes.
* once the submission has FAILED (nothing left to do), ONE ``GetObject`` of the first
  failed slice's progress record for the worker's reason (cached per backend).

That is 3 calls in the steady state, constant in the number of frames and chunks (the
progress record is skipped when the listing needed a second page). The first refresh of a
record in a backend lists every frame (``ceil(frames / 1000)`` pages) and reads the job
spec once (both cached per backend).

Batch has no CANCELLED state (cancelled jobs end FAILED): ``cancel`` marks the record,
and status then reports the stopped children as CANCELLED.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from typing import Any

from ...aws.errors import aws_errors
from ...errors import ObjectNotFoundError, StorageError
from ...jobspec import JobSpec
from ...progress import SliceProgress
from ..base import SubmissionRecord
from ..status import ACTIVE_STATES, DONE_STATES, PENDING_STATES, JobStatus, failure_note, summarize
from .frame_listing import FrameListing
from .jobs import BACKEND_NAME, BatchJobs, RenderJob

log = logging.getLogger(__name__)


def seconds_per_frame_records(
    slices: list[list[int]], frame_times: dict[int, float], frame_to_slice: dict[int, int]
) -> dict[int, SliceProgress]:
    """Per-slice progress from the upload times of its frames: frames done, the time of the
    latest (what the ETA counts a chunk's next frame from) and the render speed from the
    times between consecutive frames (none until a slice has two)."""
    by_slice: dict[int, list[float]] = {}
    for frame, t in frame_times.items():
        s = frame_to_slice.get(frame)
        if s is not None:
            by_slice.setdefault(s, []).append(t)
    records = {}
    for s, times in by_slice.items():
        times.sort()
        spf = (times[-1] - times[0]) / (len(times) - 1) if len(times) >= 2 and times[-1] > times[0] else None
        records[s] = SliceProgress(
            index=s,
            frames_total=len(slices[s]),
            frames_done=len(times),
            seconds_per_frame=spf,
            state="SUCCEEDED" if len(times) >= len(slices[s]) else "RUNNING",
            updated_at=times[-1],
        )
    return records


def _merge_progress(records: dict[int, SliceProgress], index: int, read: SliceProgress) -> None:
    """A worker's progress record read earlier, merged with what the frame listing shows now:
    the record while it is as new (its render time is the worker's own), else the listing's
    count and latest frame time (a record is read once in a while and goes stale) with the
    worker's start time, which the listing cannot know."""
    listed = records.get(index)
    if listed is None or read.frames_done >= listed.frames_done:
        records[index] = read
        return
    listed.started_at = listed.started_at or read.started_at
    listed.seconds_per_frame = listed.seconds_per_frame or read.seconds_per_frame


class Follower(BatchJobs):
    """Reads where a submission stands, in a constant number of AWS calls per refresh."""

    def status(self, record: SubmissionRecord) -> JobStatus:
        spec = self.spec_for(record)
        entries = self._entries(record)
        stitch_id = record.jobs.get("stitch_job_id", "")
        ids = [e.render_job_id for e in entries] + ([stitch_id] if stitch_id else [])
        described = self._describe(ids)
        counts, failed, listed = self._slice_states(record, described)
        stitch = described.get(stitch_id) if stitch_id else None
        stitch_state = stitch.get("status", "") if stitch else ""

        ended = all(described[e.render_job_id].get("status") in DONE_STATES for e in entries)
        frame_times = self._frames_done(record, spec, failed, ended)
        frames_done = len(frame_times)
        latest = max(frame_times, key=lambda f: (frame_times[f], f)) if frame_times else None

        f2s = self._frame_map(record, spec)
        records = seconds_per_frame_records(spec.slices, frame_times, f2s)
        if record.jobs.get("cancelled"):
            counts, stitch_state = _as_cancelled(counts, stitch_state)
        unfinished = frames_done < len(spec.frames) or stitch_state not in ("", *DONE_STATES)
        quiet = not listed and self._listing(record, spec).calls <= 1
        if quiet and unfinished and any(counts.get(s, 0) for s in ACTIVE_STATES):
            self._read_progress(record, spec, entries, f2s.get(latest, 0) if latest is not None else 0)
        for (sid, index), rec in self._progress_cache.items():
            if sid == record.submission_id and rec.seconds_per_frame:
                _merge_progress(records, index, rec)

        created = [described[e.render_job_id].get("createdAt", 0) for e in entries]
        stops = [j.get("stoppedAt", 0) for j in described.values()]
        start_ms = min(c for c in created if c) if any(created) else 0
        status = summarize(
            submission_id=record.submission_id,
            backend=BACKEND_NAME,
            frames_total=len(spec.frames),
            chunk_counts=dict(counts),
            stitch_state=stitch_state,
            frames_done=frames_done,
            records=records.values(),
            latest_frame=latest,
            latest_frame_uri=spec.frame_uri(latest) if latest is not None else "",
            failed_slices=failed,
            video_uri=spec.video_file_uri() if stitch_state == "SUCCEEDED" else "",
            parts_total=len(spec.slices) if spec.still_split else 0,
        )
        end_ms = max(stops) if status.finished and any(stops) else time.time() * 1000
        status.elapsed_seconds = max(0.0, (end_ms - start_ms) / 1000) if start_ms else 0.0
        status.vcpu_hours = self._vcpu_hours(described, entries, stitch, frames_done, status.seconds_per_frame)
        if failed:
            note = self._failure_note(record, spec, failed) if status.finished else ""
            status.message = note or (
                f"{len(failed)} chunk(s) failed: 'retry' renders them again"
            )
        return status

    def _failure_note(self, record: SubmissionRecord, spec: JobSpec, failed: set[int] | list[int]) -> str:
        """The worker's one-line reason from the first failed slice's progress record: one
        GetObject per failed slice, once (cached; a failed slice stays failed until a retry)."""
        notes: dict[tuple[str, int], SliceProgress | None] = self.__dict__.setdefault("_failure_records", {})
        first = min(failed)
        key = (record.submission_id, first)
        if key not in notes:
            try:
                data = self._store().get_bytes(spec.progress_record_uri(first))
                rec: SliceProgress | None = SliceProgress.from_json(data)
            except (StorageError, ValueError, TypeError):
                rec = None
            notes[key] = rec if rec is not None and rec.state == "FAILED" else None
        rec = notes[key]
        if rec is None:
            return ""
        rec.index = first
        return failure_note(failed, [rec])

    def _frames_done(
        self, record: SubmissionRecord, spec: JobSpec, failed: set[int], ended: bool
    ) -> dict[int, float]:
        """Frames of the spec found under the frames prefix -> upload time (unix seconds),
        listed only where new ones can appear (:mod:`.frame_listing`)."""
        listing = self._listing(record, spec)
        listing.settled = listing.settled and ended  # a retry starts new jobs: frames can come again
        closed = [f for s in failed if 0 <= s < len(spec.slices) for f in spec.slices[s]]
        s3 = self.client("s3")
        with aws_errors("list the rendered frames", resource=spec.output.frames_uri, **self._who()):
            return dict(listing.refresh(s3.list_objects_v2, closed=closed, jobs_ended=ended))

    def _listing(self, record: SubmissionRecord, spec: JobSpec) -> FrameListing:
        key = (record.submission_id, spec.output.frames_uri)
        listing = self._frame_listings.get(key)
        if listing is None:
            listing = self._frame_listings[key] = FrameListing.for_spec(spec)
        return listing

    def _frame_map(self, record: SubmissionRecord, spec: JobSpec) -> dict[int, int]:
        f2s = self._frame_to_slice.get(record.submission_id)
        if f2s is None:
            f2s = {f: i for i, frames in enumerate(spec.slices) for f in frames}
            self._frame_to_slice[record.submission_id] = f2s
        return f2s

    def _read_progress(
        self, record: SubmissionRecord, spec: JobSpec, entries: list[RenderJob], slice_index: int
    ) -> None:
        """Read the progress record of one slice (named by its submission-wide number, also
        when a retry job rendered it: see JobSpec.original_slice)."""
        uri = spec.progress_record_uri(slice_index)
        try:
            rec = SliceProgress.from_json(self._store().get_bytes(uri))
        except ObjectNotFoundError:
            return
        except (StorageError, ValueError, TypeError) as exc:
            log.debug("cannot read progress record %s: %s", uri, exc)
            return
        rec.index = slice_index
        self._progress_cache[(record.submission_id, slice_index)] = rec

    def _vcpu_hours(
        self,
        described: dict[str, dict[str, Any]],
        entries: list[RenderJob],
        stitch: dict[str, Any] | None,
        frames_done: int,
        seconds_per_frame: float | None,
    ) -> float:
        """Approximate vCPU-hours used so far.

        A submission of plain jobs only (one slice, or one-slice retries): their
        (stoppedAt or now) - startedAt, times their vCPUs. With an array job,
        DescribeJobs on the parent tells nothing per child, so rendering time is
        estimated as frames done x seconds per frame, times the vCPUs (start-up and
        failed attempts are not counted). Plus the stitch job's wall time.
        """
        now_ms = time.time() * 1000
        total = 0.0
        jobs = [described[e.render_job_id] for e in entries]
        arrays = [described[e.render_job_id] for e in entries if e.is_array]
        if arrays:
            if seconds_per_frame:
                total += _job_vcpus(arrays[0], self.vcpus) * frames_done * seconds_per_frame / 3600
        else:
            for job in jobs:
                if job.get("startedAt"):
                    wall_ms = max(0.0, (job.get("stoppedAt") or now_ms) - job["startedAt"])
                    total += _job_vcpus(job, self.vcpus) * wall_ms / 3_600_000
        if stitch and stitch.get("startedAt"):
            wall_ms = max(0.0, (stitch.get("stoppedAt") or now_ms) - stitch["startedAt"])
            total += _job_vcpus(stitch, None) * wall_ms / 3_600_000
        return round(total, 4)


def _as_cancelled(counts: Counter, stitch_state: str) -> tuple[Counter, str]:
    """After a user cancel, Batch's FAILED (and not-yet-started) children are CANCELLED."""
    out = Counter(counts)
    moved = out.pop("FAILED", 0) + sum(out.pop(s, 0) for s in PENDING_STATES)
    if moved:
        out["CANCELLED"] += moved
    if stitch_state and stitch_state != "SUCCEEDED":
        stitch_state = "CANCELLED"
    return out, stitch_state


def _job_vcpus(job: dict[str, Any], requested: int | None) -> float:
    """The vCPUs we asked for at submit, else what Batch describes, else 1."""
    if requested:
        return float(requested)
    container = job.get("container") or {}
    for req in container.get("resourceRequirements") or []:
        if req.get("type") == "VCPU":
            try:
                return float(req["value"])
            except (KeyError, ValueError):
                break
    if container.get("vcpus"):
        return float(container["vcpus"])
    return 1.0


#: calls of a steady refresh (DescribeJobs, one listing page, one progress record or ListJobs)
STEADY_CALLS = 3


def required_calls(frames: int) -> int:
    """The budget of a first refresh (the whole listing): 2 + ceil(frames / 1000)."""
    return 2 + math.ceil(frames / 1000)
