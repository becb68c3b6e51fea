"""Background threads of the add-on and the plain messages they post.

Threading rule: **nothing in this module, nor any function it runs in a thread, touches
bpy.** A thread gets plain data (paths, dataclasses), calls the core, and reports through
:data:`MESSAGES`, a :class:`queue.Queue` of the dataclasses below. The persistent timer in
``status_timer.py`` drains the queue on Blender's main thread and writes properties.

Errors never escape a thread as tracebacks: a core error (:class:`AwsBatchRenderError`)
or a botocore failure becomes a :class:`TaskFailed` carrying a message the user can act on.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import AwsBatchRenderError

log = logging.getLogger(__name__)

# --- messages (plain data, safe to hand from a thread to the main thread) --------------------


@dataclass
class SubmitProgress:
    phase: str  # "save", "pack", "upload", "spec", "submit"
    done: int
    total: int
    message: str = ""


@dataclass
class SubmitDone:
    record_json: str  # SubmissionRecord.to_json()
    summary: str  # one line for the report: files, bytes uploaded, outside-project files


@dataclass
class RecordUpdated:
    """A record changed on disk (a retry appended jobs); the row should follow it."""

    record_json: str
    message: str = ""


@dataclass
class StatusUpdate:
    submission_id: str
    status: dict[str, Any]  # JobStatus.to_dict()


@dataclass
class LogText:
    submission_id: str
    slice_index: int
    text: str


@dataclass
class Downloaded:
    submission_id: str
    paths: list[str]
    folder: str


@dataclass
class PreviewReady:
    submission_id: str
    frame: int
    path: str


@dataclass
class StackConnected:
    outputs: dict[str, Any]  # StackOutputs fields


@dataclass
class ConnectionChecked:
    ok: bool
    lines: list[str] = field(default_factory=list)


@dataclass
class TaskFailed:
    task: str  # "submit", "poll", "cancel", ...
    message: str
    submission_id: str = ""


@dataclass
class TaskEnded:
    """Posted last by every task, failed or not, so the main thread can clear busy flags."""

    task: str
    key: str


#: Messages from threads to the main thread. Only the status timer reads it.
MESSAGES: queue.Queue[Any] = queue.Queue()

_lock = threading.Lock()
_running: dict[str, threading.Thread] = {}
_cancel_events: dict[str, threading.Event] = {}


def post(message: Any) -> None:
    MESSAGES.put(message)


def busy(key: str | None = None) -> bool:
    """Whether the task ``key`` (or any task when None) is running."""
    with _lock:
        if key is None:
            return any(t.is_alive() for t in _running.values())
        thread = _running.get(key)
        return thread is not None and thread.is_alive()


def cancel_event(key: str) -> threading.Event | None:
    with _lock:
        return _cancel_events.get(key)


def start(task: str, key: str, fn: Callable[..., None], *args: Any, **kwargs: Any) -> bool:
    """Run ``fn(*args, **kwargs)`` in a daemon thread unless ``key`` already runs.

    ``fn`` also receives ``cancel=`` (a :class:`threading.Event` that :func:`cancel_all` or a
    Cancel button sets); it must accept it.
    Returns False when a task with the same key is still running.
    """
    with _lock:
        existing = _running.get(key)
        if existing is not None and existing.is_alive():
            return False
        event = threading.Event()
        _cancel_events[key] = event
        thread = threading.Thread(
            target=_run, name=f"awsbatch-{key}", args=(task, key, fn, args, kwargs, event), daemon=True
        )
        _running[key] = thread
    thread.start()
    return True


def cancel_all() -> None:
    with _lock:
        for event in _cancel_events.values():
            event.set()


def join_all(timeout: float = 5.0) -> None:
    """Wait for running threads (tests, unregister); they are daemons, so this is a courtesy."""
    with _lock:
        threads = list(_running.values())
    for t in threads:
        t.join(timeout)


def drain_pending() -> list[Any]:
    """Remove and return every queued message (unregister: nobody will read them)."""
    out = []
    while True:
        try:
            out.append(MESSAGES.get_nowait())
        except queue.Empty:
            return out


def _run(task: str, key: str, fn: Callable[..., None], args: tuple, kwargs: dict, event: threading.Event) -> None:
    try:
        fn(*args, cancel=event, **kwargs)
    except AwsBatchRenderError as exc:
        log.info("%s failed: %s", task, exc)
        post(TaskFailed(task, str(exc), _submission_of(key)))
    except Exception as exc:
        message = translate(exc, task)
        if message is None:
            log.exception("%s failed unexpectedly", task)
            message = f"{task.capitalize()} failed unexpectedly: {type(exc).__name__}: {exc} (see the console)"
        post(TaskFailed(task, message, _submission_of(key)))
    finally:
        # Forget the thread and post its end in one step: whoever reads TaskEnded may start the
        # same key again at once, and whoever sees the key idle finds the TaskEnded queued.
        with _lock:
            if _running.get(key) is threading.current_thread():
                del _running[key]
            post(TaskEnded(task, key))


def translate(exc: BaseException, task: str) -> str | None:
    """A user-facing message for a botocore failure the core did not translate, else None."""
    from ..core.aws.errors import is_aws_exception, translate_aws_error

    if not is_aws_exception(exc):
        return None
    return str(translate_aws_error(exc, _ACTIONS.get(task, task)))


_ACTIONS = {
    "submit": "submit the render",
    "poll": "read the job status",
    "cancel": "cancel the jobs",
    "retry": "retry the failed chunks",
    "logs": "read the log",
    "download": "download the results",
    "preview": "fetch the latest frame",
    "connect": "read the stack's outputs",
    "test": "check the connection",
}


def _submission_of(key: str) -> str:
    # keys look like "cancel:<submission id>"; submit/poll keys have no id
    return key.split(":", 1)[1] if ":" in key else ""
