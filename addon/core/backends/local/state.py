"""The local backend's state on disk: the supervisor's ``state.json`` (one entry per render
slice and the stitch) and where a submission keeps it. The supervisor writes it; status
readers only read it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...errors import AwsBatchRenderError
from ...storage import FileStore, parse_uri, path_to_uri
from ..base import RetryTooEarlyError

STATE_FILE = "state.json"


PID_FILE = "supervisor.pid"


class LocalBackendError(AwsBatchRenderError):
    exit_code = 7


class RetryWhileRunningError(RetryTooEarlyError, LocalBackendError):
    """retry was asked while the supervisor or a worker of the submission still runs (33)."""


def default_store_uri() -> str:
    """``file://`` root of the local backend's store (inputs and submissions)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return path_to_uri(Path(base) / "aws-batch-render" / "local-store", directory=True)


def default_concurrency(threads_per_slice: int) -> int:
    """Slices at once: this computer's cores divided by the threads each slice uses."""
    cores = os.cpu_count() or 1
    return max(1, cores // max(1, threads_per_slice or cores))


@dataclass
class TaskState:
    """One render slice (or the stitch) as the supervisor sees it."""

    index: int
    state: str = "PENDING"  # PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED
    attempts: int = 0
    pid: int = 0
    exit_code: int | None = None
    started_at: float = 0.0
    stopped_at: float = 0.0
    log: str = ""  # log file of the latest attempt


@dataclass
class SupervisorState:
    submission_id: str
    spec_uri: str
    concurrency: int
    max_attempts: int
    state: str = "SUBMITTED"  # SUBMITTED, RUNNING, SUCCEEDED, FAILED, CANCELLED
    started_at: float = 0.0
    stopped_at: float = 0.0
    slices: list[TaskState] = field(default_factory=list)
    stitch: TaskState | None = None
    message: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> SupervisorState:
        raw = json.loads(text)
        raw["slices"] = [TaskState(**s) for s in raw.get("slices", [])]
        raw["stitch"] = TaskState(**raw["stitch"]) if raw.get("stitch") else None
        return cls(**raw)


def state_dir_for(spec_uri: str) -> Path:
    parsed = parse_uri(spec_uri)
    if parsed.scheme != "file":
        raise LocalBackendError(
            f"The local backend renders from a folder on this computer, but the spec is at {spec_uri}; "
            "submit with a file:// store (the default for --backend local)."
        )
    return parsed.path.parent / "local"


def read_state(state_dir: Path) -> SupervisorState:
    path = Path(state_dir) / STATE_FILE
    try:
        return SupervisorState.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LocalBackendError(
            f"No local render state at {path}: the submission folder was moved or deleted."
        ) from None
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise LocalBackendError(
            f"The local render state {path} is damaged ({type(exc).__name__}); its progress cannot be "
            "read. Frames already rendered stay in the store: submit the scene again to render the rest."
        ) from None


def write_state(state_dir: Path, state: SupervisorState) -> None:
    FileStore().put_bytes(state.to_json().encode(), path_to_uri(Path(state_dir) / STATE_FILE))
