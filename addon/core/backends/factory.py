"""Choosing a backend by name, and rebuilding one from a saved submission record.

The local backend is imported lazily: it may pull in process machinery the AWS side
never needs, and the other way round.
"""

from __future__ import annotations

from typing import Any

from ..aws.session import AwsSettings
from ..errors import AwsBatchRenderError
from .base import Backend, SubmissionRecord

BACKENDS = ("aws", "local")


class BackendConfigError(AwsBatchRenderError):
    """A backend was asked for by an unknown name, or without what it needs."""

    exit_code = 2


_AWS_REQUIRED = ("job_queue", "render_job_definition", "stitch_job_definition")


def make_backend(name: str, **cfg: Any) -> Backend:
    """``make_backend("aws", settings=..., job_queue=..., render_job_definition=...,
    stitch_job_definition=..., vcpus=...)`` or ``make_backend("local", concurrency=2)``.

    For "aws", ``settings`` may be replaced by ``profile``/``region``/``endpoint_url``.
    """
    if name == "aws":
        from .aws_batch.backend import AwsBatchBackend

        settings = cfg.pop("settings", None) or AwsSettings(
            profile=cfg.pop("profile", "") or "",
            region=cfg.pop("region", "") or "",
            endpoint_url=cfg.pop("endpoint_url", "") or "",
        )
        for key in ("profile", "region", "endpoint_url", "bucket"):
            cfg.pop(key, None)
        missing = [k for k in _AWS_REQUIRED if not cfg.get(k)]
        if missing:
            flags = {
                "job_queue": "--queue",
                "render_job_definition": "--job-definition",
                "stitch_job_definition": "--stitch-job-definition",
            }
            raise BackendConfigError(
                "The AWS backend needs "
                + ", ".join(flags[k] for k in missing)
                + ": pass them, or --stack NAME to read them from the deployed stack."
            )
        return AwsBatchBackend(
            settings,
            cfg.pop("job_queue"),
            cfg.pop("render_job_definition"),
            cfg.pop("stitch_job_definition"),
            **cfg,
        )
    if name == "local":
        from .local.backend import LocalBackend

        return LocalBackend(**{k: v for k, v in cfg.items() if k in ("concurrency", "max_attempts", "worker_env")})
    raise BackendConfigError(f"Unknown backend {name!r}: choose one of {', '.join(BACKENDS)}.")


def backend_for_record(record: SubmissionRecord) -> Backend:
    """The backend that can follow ``record``, configured as it was at submit."""
    s = record.settings or {}
    if record.backend == "aws":
        return make_backend(
            "aws",
            settings=AwsSettings(
                profile=s.get("profile", ""), region=s.get("region", ""), endpoint_url=s.get("endpoint_url", "")
            ),
            job_queue=s.get("job_queue") or record.jobs.get("job_queue", ""),
            render_job_definition=s.get("render_job_definition", ""),
            stitch_job_definition=s.get("stitch_job_definition", ""),
            gpu_job_queue=s.get("gpu_job_queue", ""),
            log_group=s.get("log_group") or "/aws/batch/job",
            vcpus=_int(s.get("vcpus")),
            memory_mib=_int(s.get("memory_mib")),
            timeout_seconds=_int(s.get("timeout_seconds")),
            attempts=_int(s.get("attempts")),
        )
    if record.backend == "local":
        cfg: dict[str, Any] = {}
        if _int(s.get("concurrency")):
            cfg["concurrency"] = _int(s.get("concurrency"))
        if _int(s.get("max_attempts")):
            cfg["max_attempts"] = _int(s.get("max_attempts"))
        if s.get("blender_bin"):
            cfg["worker_env"] = {"BLENDER_BIN": s["blender_bin"]}
        return make_backend("local", **cfg)
    raise BackendConfigError(
        f"Submission {record.submission_id} was made with backend {record.backend!r}, which this "
        f"version does not know ({', '.join(BACKENDS)}); update aws-batch-render."
    )


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
