"""``python -m worker render``: render this array child's slice of frames, resumably.

Order of work, chosen so the slow parts overlap: start Blender at once (its ``import bpy``
runs while we read the spec), read the spec, list the frames already in the output store
(a retry resumes), fetch the packed inputs, send Blender the job, and upload each frame
as soon as Blender reports it written. A per-slice progress record (frames done, seconds
per frame) is rewritten after every frame for the status display's ETA.

Threading: the main thread reads Blender's output; a small pool uploads frames and
writes progress records (serialised by a lock). Nothing here imports bpy. On SIGTERM (Batch
terminating the job, the local backend's cancel) the handler stops Blender; the main thread then finishes the
uploads of frames already written, writes the record and exits with ``RETRYABLE``.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from addon.core.errors import AwsBatchRenderError, StorageError
from addon.core.exitcodes import SUCCESS
from addon.core.framecheck import FrameInvalid, read_checked_frame
from addon.core.frames import describe_frames
from addon.core.jobspec import JobSpec
from addon.core.progress import SliceProgress, frames_done_from_listing
from addon.core.storage import Store

from .blender_process import BlenderProcess, BlenderResult, blender_argv_from_env, describe_exit
from .cpu import render_threads
from .failures import (
    BlenderCrashed,
    InterruptedBySignal,
    SceneContentError,
    WorkerRetryableError,
    exit_code_for,
)
from .inputs import fetch_inputs
from .job import StoreCache, WorkerEnv, load_spec, slice_frames
from .scratch import ScratchFullError, frames_bytes, inputs_bytes, is_disk_full, scratch_full

log = logging.getLogger(__name__)

UPLOAD_THREADS = 4


class ProgressRecorder:
    """Keeps the slice's progress record in the store current; callable from any thread."""

    def __init__(self, spec: JobSpec, index: int, frames: list[int], attempt: int, store: Store) -> None:
        self.spec = spec
        self.index = index
        self.frames = set(frames)
        self.attempt = attempt
        self.store = store
        self.done: set[int] = set()
        self.seconds: list[float] = []
        self.earlier_seconds_per_frame: float | None = None  # from an earlier attempt's record
        self.started_at = time.time()
        self._lock = threading.Lock()

    def load_earlier(self) -> None:
        """Keep an earlier attempt's seconds per frame until this attempt renders one (for the ETA)."""
        try:
            earlier = SliceProgress.from_json(self.store.get_bytes(self.spec.progress_record_uri(self.index)))
        except (StorageError, ValueError, TypeError):
            return  # first attempt, or an unreadable record: nothing to keep
        if earlier.seconds_per_frame and earlier.seconds_per_frame > 0:
            self.earlier_seconds_per_frame = float(earlier.seconds_per_frame)

    def add_existing(self, frames: set[int]) -> None:
        with self._lock:
            self.done |= frames & self.frames

    def frame_uploaded(self, frame: int, seconds: float) -> None:
        with self._lock:
            self.done.add(frame)
            self.seconds.append(seconds)
        self.write("RUNNING")

    def write(self, state: str, message: str = "", exit_code: int | None = None) -> None:
        with self._lock:  # serialised, so an older record never lands after a newer one
            record = SliceProgress(
                index=self.index,
                frames_total=len(self.frames),
                frames_done=len(self.done),
                seconds_per_frame=(
                    sum(self.seconds) / len(self.seconds) if self.seconds else self.earlier_seconds_per_frame
                ),
                attempt=self.attempt,
                state=state,
                updated_at=time.time(),
                started_at=self.started_at,
                message=message,
                exit_code=exit_code,
            )
            try:
                self.store.put_bytes(record.to_json(), self.spec.progress_record_uri(self.index))
            except StorageError as exc:
                # The record only feeds the ETA: never fail a render for it.
                log.warning("Could not write the progress record: %s", exc)

    @property
    def missing(self) -> list[int]:
        with self._lock:
            return sorted(self.frames - self.done)


