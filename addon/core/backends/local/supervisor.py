"""The detached supervisor of a local submission: ``python -m addon.core.backends.local.supervisor DIR``.

Started by :class:`.backend.LocalBackend` in its own session, it outlives the CLI
or Blender that started it. It runs the render slices as worker processes (each in its
own process group, at most ``concurrency`` at once), retries a slice that fails with
anything but the worker's content-error code (the worker resumes: only missing frames
render again), then runs the stitch, exactly as the AWS job graph does. It is the only
writer of ``state.json`` while it lives. SIGTERM/SIGINT/SIGHUP cancel: workers get
SIGTERM (they upload finished frames and stop), then SIGKILL after a grace period.
Workers never outlive it: an error in it stops them the same way, and if it is killed
outright (SIGKILL, OOM) the kernel sends each worker SIGTERM (a parent-death signal).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ... import exitcodes
from ...jobspec import JobSpec
from ...storage import FileStore
from .processes import die_with_parent, process_env
from .state import TaskState, read_state, write_state

log = logging.getLogger(__name__)

GRACE_SECONDS = 15.0
POLL_SECONDS = 0.1


class Supervisor:
    def __init__(self, state_dir: Path, python: str = sys.executable) -> None:
        self.state_dir = Path(state_dir)
        self.state = read_state(self.state_dir)
        self.spec = JobSpec.from_json(FileStore().get_bytes(self.state.spec_uri))
        self.python = python
        self.running: dict[int, subprocess.Popen[bytes]] = {}
        self.cancelled = False
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.cancelled = True

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self.state.state = "RUNNING"
        self._save()
        ok = self._run_slices()
        if self.cancelled:
            return self._finish_cancelled()
        if not ok:
            if self.state.stitch is not None:
                self.state.stitch.state = "FAILED"  # as on Batch: a failed dependency fails the stitch
            failed = [t.index for t in self.state.slices if t.state == "FAILED"]
            return self._finish("FAILED", f"Slice(s) {failed} failed; 'logs' shows why, 'retry' renders them again.")
        if self.state.stitch is not None:
            self._run_task(self.state.stitch, ["merge" if self.spec.still_split else "stitch"], env={})
            if self.cancelled:
                return self._finish_cancelled()
            if self.state.stitch.state != "SUCCEEDED":
                what = "Merging the split still" if self.spec.still_split else "Stitching the video"
                return self._finish("FAILED", f"{what} failed; 'logs --slice -1' shows why.")
        return self._finish("SUCCEEDED", "")

    # --- slices ----------------------------------------------------------------------
    def _run_slices(self) -> bool:
        queue = [t for t in self.state.slices if t.state in ("PENDING", "RUNNING")]
        for task in queue:
            task.state = "PENDING"
        while not self.cancelled:
            self._reap(queue)
            while queue and len(self.running) < self.state.concurrency and not self.cancelled:
                task = queue.pop(0)
                self._start(task, ["render"], self._slice_env(task))
            if not self.running and not queue:
                break
            time.sleep(POLL_SECONDS)
        return all(t.state == "SUCCEEDED" for t in self.state.slices)

    def _slice_env(self, task: TaskState) -> dict[str, str]:
        # A single slice is a plain job on Batch: no array index, the worker takes 0.
        return {} if len(self.state.slices) == 1 else {"AWS_BATCH_JOB_ARRAY_INDEX": str(task.index)}

    def _reap(self, queue: list[TaskState]) -> None:
        for index, proc in list(self.running.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.running[index]
            task = self.state.slices[index]
            self._finish_task(task, code)
            if task.state == "PENDING":
                queue.append(task)  # retry: the worker resumes, rendering only missing frames
        self._save()

    def _finish_task(self, task: TaskState, code: int) -> None:
        task.exit_code = code
        task.stopped_at = time.time()
        task.pid = 0
        if code == exitcodes.SUCCESS:
            task.state = "SUCCEEDED"
        elif self.cancelled:
            task.state = "CANCELLED"
        elif code != exitcodes.CONTENT_ERROR and task.attempts < self.state.max_attempts:
            task.state = "PENDING"
            log.warning("task %d exited %d on attempt %d; retrying", task.index, code, task.attempts)
        else:
            task.state = "FAILED"

    def _start(self, task: TaskState, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        task.attempts += 1
        kind = command[0] if command[0] in ("stitch", "merge") else f"slice-{task.index:05d}"
        task.log = str(self.state_dir / "logs" / f"{kind}-attempt-{task.attempts}.log")
        full_env = {
            **process_env(),
            "JOB_SPEC_URI": self.state.spec_uri,
            "AWS_BATCH_JOB_ATTEMPT": str(task.attempts),
            **env,
        }
        if "AWS_BATCH_JOB_ARRAY_INDEX" not in env:
            full_env.pop("AWS_BATCH_JOB_ARRAY_INDEX", None)
        with open(task.log, "ab") as fh:
            proc = subprocess.Popen(
                [self.python, "-m", "worker", *command],
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=full_env,
                start_new_session=True,  # its own group: cancel reaches Blender under it
                preexec_fn=die_with_parent(),  # SIGTERM when this supervisor dies, however it dies
            )
        task.pid = proc.pid
        task.state = "RUNNING"
        task.started_at = time.time()
        task.exit_code = None
        self.running[task.index] = proc
        self._save()
        return proc

    def _run_task(self, task: TaskState, command: list[str], env: dict[str, str]) -> None:
        """Run one task to the end, retrying like a slice (used for the stitch)."""
        task.state = "PENDING"
        while task.state == "PENDING" and not self.cancelled:
            proc = self._start(task, command, env)
            while proc.poll() is None and not self.cancelled:
                time.sleep(POLL_SECONDS)
            self.running.pop(task.index, None)  # reaped below: never signal its pid again
            if self.cancelled:
                self._stop_all({task.index: proc})
                task.state = "CANCELLED"
                break
            self._finish_task(task, proc.returncode)
            self._save()

    # --- ending ----------------------------------------------------------------------
    def _stop_all(self, procs: dict[int, subprocess.Popen[bytes]]) -> None:
        for proc in procs.values():
            _killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        while any(p.poll() is None for p in procs.values()) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        for proc in procs.values():
            _killpg(proc.pid, signal.SIGKILL)  # the group too: nothing may outlive a cancel
            proc.wait()

    def _finish_cancelled(self) -> int:
        self._stop_all(self.running)
        for task in [*self.state.slices, *([self.state.stitch] if self.state.stitch else [])]:
            if task.state in ("PENDING", "RUNNING"):
                task.state = "CANCELLED"
                task.stopped_at = task.stopped_at or time.time()
            task.pid = 0
        return self._finish("CANCELLED", "Cancelled; frames already rendered are kept.")

    def _finish(self, state: str, message: str) -> int:
        self.state.state = state
        self.state.message = message
        self.state.stopped_at = time.time()
        self._save()
        return 0 if state == "SUCCEEDED" else 1

    def _save(self) -> None:
        write_state(self.state_dir, self.state)


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if len(argv) != 1:
        print("usage: python -m addon.core.backends.local.supervisor STATE_DIR", file=sys.stderr)
        return 2
    supervisor = Supervisor(Path(argv[0]))
    try:
        return supervisor.run()
    finally:
        if supervisor.running:  # an error left workers behind: stop them, never orphan them
            supervisor._stop_all(supervisor.running)


if __name__ == "__main__":
    sys.exit(main())
