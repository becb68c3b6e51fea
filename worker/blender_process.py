"""Blender as a child process: the argv to start it, and the stream of events it prints.

The outer process never imports bpy. Blender (the ``bpy`` module in a Python, or a
``blender`` binary when ``BLENDER_BIN`` is set) runs :mod:`worker.inner_render`, so a
crash in Blender (a SIGABRT from a missing GL driver, say) cannot take the worker with it.

The child stays in the worker's process group, so a signal to the group (the local
backend stopping a slice, a SIGKILL) reaches both; on SIGTERM to the worker alone (what
ECS sends to the container's main process) the worker stops the child itself
(:meth:`BlenderProcess.stop`).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .inner_render import ERROR_TAG, FRAME_TAG, WAITING_TAG, WARNING_TAG, parse_event

log = logging.getLogger(__name__)
blender_log = logging.getLogger("worker.blender")

INNER_SCRIPT = Path(__file__).resolve().with_name("inner_render.py")
TAIL_LINES = 40
_NOTEWORTHY = ("error", "warning", "not found", "cannot", "failed", "missing")


@dataclass(frozen=True)
class FrameWritten:
    frame: int
    path: str
    seconds: float


@dataclass(frozen=True)
class PartWaiting:
    """A split still's part is written and checked; Blender waits for a merge job or the end of stdin."""


@dataclass
class BlenderResult:
    returncode: int
    content_error: str = ""  # set when the inner script refused the job on content grounds
    warnings: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)  # Blender's last lines, for crash reports

    @property
    def last_words(self) -> str:
        """The line that says why Blender stopped: its last error line ("Error: Failed to
        denoise, build has no OpenImageDenoise support") rather than the "Blender quit"
        after it, else its last line."""
        errors = [line.strip() for line in self.tail if line.lstrip().startswith(("Error:", "ERROR"))]
        return errors[-1] if errors else (self.tail[-1] if self.tail else "(no output)")


def blender_argv(
    script: str | os.PathLike[str] = INNER_SCRIPT, *, blender_bin: str = "", python: str = ""
) -> list[str]:
    """The child's argv: a ``blender`` binary when given, else a Python with ``bpy``."""
    if blender_bin:
        return [
            blender_bin, "-b", "--factory-startup", "-noaudio", "--python-exit-code", "1",
            "--python", str(script), "--", "--job", "-",
        ]  # fmt: skip
    return [python or sys.executable, str(script), "--job", "-"]


def blender_argv_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """``BLENDER_BIN``, else ``BLENDER_PYTHON``, else this Python if it has bpy, else a
    ``blender`` on PATH, else this Python (which then fails with a clear message)."""
    env = os.environ if environ is None else environ
    if env.get("BLENDER_BIN") or env.get("BLENDER_PYTHON"):
        return blender_argv(blender_bin=env.get("BLENDER_BIN", ""), python=env.get("BLENDER_PYTHON", ""))
    import importlib.util
    import shutil

    if importlib.util.find_spec("bpy") is None:  # finds, does not import
        found = shutil.which("blender", path=env.get("PATH"))
        if found:
            return blender_argv(blender_bin=found)
    return blender_argv()


class BlenderProcess:
    """One Blender child. Start it early (``import bpy`` is slow), send the job when ready.

    :meth:`events` runs on the main thread; :meth:`stop` may be called from a signal handler.
    """

    def __init__(self, argv: list[str], env: Mapping[str, str] | None = None) -> None:
        self.argv = argv
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.warnings: list[str] = []
        self.content_error = ""
        self.stopped = False
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
            )
        except OSError as exc:
            from .failures import WorkerContentError  # a missing binary stays missing on retry

            raise WorkerContentError(
                f"Cannot start Blender ({argv[0]}): {exc.strerror or exc}. Check BLENDER_BIN / "
                "BLENDER_PYTHON or the image."
            ) from None
        log.info("Started Blender (pid %d): %s", self.proc.pid, " ".join(argv))

    def send_job(self, job: Mapping[str, Any] | None, close: bool = True) -> None:
        """Hand over the job (one JSON line) and close stdin; None: there is nothing to do.
        ``close=False`` keeps stdin open for one more line (a part that offers the merge)."""
        assert self.proc.stdin is not None
        try:
            if job is not None:
                self.proc.stdin.write(json.dumps(dict(job)) + "\n")
                self.proc.stdin.flush()
            if close:
                self.proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass  # Blender is already gone; events()/wait() report how it ended

    def events(self) -> Iterator[FrameWritten]:
        """Each frame Blender reports written, as it happens, until Blender's output ends
        (and a :class:`PartWaiting` where a part offered the merge: only worker/parts.py asks)."""
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.rstrip("\n")
            event = parse_event(line)
            if event is None:
                self.tail.append(line)
                if any(word in line.lower() for word in _NOTEWORTHY):
                    blender_log.info("%s", line)
                else:
                    blender_log.debug("%s", line)
                continue
            tag, payload = event
            if tag == FRAME_TAG:
                try:
                    yield FrameWritten(int(payload["frame"]), str(payload["path"]), float(payload["seconds"]))
                except (KeyError, TypeError, ValueError):
                    log.warning("Ignoring a malformed frame line from Blender: %s", line)
            elif tag == WARNING_TAG:
                message = str(payload.get("message", ""))
                self.warnings.append(message)
                log.warning("%s", message)
            elif tag == WAITING_TAG:
                yield PartWaiting()  # type: ignore[misc]
            elif tag == ERROR_TAG:
                self.content_error = str(payload.get("message", "")) or "Blender refused the job."
                self.tail.append(line)

    def stop(self) -> None:
        """Ask Blender to stop now (safe from a signal handler); :meth:`wait` makes sure."""
        self.stopped = True
        if self.proc.poll() is None:
            try:
                self.proc.terminate()
            except ProcessLookupError:
                pass

    def wait(self, grace: float = 5.0) -> BlenderResult:
        try:
            code = self.proc.wait(timeout=grace if self.stopped else None)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return BlenderResult(code, self.content_error, list(self.warnings), list(self.tail))

    def kill(self) -> None:
        """Make sure the child is gone (every exit path of the worker calls this)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except (OSError, ValueError):
                pass


def describe_exit(code: int) -> str:
    """``-6`` -> ``'killed by signal 6 (SIGABRT)'``; ``1`` -> ``'exit status 1'``."""
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        return f"killed by signal {-code} ({name})"
    return f"exit status {code}"
