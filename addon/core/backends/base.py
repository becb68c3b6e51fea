"""What every backend (AWS Batch, this computer) offers, and the record of a submission.

A :class:`SubmissionRecord` is what the add-on and the CLI keep on disk to follow a
submission later (see :mod:`..records`); it holds ids and locations, never secrets.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ..errors import AwsBatchRenderError
from ..jobspec import JobSpec
from .status import JobStatus


class RetryTooEarlyError(AwsBatchRenderError):
    """retry was asked while chunks (or processes) of the submission still pend or run."""

    exit_code = 33


@dataclass
class SubmissionRecord:
    submission_id: str
    backend: str  # "aws" or "local"
    spec_uri: str
    created_at: str
    source_blend: str  # the user's .blend path ("" for a never-saved file)
    frames_total: int
    slice_count: int
    # backend-specific ids and places: aws {"render_job_id", "stitch_job_id", "queue", ...};
    # local {"state_dir"}. Retries append to "history".
    jobs: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)  # profile/region/endpoint/bucket: no secrets
    last_status: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> SubmissionRecord:
        raw = json.loads(text)
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


class Backend(Protocol):
    name: str

    def submit(self, spec: JobSpec, spec_uri: str, source_blend: str = "") -> SubmissionRecord:
        """Start rendering the spec already written at ``spec_uri``."""

    def status(self, record: SubmissionRecord) -> JobStatus: ...

    def cancel(self, record: SubmissionRecord) -> None:
        """Stop every pending and running part of the submission."""

    def retry_failed(self, record: SubmissionRecord) -> SubmissionRecord:
        """Render the failed slices again (same output prefix), then stitch."""

    def logs(self, record: SubmissionRecord, slice_index: int | None = None, lines: int = 100) -> str:
        """The last ``lines`` of a slice's log (the first failed slice when None)."""
