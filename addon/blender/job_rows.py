"""The panel's job rows: one per recorded submission of the open .blend.

Main thread only (writes window-manager properties). Rows come from the submission
records on disk (``extension_path_user``), keyed by the .blend path, so they survive a
restart and a reopened file; status messages from the poll thread update them.
"""

from __future__ import annotations

import logging
from typing import Any

import bpy

from ..core.backends.base import SubmissionRecord
from ..core.backends.status import ALL_STATES, DONE_STATES

log = logging.getLogger(__name__)


def runtime(context: Any = None) -> Any:
    return (context or bpy.context).window_manager.awsbatch


def current_blend() -> str:
    return bpy.data.filepath


def find(rt: Any, submission_id: str) -> Any:
    for row in rt.jobs:
        if row.submission_id == submission_id:
            return row
    return None


def load_rows(records: list[SubmissionRecord], blend_path: str, rt: Any = None) -> None:
    """Replace the rows with ``records`` (newest first), keeping the last known status."""
    rt = rt or runtime()
    keep = {row.submission_id: (row.preview_icon, row.preview_frame, row.downloaded) for row in rt.jobs}
    rt.jobs.clear()
    rt.jobs_for = blend_path
    for record in records:
        row = rt.jobs.add()
        fill_from_record(row, record)
        if record.submission_id in keep:
            row.preview_icon, row.preview_frame, row.downloaded = keep[record.submission_id]
        if record.last_status:
            apply_status(row, record.last_status)


def fill_from_record(row: Any, record: SubmissionRecord) -> None:
    row.submission_id = record.submission_id
    row.backend = record.backend
    row.created_at = record.created_at
    row.frames_total = record.frames_total


def add_record(record: SubmissionRecord, rt: Any = None) -> Any:
    """A new (or retried) submission: first in the list, state from the record."""
    rt = rt or runtime()
    row = find(rt, record.submission_id)
    if row is None:
        row = rt.jobs.add()
        rt.jobs.move(len(rt.jobs) - 1, 0)
        row = rt.jobs[0]
    fill_from_record(row, record)
    row.finished = False
    row.error = ""
    if record.last_status:
        apply_status(row, record.last_status)
    return row


def apply_status(row: Any, status: dict[str, Any]) -> bool:
    """Copy a ``JobStatus.to_dict()`` into the row; True when something visible changed."""
    before = (row.state, row.frames_done, row.counts, row.latest_frame, row.video_uri, row.failed_slices)
    row.state = str(status.get("state", row.state))
    row.frames_total = int(status.get("frames_total") or row.frames_total)
    row.frames_done = int(status.get("frames_done") or 0)
    row.fraction = row.frames_done / row.frames_total if row.frames_total else 0.0
    counts = status.get("chunk_counts") or {}
    row.counts = " · ".join(
        f"{s.title()} {counts[s]}" for s in (*ALL_STATES, *sorted(set(counts) - set(ALL_STATES))) if counts.get(s)
    )
    failed = list(status.get("failed_slices") or [])
    row.failed_slices = ", ".join(str(i) for i in failed)
    row.first_failed_slice = failed[0] if failed else -1
    row.elapsed = float(status.get("elapsed_seconds") or 0.0)
    eta = status.get("eta_seconds")
    row.eta = -1.0 if eta is None else float(eta)
    row.vcpu_hours = float(status.get("vcpu_hours") or 0.0)
    row.video_uri = str(status.get("video_uri") or "")
    latest = status.get("latest_frame")
    row.latest_frame = -1 if latest is None else int(latest)
    row.latest_frame_uri = str(status.get("latest_frame_uri") or "")
    row.message = str(status.get("message") or "")
    row.finished = row.state in DONE_STATES
    after = (row.state, row.frames_done, row.counts, row.latest_frame, row.video_uri, row.failed_slices)
    return before != after


def unfinished(rt: Any = None) -> list[Any]:
    rt = rt or runtime()
    return [row for row in rt.jobs if not row.finished]
