"""The SubmitJob requests of a submission, as pure functions (unit-tested without AWS):
job names and tags, the retry strategy, resource overrides, the render array and the
stitch job that depends on it.
"""

from __future__ import annotations

import re
from typing import Any

from ... import exitcodes
from ...errors import AwsBatchRenderError
from ...frames import array_plan
from ...jobspec import JobSpec
from ...still_split import merge_memory_mib

_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")
_TAG_BAD = re.compile(r"[^\w .:/=+@-]+", re.UNICODE)
TAG_SUBMISSION = "aws-batch-render:submission"
TAG_BLEND = "aws-batch-render:blend"
#: AWS Batch's shortest attempt timeout: a shorter one is sent as this (and the CLI says so)
MIN_TIMEOUT_SECONDS = 60


def sanitize_job_name(text: str, fallback: str = "render") -> str:
    """A Batch job name: 1-128 letters, digits, '-' and '_'."""
    name = _NAME_BAD.sub("-", text).strip("-")
    name = name[:128].rstrip("-")
    return name or fallback


def sanitize_tag_value(text: str) -> str:
    """A tag value: up to 256 of letters, digits, spaces and ``_ . : / = + - @``."""
    return _TAG_BAD.sub("_", text)[:256]


def retry_strategy(attempts: int) -> dict[str, Any]:
    """Retry Spot reclaims and the worker's retryable exit code; stop on anything else.

    Given at submit it replaces the job definition's strategy, so it must be complete:
    without the final catch-all, an unmatched exit would be retried.
    """
    if not 1 <= attempts <= 10:
        raise AwsBatchRenderError(f"Attempts must be between 1 and 10 (AWS Batch's limit), got {attempts}.")
    return {
        "attempts": attempts,
        "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"},
            {"onExitCode": str(exitcodes.RETRYABLE), "action": "RETRY"},
            # Two catch-alls: "*" on the reason may not match an empty reason.
            {"onExitCode": "*", "action": "EXIT"},
            {"onReason": "*", "action": "EXIT"},
        ],
    }


def job_tags(spec: JobSpec) -> dict[str, str]:
    tags = {TAG_SUBMISSION: sanitize_tag_value(spec.submission_id)}
    if spec.source_name:
        tags[TAG_BLEND] = sanitize_tag_value(spec.source_name)
    return tags


def base_job_name(spec: JobSpec) -> str:
    stem = re.sub(r"\.blend$", "", spec.source_name or "scene", flags=re.IGNORECASE)
    # the submission id goes last and whole: it is what makes the name findable
    room = 128 - len(spec.submission_id) - len("abr--stitch-r99")
    return sanitize_job_name(f"abr-{stem[: max(room, 1)]}-{spec.submission_id}")


def container_overrides(spec_uri: str, vcpus: int | None, memory_mib: int | None, gpus: int = 0) -> dict[str, Any]:
    overrides: dict[str, Any] = {"environment": [{"name": "JOB_SPEC_URI", "value": spec_uri}]}
    requirements = []
    if vcpus:
        requirements.append({"type": "VCPU", "value": str(vcpus)})
        # A vCPU reservation is CPU shares, not a cap: tell Blender how many threads to use.
        overrides["environment"].append({"name": "RENDER_THREADS", "value": str(vcpus)})
    if memory_mib:
        requirements.append({"type": "MEMORY", "value": str(memory_mib)})
    if gpus:
        requirements.append({"type": "GPU", "value": str(gpus)})
    if requirements:
        overrides["resourceRequirements"] = requirements
    return overrides


def render_job_request(
    spec: JobSpec,
    spec_uri: str,
    *,
    job_queue: str,
    job_definition: str,
    slice_count: int | None = None,
    name_suffix: str = "render",
    vcpus: int | None = None,
    memory_mib: int | None = None,
    gpus: int = 0,
    timeout_seconds: int | None = None,
    attempts: int | None = None,
) -> dict[str, Any]:
    """SubmitJob arguments of the render job: an array of one child per slice, or a plain
    job for one slice (Batch arrays have 2..10,000 children).

    A timeout or retry strategy given at submit *replaces* the job definition's, so each is
    sent only when asked for (None: the job definition's, e.g. the stack's 4-hour timeout)."""
    plan = array_plan(spec.slices if slice_count is None else [[0]] * slice_count)
    request: dict[str, Any] = {
        "jobName": sanitize_job_name(f"{base_job_name(spec)}-{name_suffix}"),
        "jobQueue": job_queue,
        "jobDefinition": job_definition,
        "containerOverrides": container_overrides(spec_uri, vcpus, memory_mib, gpus),
        "tags": job_tags(spec),
        "propagateTags": True,
    }
    _add_limits(request, timeout_seconds, attempts)
    if plan.is_array:
        request["arrayProperties"] = {"size": plan.array_size}
    return request


def stitch_job_request(
    spec: JobSpec,
    spec_uri: str,
    render_job_id: str | None,
    *,
    job_queue: str,
    job_definition: str,
    name_suffix: str = "stitch",
    attempts: int | None = None,
) -> dict[str, Any]:
    """SubmitJob arguments of the stitch job, which waits for every render child (none when
    ``render_job_id`` is None: re-stitching after every frame exists). Its timeout is always
    the stitch job definition's (a chunk's render timeout says nothing about the video)."""
    request: dict[str, Any] = {
        "jobName": sanitize_job_name(f"{base_job_name(spec)}-{name_suffix}"),
        "jobQueue": job_queue,
        "jobDefinition": job_definition,
        "containerOverrides": container_overrides(spec_uri, None, None),
        "tags": job_tags(spec),
        "propagateTags": True,
    }
    if spec.still_split is not None:  # a split still: the same job merges the parts instead
        request["containerOverrides"]["command"] = ["merge"]
        # N full-resolution multilayer EXRs: far more than a video stitch needs
        memory = {"type": "MEMORY", "value": str(merge_memory_mib(spec))}
        request["containerOverrides"]["resourceRequirements"] = [memory]
    if render_job_id:
        request["dependsOn"] = [{"jobId": render_job_id}]
    _add_limits(request, None, attempts)
    return request


def _add_limits(request: dict[str, Any], timeout_seconds: int | None, attempts: int | None) -> None:
    if attempts is not None:
        request["retryStrategy"] = retry_strategy(attempts)
    if timeout_seconds is not None:
        # per child attempt; Batch's minimum is 60 s
        request["timeout"] = {"attemptDurationSeconds": max(MIN_TIMEOUT_SECONDS, int(timeout_seconds))}
