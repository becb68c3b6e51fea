"""The panel's job rows: one per recorded submission of the open .blend.

Main thread only (writes window-manager properties). Rows come from the submission
records on disk (``extension_path_user``), keyed by the .blend path, so they survive a
restart and a reopened file; status messages from the poll thread update them.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from typing import Any

import bpy

from ..core.backends.base import SubmissionRecord
from ..core.backends.status import ALL_STATES, DONE_STATES
from ..core.still_split import parts_done_text

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
    rt.jobs.clear()
    rt.jobs_for = blend_path
    for record in records:
        row = rt.jobs.add()
        fill_from_record(row, record)
        if record.last_status:
            apply_status(row, record.last_status)
        recall(row)


# --- what the panel adds to a record: the download and the thumbnail, kept on disk so they
# survive reopening the file and restarting Blender ---------------------------------------


def _memory_path(submission_id: str) -> str:
    from . import config

    return os.path.join(config.user_dir("panel"), f"{submission_id}.json")


def remember(row: Any, **values: Any) -> None:
    """Store ``values`` (downloaded, download_folder, preview_path, preview_frame) for the row."""
    path = _memory_path(row.submission_id)
    data = _read(path)
    data.update(values)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def recall(row: Any) -> None:
    """Give a reloaded row its download and thumbnail back (when the files still exist)."""
    from . import previews

    data = _read(_memory_path(row.submission_id))
    if data.get("downloaded") and os.path.exists(data["downloaded"]):
        row.downloaded = data["downloaded"]
        row.download_folder = data.get("download_folder", "")
    preview = data.get("preview_path", "")
    if preview and os.path.isfile(preview):
        row.preview_frame = int(data.get("preview_frame", -1))
        row.preview_icon = previews.icon_for(f"{row.submission_id}-{row.preview_frame}", preview)


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


_ID = re.compile(r"^(?P<stem>.*)-(?P<date>\d{8})-(?P<time>\d{6})-[0-9a-f]+$")


def short_name(row: Any) -> str:
    """``23:15:02`` (local time; ``30 Nov 10:10`` on another day) from
    ``scene-20261201-231502-ab12cd``. Every row of the panel is of the open .blend, so its
    name adds nothing there; the whole id is in the tooltip."""
    m = _ID.match(row.submission_id)
    if not m:
        return row.submission_id
    when = datetime.strptime(m["date"] + m["time"], "%Y%m%d%H%M%S").replace(tzinfo=UTC).astimezone()
    today = datetime.now().astimezone().date()
    stamp = when.strftime("%H:%M:%S") if when.date() == today else when.strftime("%d %b %H:%M")
    return stamp


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
    row.counts = counts_text(counts)
    parts_total = int(status.get("parts_total") or 0)
    if parts_total:  # a split still: its parts are the progress until the merge ("1 frame, 3 of 8 parts")
        parts_done = int(status.get("parts_done") or 0)
        row.counts = parts_done_text(row.frames_total, parts_total, parts_done)
        row.fraction = max(row.fraction, 0.95 * parts_done / parts_total)  # the merge is the last 5 %
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


_COUNT_WORDS = (("run", ("STARTING", "RUNNING")), ("wait", ("SUBMITTED", "PENDING", "RUNNABLE")),
                ("done", ("SUCCEEDED",)), ("failed", ("FAILED",)), ("cancelled", ("CANCELLED",)))


def counts_text(counts: dict[str, int]) -> str:
    """``Chunks: 2 run · 1 wait · 3 done`` (short words; the empty ones left out)."""
    parts = [f"{n} {word}" for word, states in _COUNT_WORDS if (n := sum(counts.get(s, 0) for s in states))]
    other = sum(v for k, v in counts.items() if k not in ALL_STATES)
    if other:
        parts.append(f"{other} other")
    return ("Chunks: " + " · ".join(parts)) if parts else ""


def unfinished(rt: Any = None) -> list[Any]:
    rt = rt or runtime()
    return [row for row in rt.jobs if not row.finished]
