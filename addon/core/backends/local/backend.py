"""The local backend: the same job graph as on AWS Batch, on this computer.

Storage is a folder (``file://``). :meth:`LocalBackend.submit` starts a *detached*
supervisor process (:mod:`.supervisor`, its own session) that runs the render
slices as parallel ``python -m worker render`` processes with the same contract as on
Batch (``JOB_SPEC_URI``, ``AWS_BATCH_JOB_ARRAY_INDEX``, ``AWS_BATCH_JOB_ATTEMPT``),
retries failed slices, then runs ``python -m worker stitch``. The supervisor keeps its
state in ``<submission>/local/state.json``, so closing Blender or the CLI does not stop
the render and a new status reader picks it up from disk.

Nothing here touches bpy; status reads are cheap file reads and one folder listing.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ...errors import StorageError
from ...framecheck import FrameInvalid, read_checked_frame
from ...jobspec import JobSpec
from ...progress import SliceProgress, frames_done_from_listing
from ...still_split import slices_without_part
from ...storage import FileStore, parse_uri
from ..base import SubmissionRecord
from ..status import JobStatus, failure_note, summarize
from .processes import (
    pid_alive,
    process_env,
    reap_later,
    signal_group,
    submission_processes,
    supervisor_pid,
    write_supervisor_pid,
)
from .state import (
    PID_FILE,
    STATE_FILE,
    LocalBackendError,
    RetryWhileRunningError,
    SupervisorState,
    TaskState,
    default_concurrency,
    read_state,
    state_dir_for,
    write_state,
)

log = logging.getLogger(__name__)


class LocalBackend:
    name = "local"

    def __init__(
        self,
        concurrency: int | None = None,
        max_attempts: int = 3,
        python: str | None = None,
        worker_env: dict[str, str] | None = None,
    ) -> None:
        """``worker_env`` is added to the supervisor's and workers' environment: inside a
        Blender binary the add-on passes ``BLENDER_BIN=bpy.app.binary_path``, because there
        ``sys.executable`` is Blender's own Python, which has no bpy module."""
        if concurrency is not None and concurrency < 1:
            raise LocalBackendError("Concurrency must be 1 slice at a time or more.")
        if not 1 <= max_attempts <= 10:
            raise LocalBackendError("Attempts per slice must be between 1 and 10.")
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.python = python or sys.executable
        self.worker_env = dict(worker_env or {})
        self._specs: dict[str, JobSpec] = {}

    # --- Backend protocol ------------------------------------------------------------
    def submit(self, spec: JobSpec, spec_uri: str, source_blend: str = "") -> SubmissionRecord:
        state_dir = state_dir_for(spec_uri)
        if not FileStore().exists(spec_uri):
            raise LocalBackendError(
                f"No job spec at {spec_uri}: write the spec there first (prepare_submission does), "
                "or check the path."
            )
        concurrency = self.concurrency or default_concurrency(spec.render.threads)
        state = SupervisorState(
            submission_id=spec.submission_id,
            spec_uri=spec_uri,
            concurrency=concurrency,
            max_attempts=self.max_attempts,
            slices=[TaskState(index=i) for i in range(len(spec.slices))],
            stitch=TaskState(index=0) if spec.output.video or spec.still_split else None,  # merge: a split still
            started_at=time.time(),
        )
        state_dir.mkdir(parents=True, exist_ok=True)
        write_state(state_dir, state)
        self._start_supervisor(state_dir)
        return SubmissionRecord(
            submission_id=spec.submission_id,
            backend=self.name,
            spec_uri=spec_uri,
            created_at=spec.created_at,
            source_blend=source_blend,
            frames_total=len(spec.frames),
            slice_count=len(spec.slices),
            jobs={"state_dir": str(state_dir), "history": []},
            settings={
                "concurrency": str(concurrency),
                "max_attempts": str(self.max_attempts),
                "blender_bin": self.worker_env.get("BLENDER_BIN", ""),
            },
        )

    def status(self, record: SubmissionRecord) -> JobStatus:
        spec = self._spec(record)
        state_dir = Path(record.jobs["state_dir"])
        # Liveness first, then the state: a supervisor that ends between the two reads has
        # written its final state before it ended, so the pair is always consistent.
        live = supervisor_pid(state_dir)  # 0 unless alive and ours
        state = read_state(state_dir)
        store = FileStore()
        done, latest, latest_uri = frames_done_from_listing(  # the shared "frame done" (framecheck)
            ((o.uri, o.size) for o in store.list(spec.output.frames_uri)), spec.frames, spec.output.image_format
        )
        records = []
        for obj in store.list(spec.output.progress_uri):
            try:
                records.append(SliceProgress.from_json(store.get_bytes(obj.uri)))
            except (ValueError, TypeError, OSError, StorageError):
                continue  # being rewritten, gone or foreign: skip this refresh
        orphans: list[int] = []
        supervisor_gone = state.state not in ("SUCCEEDED", "FAILED", "CANCELLED") and not live
        if supervisor_gone and _starting(state_dir, state):
            supervisor_gone = False  # submitted a moment ago: its pid is being recorded
        if supervisor_gone:
            orphans = submission_processes(record.spec_uri, _task_pids(state))
        counts: dict[str, int] = {}
        failed = []
        for task in state.slices:
            s = task.state
            if supervisor_gone and not orphans and s in ("RUNNING", "PENDING"):
                s = "FAILED"
            s = {"PENDING": "RUNNABLE"}.get(s, s)
            counts[s] = counts.get(s, 0) + 1
            if s == "FAILED":
                failed.append(task.index)
        stitch_state = ""
        if state.stitch is not None:
            stitch_state = state.stitch.state
            if supervisor_gone and not orphans and stitch_state in ("RUNNING", "PENDING"):
                stitch_state = "FAILED"
        end = state.stopped_at or time.time()
        cpu_seconds = sum(
            ((t.stopped_at or (time.time() if t.state == "RUNNING" else t.started_at)) - t.started_at)
            for t in state.slices
            if t.started_at
        )
        threads = spec.render.threads or (os.cpu_count() or 1)
        video = spec.video_file_uri() if spec.output.video and store.exists(spec.video_file_uri()) else ""
        message = state.message
        if orphans:  # never call a living render FAILED
            message = (
                f"The local supervisor stopped; {len(orphans)} process(es) of this render are still "
                "running and stop by themselves: wait for them, then 'retry' renders the missing frames."
            )
        elif supervisor_gone:
            message = "The local supervisor stopped unexpectedly; 'retry' renders the missing frames."
        if not supervisor_gone:  # a dead supervisor is the story (its workers' notes say only "SIGTERM")
            exit_codes = {t.index: t.exit_code for t in state.slices if t.exit_code is not None}
            message = failure_note(failed, records, exit_codes) or message  # the worker's reason, when it left one
        if state.state == "CANCELLED":
            counts = {"CANCELLED": len(state.slices)} if not counts.get("SUCCEEDED") else counts
            stitch_state = "CANCELLED" if state.stitch else ""
        return summarize(
            submission_id=record.submission_id,
            backend=self.name,
            frames_total=len(spec.frames),
            chunk_counts=counts,
            stitch_state=stitch_state,
            frames_done=len(done),
            records=records,
            elapsed_seconds=max(0.0, end - state.started_at),
            latest_frame=latest,
            latest_frame_uri=latest_uri,
            failed_slices=failed,
            video_uri=video,
            vcpu_hours=cpu_seconds * threads / 3600.0,
            message=message,
            parts_total=len(spec.slices) if spec.still_split else 0,
        )

    def cancel(self, record: SubmissionRecord, timeout: float = 20.0) -> None:
        state_dir = Path(record.jobs["state_dir"])
        pid = supervisor_pid(state_dir)  # 0 unless alive and ours
        if pid:
            signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid_alive(pid):
                signal_group(pid, signal.SIGKILL)
        # Whatever the supervisor managed, make sure no process of the render is left behind.
        state = read_state(state_dir)
        for left in submission_processes(record.spec_uri, _task_pids(state)):
            signal_group(left, signal.SIGKILL)
        for task in [*state.slices, *([state.stitch] if state.stitch else [])]:
            if task.state in ("PENDING", "RUNNING"):
                task.state = "CANCELLED"
        if state.state not in ("SUCCEEDED", "FAILED"):
            state.state = "CANCELLED"
            state.stopped_at = state.stopped_at or time.time()
        write_state(state_dir, state)

    def retry_failed(self, record: SubmissionRecord) -> SubmissionRecord:
        state_dir = Path(record.jobs["state_dir"])
        live = supervisor_pid(state_dir)
        state = read_state(state_dir)
        if live:
            raise RetryWhileRunningError(
                "This submission is still running; its supervisor already retries failed slices "
                f"(up to {state.max_attempts} attempts each). Cancel it first to restart it."
            )
        left = submission_processes(record.spec_uri, _task_pids(state))
        if left:  # a second worker on the same slice would render its frames twice
            raise RetryWhileRunningError(
                f"{len(left)} process(es) of {record.submission_id} are still running (pid "
                f"{', '.join(map(str, left[:5]))}); wait until they stop, or 'cancel' it, then retry."
            )
        recheck = _slices_with_invalid_frames(self._spec(record), state)  # SUCCEEDED slices, checked again
        again = [t.index for t in state.slices if t.state != "SUCCEEDED" or t.index in recheck]
        for task in state.slices:
            if task.index in again:
                task.state, task.attempts, task.exit_code = "PENDING", 0, None
        if state.stitch is not None:
            state.stitch = TaskState(index=0)
        state.state, state.message, state.stopped_at = "SUBMITTED", "", 0.0
        write_state(state_dir, state)
        self._start_supervisor(state_dir)
        record.jobs.setdefault("history", []).append({"retried_slices": again, "at": time.time()})
        return record

    def logs(self, record: SubmissionRecord, slice_index: int | None = None, lines: int = 100) -> str:
        state = read_state(Path(record.jobs["state_dir"]))
        if slice_index is None:  # the first failed slice, else a failed stitch, else slice 0
            failed = [t for t in state.slices if t.state == "FAILED"]
            if not failed and state.stitch is not None and state.stitch.state == "FAILED":
                failed = [state.stitch]
            task = failed[0] if failed else (state.slices[0] if state.slices else None)
        elif slice_index == -1 and state.stitch is not None:
            task = state.stitch
        else:
            if not 0 <= slice_index < len(state.slices):
                raise LocalBackendError(
                    f"Slice {slice_index} does not exist: this submission has slices 0..{len(state.slices) - 1}."
                )
            task = state.slices[slice_index]
        if task is None or not task.log or not Path(task.log).is_file():
            return ""
        text = Path(task.log).read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # --- helpers ---------------------------------------------------------------------
    def _spec(self, record: SubmissionRecord) -> JobSpec:
        if record.submission_id not in self._specs:
            self._specs[record.submission_id] = JobSpec.from_json(FileStore().get_bytes(record.spec_uri))
        return self._specs[record.submission_id]

    def _start_supervisor(self, state_dir: Path) -> int:
        log_path = state_dir / "supervisor.log"
        with open(log_path, "ab") as log_fh:
            proc = subprocess.Popen(
                [self.python, "-m", "addon.core.backends.local.supervisor", str(state_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                env=process_env(self.worker_env),
                start_new_session=True,  # survives its submitter; cancel signals this group
                close_fds=True,
            )
        # The supervisor owns state.json; its pid and start time go beside it, so status
        # recognises it from the moment it runs (its command line reads empty while it execs).
        write_supervisor_pid(state_dir, proc.pid)
        reap_later(proc)
        return proc.pid


#: a submission whose state.json was written this recently, with no supervisor yet, is starting
STARTING_SECONDS = 30.0


def _starting(state_dir: Path, state: SupervisorState) -> bool:
    """state.json was just written for a new start and no supervisor was recorded after it
    (the submitter writes the state, then starts the supervisor, then records its pid)."""
    if state.state != "SUBMITTED":
        return False
    try:
        written = (state_dir / STATE_FILE).stat().st_mtime
    except OSError:
        return False
    try:
        recorded = (state_dir / PID_FILE).stat().st_mtime
    except OSError:
        recorded = 0.0
    return recorded < written and time.time() - written < STARTING_SECONDS


def _task_pids(state: SupervisorState) -> list[int]:
    return [t.pid for t in [*state.slices, *([state.stitch] if state.stitch else [])] if t.pid]


def _slices_with_invalid_frames(spec: JobSpec, state: SupervisorState) -> set[int]:
    """SUCCEEDED slices with a frame that is not done (addon.core.framecheck: missing, or not a
    valid image, read in full). An invalid frame is moved aside (``<name>.invalid``, kept, never
    deleted) so the slice's worker resumes and renders it again."""
    if spec.still_split:  # a part's slice is done when its part EXR is in the store
        succeeded = [t.index for t in state.slices if t.state == "SUCCEEDED"]
        return slices_without_part(spec, succeeded, FileStore().exists)
    folder = parse_uri(spec.output.frames_uri).path
    fmt, width, height = spec.output.image_format, spec.render.width, spec.render.height
    bad: set[int] = set()
    for task in state.slices:
        if task.state != "SUCCEEDED":
            continue
        for frame in spec.slices[task.index]:
            path = folder / spec.frame_name(frame)
            try:
                read_checked_frame(path, fmt, width, height)
            except FrameInvalid as exc:
                bad.add(task.index)
                if os.path.lexists(path):
                    log.warning("frame %d %s: moved aside to render it again", frame, exc)
                    os.replace(path, path.with_name(path.name + ".invalid"))
    return bad


def wait(backend: LocalBackend, record: SubmissionRecord, timeout: float = 600.0, poll: float = 0.5) -> JobStatus:
    """Block until the submission finishes (tests and the demo)."""
    deadline = time.monotonic() + timeout
    while True:
        status = backend.status(record)
        if status.finished:
            return status
        if time.monotonic() > deadline:
            raise LocalBackendError(f"Submission {record.submission_id} did not finish within {timeout:.0f} s.")
        time.sleep(poll)


