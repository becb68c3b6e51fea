"""Following a submission from the terminal: the record store the commands share, the
status refresh, ``--watch``'s live line and the status summary, and small text helpers.
CLI output is the one place ``print`` and raw writes are right.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from typing import Any, TextIO

from ..core.backends.base import SubmissionRecord
from ..core.backends.status import JobStatus, format_duration, progress_line
from ..core.records import RecordStore

#: exit status of ``status --watch`` (and ``submit --watch``) when the render ends FAILED or CANCELLED
WATCH_NOT_SUCCEEDED = 8


def record_store(args: argparse.Namespace) -> RecordStore:
    return RecordStore(args.records)


def err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def refresh(backend: Any, record: SubmissionRecord, store: RecordStore) -> JobStatus:
    from ..core.quote.budget import enforce_budget

    status = enforce_budget(backend, record, backend.status(record))  # --max-cost: stop before passing it
    record.last_status = status.to_dict()
    store.save(record)
    return status


def watch(
    backend: Any, record: SubmissionRecord, store: RecordStore, *, interval: float, out: TextIO, as_json: bool = False
) -> int:
    """Refresh until the submission ends: a live bar on a terminal, a line per change otherwise."""
    tty = out.isatty() and not as_json
    last = ""
    while True:
        status = refresh(backend, record, store)
        if as_json:
            line = json.dumps(status.to_dict(), sort_keys=True)
        else:
            line = progress_line(status, width=term_width() if tty else 0)
        if tty:
            out.write("\r" + line.ljust(term_width() - 1)[: term_width() - 1])
            out.flush()
        elif line != last:
            out.write(line + "\n")
            out.flush()
        last = line
        if status.finished:
            break
        time.sleep(interval)
    if tty:
        out.write("\n")
    if not as_json:
        out.write(format_status(status) + "\n")
    out.flush()
    return 0 if status.state == "SUCCEEDED" else WATCH_NOT_SUCCEEDED


def format_status(status: JobStatus) -> str:
    lines = [
        f"{status.submission_id} ({status.backend}): {status.state}",
        f"  frames   {status.frames_done}/{status.frames_total} ({math.floor(100 * status.fraction)}%)",
        "  chunks   " + (", ".join(f"{n} {s.lower()}" for s, n in sorted(status.chunk_counts.items())) or "-"),
    ]
    if status.stitch_state:
        lines.append(f"  stitch   {status.stitch_state.lower()}")
    lines.append(
        f"  elapsed  {format_duration(status.elapsed_seconds)}   ETA {format_duration(status.eta_seconds)}"
        + (f"   {status.seconds_per_frame:.1f} s/frame" if status.seconds_per_frame else "")
    )
    if status.vcpu_hours:
        lines.append(f"  vCPU-h   {status.vcpu_hours:.2f} (approximate)")
    if status.latest_frame is not None:
        lines.append(f"  latest   frame {status.latest_frame}: {status.latest_frame_uri}")
    if status.failed_slices:
        shown = ", ".join(map(str, status.failed_slices[:20])) + (" …" if len(status.failed_slices) > 20 else "")
        lines.append(
            f"  failed   chunk(s) {shown}: 'aws-batch-render logs {status.submission_id}' shows why, "
            f"'aws-batch-render retry {status.submission_id}' renders them again"
        )
    if status.video_uri:
        lines.append(f"  video    {status.video_uri}")
    if status.message:
        lines.append(f"  note     {status.message}")
    return "\n".join(lines)


def size_text(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def term_width() -> int:
    return shutil.get_terminal_size((100, 24)).columns
