"""What a worker run is about: the job spec from ``JOB_SPEC_URI`` and the Batch environment.

``AWS_BATCH_JOB_ARRAY_INDEX`` is absent for a single-slice plain job (index 0);
``AWS_BATCH_JOB_ATTEMPT`` starts at 1.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from addon.core.errors import FrameRangeError, JobSpecError, ObjectNotFoundError, StorageError, StorageURIError
from addon.core.frames import frames_for_index
from addon.core.jobspec import JobSpec
from addon.core.storage import Store, open_store

from .failures import WorkerContentError, WorkerRetryableError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerEnv:
    spec_uri: str
    array_index: int
    attempt: int
    scratch: str  # "" = the system's temp folder

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerEnv:
        env = os.environ if environ is None else environ
        spec_uri = env.get("JOB_SPEC_URI", "").strip()
        if not spec_uri:
            raise WorkerContentError(
                "JOB_SPEC_URI is not set: the job definition must pass the job spec's location "
                "(s3://bucket/.../spec.json or file:///.../spec.json) in the environment."
            )
        raw_index = env.get("AWS_BATCH_JOB_ARRAY_INDEX", "").strip()
        try:
            index = int(raw_index) if raw_index else 0
        except ValueError:
            raise WorkerContentError(
                f"AWS_BATCH_JOB_ARRAY_INDEX is {raw_index!r}, not a whole number."
            ) from None
        raw_attempt = env.get("AWS_BATCH_JOB_ATTEMPT", "").strip()
        attempt = int(raw_attempt) if raw_attempt.isdigit() else 1
        return cls(spec_uri, index, attempt, env.get("WORKER_SCRATCH", ""))


class StoreCache:
    """One store per URI scheme, so one S3 client serves spec, inputs, frames and records."""

    def __init__(self) -> None:
        self._stores: dict[str, Store] = {}
        self._lock = threading.Lock()

    def seed(self, uri: str, store: Store) -> None:
        with self._lock:
            self._stores.setdefault(uri.split(":", 1)[0], store)

    def __call__(self, uri: str) -> Store:
        scheme = uri.split(":", 1)[0]
        with self._lock:
            if scheme not in self._stores:
                self._stores[scheme] = open_store(uri)
            return self._stores[scheme]


def load_spec(uri: str) -> tuple[JobSpec, Store]:
    """Read and validate the spec; content errors for a bad or missing spec."""
    try:
        store = open_store(uri)
        data = store.get_bytes(uri)
    except StorageURIError as exc:
        raise WorkerContentError(f"JOB_SPEC_URI: {exc}") from None
    except ObjectNotFoundError:
        raise WorkerContentError(
            f"The job spec {uri} does not exist: the submission may have been deleted; resubmit."
        ) from None
    except StorageError as exc:
        raise WorkerRetryableError(f"Cannot read the job spec: {exc}") from None
    try:
        spec = JobSpec.from_json(data)
    except JobSpecError as exc:
        raise WorkerContentError(f"Bad job spec {uri}: {exc}") from None
    return spec, store


def slice_frames(spec: JobSpec, index: int) -> list[int]:
    try:
        return frames_for_index(spec.slices, index)
    except FrameRangeError as exc:
        raise WorkerContentError(str(exc)) from None