class SliceRender:
    """One run of ``worker render`` for one slice."""

    def __init__(self, env: WorkerEnv) -> None:
        self.env = env
        self.stores = StoreCache()
        self.blender: BlenderProcess | None = None
        self.signal_name = ""
        self.progress: ProgressRecorder | None = None
        self.upload_error: Exception | None = None

    # --- signals -----------------------------------------------------------------------
    def on_signal(self, signum: int, _frame: Any) -> None:
        self.signal_name = signal.Signals(signum).name
        log.warning("%s received: stopping Blender, keeping the frames already written", self.signal_name)
        if self.blender is not None:
            self.blender.stop()

    def check_interrupted(self) -> None:
        if self.signal_name:
            raise InterruptedBySignal(
                f"Interrupted by {self.signal_name} before rendering finished; "
                f"{self._done_text()} another attempt resumes from there."
            )

    def _done_text(self) -> str:
        if self.progress is None:
            return "no frame was rendered;"
        return f"{len(self.progress.done)} of {len(self.progress.frames)} frame(s) are in the store;"

    # --- the run -------------------------------------------------------------------------
    def run(self) -> int:
        log.info(
            "worker render: spec %s, array index %d, attempt %d",
            self.env.spec_uri, self.env.array_index, self.env.attempt,
        )  # fmt: skip
        # Start Blender first: importing bpy takes a while and overlaps the fetching below.
        self.blender = BlenderProcess(blender_argv_from_env())
        scratch = Path(self.env.scratch or tempfile.gettempdir())
        try:
            scratch = Path(tempfile.mkdtemp(prefix="abr-render-", dir=scratch))
            return self._run(scratch)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            full = scratch_full(scratch, None, "before fetching the inputs")
            self._failed(full)
            raise full from None
        except AwsBatchRenderError as exc:
            self._failed(exc)
            raise
        finally:
            self.blender.kill()
            if scratch.name.startswith("abr-render-"):
                shutil.rmtree(scratch, ignore_errors=True)

    def _failed(self, exc: AwsBatchRenderError) -> None:
        if self.progress is not None:
            self.progress.write("FAILED", str(exc), exit_code_for(exc))

    def _run(self, scratch: Path) -> int:
        assert self.blender is not None
        spec, spec_store = load_spec(self.env.spec_uri)
        self.stores.seed(self.env.spec_uri, spec_store)  # one S3 client for everything
        if spec.still_split is not None:  # one part of a still split by samples
            from .parts import render_part

            return render_part(self, spec, scratch)
        frames = slice_frames(spec, self.env.array_index)
        frame_store = self.stores(spec.output.frames_uri)
        self.progress = ProgressRecorder(
            spec, spec.original_slice(self.env.array_index), frames, self.env.attempt,
            self.stores(spec.output.progress_uri),
        )  # fmt: skip
        existing = self._frames_in_store(spec, frame_store, frames)
        self.progress.add_existing(existing)
        if existing:
            self.progress.load_earlier()
        todo = [f for f in frames if f not in existing]
        log.info(
            "Slice %d: frames %s; %d already in the store, %d to render",
            self.env.array_index, describe_frames(frames), len(existing), len(todo),
        )  # fmt: skip
        if not todo:
            self.blender.send_job(None)
            self.progress.write("SUCCEEDED", "all frames were already rendered")
            return SUCCESS
        self.progress.write("RUNNING")
        self.check_interrupted()
        try:
            blend = fetch_inputs(spec, self.stores(spec.inputs.uri), scratch / "pack")
            out_dir = scratch / "frames"
            out_dir.mkdir()
        except (OSError, AwsBatchRenderError) as exc:
            if is_disk_full(exc):
                raise self._scratch_full(spec, scratch, "fetching the packed inputs") from None
            raise
        self.check_interrupted()
        threads = render_threads(spec.render.threads)
        self.blender.send_job(
            {
                "blend": str(blend),
                "scene": spec.render.scene,
                "engine": spec.render.engine,
                "device": spec.render.device,
                "threads": threads,
                "image_format": spec.output.image_format,
                "out_dir": str(out_dir),
                "frames": todo,
                "saved_by": spec.blender_version,
                "persistent_data": spec.render.persistent_data and len(todo) > 1,
            }
        )
        result = self._render_and_upload(spec, frame_store, set(todo), scratch)
        return self._finish(result)

    def _scratch_full(self, spec: JobSpec, scratch: Path, stage: str) -> ScratchFullError:
        store = self.stores(spec.inputs.uri)
        need = inputs_bytes(store, [spec.input_uri(rel) for rel in spec.inputs.files])
        need += frames_bytes(spec.output.image_format, spec.render.width, spec.render.height, UPLOAD_THREADS + 1)
        return scratch_full(scratch, need, stage)

    def _frames_in_store(self, spec: JobSpec, store: Store, frames: list[int]) -> set[int]:
        """Frames already done (one definition: addon.core.framecheck), so a retry resumes."""
        try:
            listing = [(o.uri, o.size) for o in store.list(spec.output.frames_uri)]
        except StorageError as exc:
            raise WorkerRetryableError(f"Cannot list the frames already rendered: {exc}") from None
        done, _, _ = frames_done_from_listing(listing, frames, spec.output.image_format)
        return set(done)

    def _render_and_upload(self, spec: JobSpec, store: Store, todo: set[int], scratch: Path) -> BlenderResult:
        assert self.blender is not None
        with ThreadPoolExecutor(max_workers=UPLOAD_THREADS, thread_name_prefix="upload") as pool:
            for written in self.blender.events():
                if written.frame not in todo:
                    log.warning("Blender reported frame %d, which this slice did not ask for", written.frame)
                    continue
                pool.submit(self.upload_frame, spec, store, scratch, written.frame, written.path, written.seconds)
            result = self.blender.wait()
            # leaving the block waits for every upload in flight: frames written are kept
        return result

    def upload_frame(self, spec: JobSpec, store: Store, scratch: Path, frame: int, path: str, seconds: float) -> None:
        """Upload one frame Blender reported written (from an upload thread): read it once,
        check those bytes (addon.core.framecheck), upload the same bytes. An invalid frame,
        a link or a short write never leaves the scratch disk; the slice then stops."""
        assert self.progress is not None
        if self.upload_error is not None:
            return
        try:
            data = read_checked_frame(path, spec.output.image_format, spec.render.width, spec.render.height)
            store.put_bytes(data, spec.frame_uri(frame))
        except FrameInvalid as exc:
            self._upload_failed(self._bad_frame(spec, scratch, frame, exc), f"Frame {frame} not uploaded")
            return
        except Exception as exc:  # StorageError, or an OSError reading the frame
            self._upload_failed(exc, f"Upload of frame {frame} failed")
            return
        _unlink(path)
        self.progress.frame_uploaded(frame, seconds)
        log.info("Frame %d rendered in %.2f s, uploaded", frame, seconds)

    def _upload_failed(self, exc: Exception, what: str) -> None:
        if self.upload_error is None:  # the first failure is the one to report
            self.upload_error = exc
        log.error("%s: %s", what, exc)
        if self.blender is not None:
            self.blender.stop()

    def _finish(self, result: BlenderResult) -> int:
        assert self.progress is not None
        progress = self.progress
        if isinstance(self.upload_error, WorkerRetryableError):
            raise self.upload_error
        if self.upload_error is not None:
            raise WorkerRetryableError(
                f"Uploading frames failed: {str(self.upload_error).rstrip('.')}; {self._done_text()} "
                "another attempt resumes."
            )
        if result.content_error:
            raise SceneContentError(result.content_error)
        if not progress.missing:
            # Every frame is in the store: a signal or a crash while Blender shut down changes nothing.
            if result.returncode != 0:
                log.warning("Blender %s after writing every frame; keeping them", describe_exit(result.returncode))
            message = "; ".join(result.warnings)
            progress.write("SUCCEEDED", message)
            log.info("Slice %d done: %d frame(s)", progress.index, len(progress.frames))
            return SUCCESS
        self.check_interrupted()
        if result.returncode != 0:
            tail = "\n".join(result.tail)
            log.error("Blender's last %d lines:\n%s", len(result.tail), tail)
            raise BlenderCrashed(
                f"Blender {describe_exit(result.returncode)} during the render; "
                f"{self._done_text()} another attempt resumes. Blender said: {result.last_words}"
            )
        raise BlenderCrashed(
            f"Blender finished without writing frame(s) {describe_frames(progress.missing)}; "
            "another attempt renders them."
        )


    def _bad_frame(self, spec: JobSpec, scratch: Path, frame: int, exc: FrameInvalid) -> WorkerRetryableError:
        """Blender said it wrote a frame that is not a valid image: a full disk, or a bad write."""
        need = frames_bytes(spec.output.image_format, spec.render.width, spec.render.height, UPLOAD_THREADS + 1)
        if shutil.disk_usage(scratch).free < need:
            return self._scratch_full(spec, scratch, f"frame {frame} was written incompletely")
        return WorkerRetryableError(
            f"Frame {frame} that Blender wrote {exc}; it was not uploaded. {self._done_text()} "
            "another attempt renders the rest."
        )


def run_render(env: WorkerEnv | None = None) -> int:
    """Entry point of ``worker render``: returns the exit code (see worker/README.md)."""
    env = env or WorkerEnv.from_env()
    job = SliceRender(env)
    previous = {s: signal.signal(s, job.on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return job.run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
