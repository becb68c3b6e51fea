"""How many render jobs AWS Batch can run at once, read from the live compute environment.

The stack's parameters (and, without a stack, the template's defaults: 256 vCPUs, 8 per
job) say what was asked at deploy time; the compute environments behind the job queue say
what holds now (someone raised the Spot ceiling in the console, added an on-demand
environment, or a job definition got another revision). The quote and the automatic chunk
size use what holds now:

* the queue's compute environments (``batch:DescribeJobQueues`` then
  ``batch:DescribeComputeEnvironments``): the sum of ``maxvCpus`` of those ENABLED, since
  jobs overflow from Spot to on-demand;
* the render job definition's vCPUs (``batch:DescribeJobDefinitions``, newest ACTIVE
  revision): ``resourceRequirements`` VCPU, else the older ``vcpus`` field.

Any of them that cannot be read (no queue known, access denied on an older stack's policy,
no such resource) leaves the figure it would have given as it was, and the note says so.
boto3 is imported lazily by :mod:`..aws.session`; nothing here touches bpy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from ..aws.session import AwsSettings, client

log = logging.getLogger(__name__)


@dataclass
class LiveFigures:
    """What the live compute environment says (0: not read) and how it was read."""

    max_vcpus: int = 0
    job_vcpus: int = 0
    notes: tuple[str, ...] = ()


def queue_max_vcpus(batch: Any, job_queue: str) -> int:
    """Sum of ``maxvCpus`` over the ENABLED compute environments of ``job_queue`` (0: none)."""
    queues = batch.describe_job_queues(jobQueues=[job_queue]).get("jobQueues", [])
    if not queues:
        return 0
    arns = [e["computeEnvironment"] for e in queues[0].get("computeEnvironmentOrder", [])]
    if not arns:
        return 0
    envs = batch.describe_compute_environments(computeEnvironments=arns).get("computeEnvironments", [])
    return sum(
        int((e.get("computeResources") or {}).get("maxvCpus") or 0)
        for e in envs
        if e.get("state", "ENABLED") == "ENABLED"
    )


def definition_vcpus(batch: Any, job_definition: str) -> int:
    """vCPUs of the newest ACTIVE revision of ``job_definition`` (0: not found or not set)."""
    defs = batch.describe_job_definitions(jobDefinitions=[job_definition]).get("jobDefinitions", [])
    active = [d for d in defs if d.get("status", "ACTIVE") == "ACTIVE"]
    if not active:
        return 0
    props = max(active, key=lambda d: int(d.get("revision") or 0)).get("containerProperties") or {}
    for req in props.get("resourceRequirements") or []:
        if req.get("type") == "VCPU":
            return int(float(req.get("value") or 0))
    return int(props.get("vcpus") or 0)


def read_live(settings: AwsSettings, job_queue: str = "", job_definition: str = "") -> LiveFigures:
    """The live figures of ``job_queue`` and ``job_definition``; what cannot be read is 0,
    with a note that says why."""
    if not job_queue and not job_definition:
        return LiveFigures(notes=("no job queue known",))
    # a quote waits on this: two tries, then the stack's figures (an unreachable endpoint took 13 s with 8)
    batch = client("batch", replace(settings, max_attempts=min(settings.max_attempts, 2)))
    found = LiveFigures()
    notes: list[str] = []
    for name, read, what in (
        ("max_vcpus", lambda: queue_max_vcpus(batch, job_queue), job_queue),
        ("job_vcpus", lambda: definition_vcpus(batch, job_definition), job_definition),
    ):
        if not what:
            continue
        try:
            setattr(found, name, read())
        except Exception as exc:  # access denied on an older policy, network: keep the stack's figure
            log.info("could not read %s: %s", what, exc)
            notes.append(f"could not read {_short(what)}: {_reason(exc)}")
        else:
            if not getattr(found, name):
                notes.append(f"{_short(what)} not found or not enabled")
    found.notes = tuple(notes)
    return found


def apply_live(capacity: Any, live: LiveFigures, fallback: str) -> str:
    """Put the live figures into ``capacity`` (an ``AwsCapacity``) and say where its vCPU
    figures came from; ``fallback`` names what they were before (stack parameters, or the
    template's defaults)."""
    parts = []
    if live.max_vcpus:
        capacity.max_vcpus = live.max_vcpus
        parts.append(f"{live.max_vcpus} vCPUs of the live compute environment(s)")
    else:
        parts.append(f"{capacity.max_vcpus} vCPUs from {fallback}")
    if live.job_vcpus:
        capacity.job_vcpus = live.job_vcpus
        parts.append(f"{live.job_vcpus} per job from the job definition")
    else:
        parts.append(f"{capacity.job_vcpus} per job from {fallback}")
    source = ", ".join(parts)
    if live.notes:
        source += f" ({'; '.join(live.notes)})"
    capacity.source = source
    return source


def _short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1] if arn.startswith("arn:") else arn


def _reason(exc: Exception) -> str:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "") if hasattr(exc, "response") else ""
    return code or type(exc).__name__
