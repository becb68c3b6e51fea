"""The AWS Batch backend: submit the render array and the stitch job, follow, cancel,
retry the failed slices, read a slice's log.

Cost of one status refresh (what ``bench/status_refresh.py`` measures), in AWS calls:

* one ``DescribeJobs`` for every render job of the submission (the first array and any
  retry arrays) plus the current stitch job — never one call per child;
* ``ceil(frames / 1000)`` ``ListObjectsV2`` pages of the frames prefix: frames done, the
  latest frame, and each frame's upload time. Seconds per frame come from those times
  (consecutive frames of one slice), so the ETA needs no extra call;
* at most ONE extra call, only while something is left to do: either
  ``ListJobs(arrayJobId, jobStatus=FAILED)`` when the FAILED count of an array changed
  since the last refresh (its answer is cached: failed children stay failed), or else
  one ``GetObject`` of the progress record of the slice that wrote the newest frame (it
  knows the render time of a one-frame slice, which frame times cannot give). Records
  read are cached, so their knowledge accumulates across refreshes.

That is ``2 + ceil(frames / 1000)`` calls at most, constant in the number of chunks.
The first refresh of a record also reads the job spec once (cached per backend).

Batch has no CANCELLED state (cancelled jobs end FAILED): :meth:`cancel` marks the
record, and status then reports the stopped children as CANCELLED.

A backend instance is used from one thread at a time (the add-on's poll thread or the
CLI); it never touches bpy. boto3 is imported lazily through :mod:`.aws`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from collections import Counter
from datetime import datetime
from typing import Any

from . import exitcodes
from .aws import AwsSettings, client
from .aws_errors import (
    AwsAccessDeniedError,
    BatchJobNotFoundError,
    JobDefinitionError,
    JobQueueError,
    aws_errors,
)
from .backend import SubmissionRecord
from .errors import AwsBatchRenderError, ObjectNotFoundError, StorageError
from .frames import array_plan
from .jobspec import JobSpec, frame_from_name, utc_now_iso
from .status import (
    ACTIVE_STATES,
    DONE_STATES,
    PENDING_STATES,
    JobStatus,
    SliceProgress,
    summarize,
)
from .storage import S3Store, join_uri, parse_uri

log = logging.getLogger(__name__)

BACKEND_NAME = "aws"
#: Batch allows at most 100 ids per DescribeJobs call
DESCRIBE_LIMIT = 100
_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")
_TAG_BAD = re.compile(r"[^\w .:/=+@-]+", re.UNICODE)
TAG_SUBMISSION = "aws-batch-render:submission"
TAG_BLEND = "aws-batch-render:blend"


class NothingToRetryError(AwsBatchRenderError):
    """retry was asked for a submission with no failed slice."""

    exit_code = 32


class RetryTooEarlyError(AwsBatchRenderError):
    """retry was asked while chunks of the submission are still pending or running."""

    exit_code = 33


# --- pure request builders (unit-tested without AWS) ---------------------------------


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
    if render_job_id:
        request["dependsOn"] = [{"jobId": render_job_id}]
    _add_limits(request, None, attempts)
    return request


def _add_limits(request: dict[str, Any], timeout_seconds: int | None, attempts: int | None) -> None:
    if attempts is not None:
        request["retryStrategy"] = retry_strategy(attempts)
    if timeout_seconds is not None:
        # per child attempt; Batch's minimum is 60 s
        request["timeout"] = {"attemptDurationSeconds": max(60, int(timeout_seconds))}


def child_counts(job: dict[str, Any]) -> dict[str, int]:
    """Per-state counts of a described render job's children (a plain job is one child)."""
    props = job.get("arrayProperties") or {}
    size = props.get("size")
    if size:
        summary = {k: int(v) for k, v in (props.get("statusSummary") or {}).items() if v}
        missing = int(size) - sum(summary.values())
        if missing > 0:
            # Children not counted: just submitted (a pending parent), or the parent ended
            # before they existed (e.g. FAILED at once) and they never will.
            parent = job.get("status", "SUBMITTED")
            state = parent if parent in (*PENDING_STATES, "SUCCEEDED", "FAILED") else "SUBMITTED"
            summary[state] = summary.get(state, 0) + missing
        return summary
    return {job.get("status", "SUBMITTED"): 1}


def seconds_per_frame_records(
    slices: list[list[int]], frame_times: dict[int, float], frame_to_slice: dict[int, int]
) -> dict[int, SliceProgress]:
    """Per-slice render speed from the upload times of consecutive frames of each slice."""
    by_slice: dict[int, list[float]] = {}
    for frame, t in frame_times.items():
        s = frame_to_slice.get(frame)
        if s is not None:
            by_slice.setdefault(s, []).append(t)
    records = {}
    for s, times in by_slice.items():
        times.sort()
        if len(times) >= 2 and times[-1] > times[0]:
            records[s] = SliceProgress(
                index=s,
                frames_total=len(slices[s]),
                frames_done=len(times) - 1,
                seconds_per_frame=(times[-1] - times[0]) / (len(times) - 1),
            )
    return records


# --- the backend -------------------------------------------------------------------------


@dataclasses.dataclass
class _Entry:
    """One render job of a submission: the first array, or a retry of some slices."""

    render_job_id: str
    slices: list[int]  # global slice index of each child, in child order
    is_array: bool
    spec_uri: str


class AwsBatchBackend:
    name = BACKEND_NAME

    def __init__(
        self,
        settings: AwsSettings,
        job_queue: str,
        render_job_definition: str,
        stitch_job_definition: str,
        *,
        vcpus: int | None = None,
        memory_mib: int | None = None,
        timeout_seconds: int | None = None,
        attempts: int | None = None,
        log_group: str = "/aws/batch/job",
        gpu_job_queue: str = "",
        preflight: bool = True,
    ) -> None:
        self.settings = settings
        self.job_queue = job_queue
        self.render_job_definition = render_job_definition
        self.stitch_job_definition = stitch_job_definition
        self.vcpus = vcpus
        self.memory_mib = memory_mib
        self.timeout_seconds = timeout_seconds
        if attempts is not None:
            retry_strategy(attempts)  # refuse a bad count now, not after the upload
        self.attempts = attempts
        self.log_group = log_group
        self.gpu_job_queue = gpu_job_queue
        self.preflight = preflight
        self._clients: dict[str, Any] = {}
        self._specs: dict[str, JobSpec] = {}
        self._frame_to_slice: dict[str, dict[int, int]] = {}
        self._failed_cache: dict[tuple[str, int], set[int]] = {}
        self._progress_cache: dict[tuple[str, int], SliceProgress] = {}

    # --- clients -----------------------------------------------------------------
    def client(self, service: str) -> Any:
        if service not in self._clients:
            with aws_errors(f"connect to AWS {service}", **self._who()):
                self._clients[service] = client(service, self.settings)
        return self._clients[service]

    def _who(self) -> dict[str, str]:
        return {"profile": self.settings.profile, "region": self.settings.region}

    # --- submit ------------------------------------------------------------------
    def submit(self, spec: JobSpec, spec_uri: str, source_blend: str = "") -> SubmissionRecord:
        queue, gpus = self._queue_for(spec)
        if self.preflight:
            self.check_resources(queue)
        self._specs[spec_uri] = spec
        render_id, stitch_id = self._submit_pair(spec, spec_uri, spec_uri, len(spec.slices), queue, gpus, "")
        entry = _Entry(render_id, list(range(len(spec.slices))), len(spec.slices) > 1, spec_uri)
        jobs = {
            "render_job_id": render_id,
            "stitch_job_id": stitch_id,
            "job_queue": queue,
            "history": [self._history_item("submit", entry, stitch_id)],
        }
        record = SubmissionRecord(
            submission_id=spec.submission_id,
            backend=BACKEND_NAME,
            spec_uri=spec_uri,
            created_at=utc_now_iso(),
            source_blend=source_blend,
            frames_total=len(spec.frames),
            slice_count=len(spec.slices),
            jobs=jobs,
            settings=self.record_settings(spec_uri),
        )
        log.info("submitted %s: render %s, stitch %s", spec.submission_id, render_id, stitch_id or "-")
        return record

    def record_settings(self, spec_uri: str) -> dict[str, str]:
        """What a later session needs to rebuild this backend (no secrets)."""
        parsed = parse_uri(spec_uri)
        return {
            "profile": self.settings.profile,
            "region": self.settings.region,
            "endpoint_url": self.settings.endpoint_url,
            "job_queue": self.job_queue,
            "gpu_job_queue": self.gpu_job_queue,
            "render_job_definition": self.render_job_definition,
            "stitch_job_definition": self.stitch_job_definition,
            "log_group": self.log_group,
            "bucket": parsed.bucket,
            "vcpus": str(self.vcpus or ""),
            "memory_mib": str(self.memory_mib or ""),
            "timeout_seconds": str(self.timeout_seconds or ""),
            "attempts": str(self.attempts or ""),
        }

    def _queue_for(self, spec: JobSpec) -> tuple[str, int]:
        if spec.render.device == "GPU" and self.gpu_job_queue:
            return self.gpu_job_queue, 1
        return self.job_queue, 0

    def check_resources(self, queue: str) -> None:
        """Fail early, with a fix, when the queue or a job definition is unusable."""
        batch = self.client("batch")
        with aws_errors("check the job queue", resource=queue, **self._who()):
            found = batch.describe_job_queues(jobQueues=[queue]).get("jobQueues", [])
        if not found:
            raise JobQueueError(
                f"The job queue {queue!r} does not exist in region {self.settings.region or '(default)'}. "
                "Check --queue (or the stack name) and --region, or deploy the stack."
            )
        q = found[0]
        if q.get("state") != "ENABLED":
            raise JobQueueError(
                f"The job queue {queue!r} is {q.get('state', 'not enabled')}: it accepts no jobs. Enable "
                "it in the AWS Batch console (or redeploy the stack) and submit again."
            )
        if q.get("status") == "INVALID":
            raise JobQueueError(
                f"The job queue {queue!r} is INVALID ({q.get('statusReason', 'no reason given')}). "
                "Fix its compute environments (or redeploy the stack) and submit again."
            )
        for definition in (self.render_job_definition, self.stitch_job_definition):
            with aws_errors("check the job definition", resource=definition, **self._who()):
                defs = batch.describe_job_definitions(jobDefinitions=[definition]).get("jobDefinitions", [])
            if not any(d.get("status", "ACTIVE") == "ACTIVE" for d in defs):
                raise JobDefinitionError(
                    f"The job definition {definition!r} does not exist or is inactive in region "
                    f"{self.settings.region or '(default)'}. Check --job-definition (or the stack name), "
                    "or redeploy the stack."
                )

    def _submit_pair(
        self,
        spec: JobSpec,
        render_spec_uri: str,
        stitch_spec_uri: str,
        slice_count: int,
        queue: str,
        gpus: int,
        suffix: str,
    ) -> tuple[str, str]:
        batch = self.client("batch")
        request = render_job_request(
            spec,
            render_spec_uri,
            job_queue=queue,
            job_definition=self.render_job_definition,
            slice_count=slice_count,
            name_suffix="render" + suffix,
            vcpus=self.vcpus,
            memory_mib=self.memory_mib,
            gpus=gpus,
            timeout_seconds=self.timeout_seconds,
            attempts=self.attempts,
        )
        with aws_errors("submit the render job", resource=queue, **self._who()):
            render_id = batch.submit_job(**request)["jobId"]
        if spec.output.video is None:
            return render_id, ""
        stitch = stitch_job_request(
            spec,
            stitch_spec_uri,
            render_id,
            job_queue=self.job_queue,
            job_definition=self.stitch_job_definition,
            name_suffix="stitch" + suffix,
            attempts=self.attempts,
        )
        try:
            with aws_errors("submit the stitch job", resource=self.job_queue, **self._who()):
                stitch_id = batch.submit_job(**stitch)["jobId"]
        except AwsBatchRenderError:
            # a render without its stitch would leave the user no way to get the video
            self._stop_job(render_id, "stitch job could not be submitted")
            raise
        return render_id, stitch_id

    @staticmethod
    def _history_item(kind: str, entry: _Entry, stitch_id: str) -> dict[str, Any]:
        return {
            "kind": kind,
            "render_job_id": entry.render_job_id,
            "stitch_job_id": stitch_id,
            "slices": entry.slices,
            "is_array": entry.is_array,
            "spec_uri": entry.spec_uri,
            "at": utc_now_iso(),
        }

    # --- reading the record --------------------------------------------------------
    def spec_for(self, record: SubmissionRecord) -> JobSpec:
        """The submission's spec, read once per backend."""
        spec = self._specs.get(record.spec_uri)
        if spec is None:
            loc = parse_uri(record.spec_uri)
            if loc.scheme != "s3":
                raise AwsBatchRenderError(
                    f"{record.spec_uri} is not an s3:// URI: this record does not belong to the AWS backend."
                )
            with aws_errors("read the job spec", resource=record.spec_uri, **self._who()):
                data = self.client("s3").get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()
            spec = JobSpec.from_json(data)
            self._specs[record.spec_uri] = spec
        return spec

    def _store(self) -> S3Store:
        return S3Store(self.settings, s3_client=self.client("s3"))

    @staticmethod
    def _entries(record: SubmissionRecord) -> list[_Entry]:
        history = record.jobs.get("history") or []
        entries = [
            _Entry(h["render_job_id"], list(h["slices"]), bool(h.get("is_array")), h.get("spec_uri", ""))
            for h in history
            if "render_job_id" in h  # a re-stitch rendered nothing
        ]
        if not entries:  # a record written without history: one job for every slice
            entries = [
                _Entry(
                    record.jobs["render_job_id"],
                    list(range(record.slice_count)),
                    record.slice_count > 1,
                    record.spec_uri,
                )
            ]
        return entries

    def _describe(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        batch = self.client("batch")
        found: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), DESCRIBE_LIMIT):
            with aws_errors("read the job status", **self._who()):
                jobs = batch.describe_jobs(jobs=ids[i : i + DESCRIBE_LIMIT]).get("jobs", [])
            found.update({j["jobId"]: j for j in jobs})
        missing = [j for j in ids if j not in found]
        if missing:
            raise BatchJobNotFoundError(
                f"AWS Batch does not know job(s) {', '.join(missing)}. The submission may belong to "
                "another account or region (check --profile/--region), or Batch has forgotten it "
                "(finished jobs are kept for about 7 days)."
            )
        return found

    def _failed_children(self, entry: _Entry, job: dict[str, Any], failed_count: int) -> tuple[set[int], bool]:
        """Global slice indices of the entry's failed children; and whether AWS was called."""
        if not entry.is_array:
            return ({entry.slices[0]} if job.get("status") == "FAILED" else set()), False
        key = (entry.render_job_id, failed_count)
        if key in self._failed_cache:
            return self._failed_cache[key], False
        batch = self.client("batch")
        failed: set[int] = set()
        with aws_errors("list the failed chunks", permission="batch:ListJobs", **self._who()):
            paginator = batch.get_paginator("list_jobs")
            pages = paginator.paginate(arrayJobId=entry.render_job_id, jobStatus="FAILED")
            for page in pages:
                for summary in page.get("jobSummaryList", []):
                    index = summary.get("arrayProperties", {}).get("index")
                    if index is None:
                        index = int(str(summary["jobId"]).rsplit(":", 1)[-1])
                    if 0 <= int(index) < len(entry.slices):
                        failed.add(entry.slices[int(index)])
        self._failed_cache[key] = failed
        return failed, True

    def _slice_states(
        self, record: SubmissionRecord, described: dict[str, dict[str, Any]]
    ) -> tuple[Counter, set[int], bool]:
        """Chunk counts over the whole submission (retries replace the slices they cover),
        the failed slices, and whether listing them cost a call."""
        counts: Counter = Counter()
        failed: set[int] = set()
        listed = False
        later: set[int] = set()
        for entry in reversed(self._entries(record)):
            job = described[entry.render_job_id]
            c = Counter(child_counts(job))
            # slices retried later were FAILED here; the retry now speaks for them
            superseded = len(set(entry.slices) & later)
            c["FAILED"] = max(0, c.get("FAILED", 0) - superseded)
            counts.update(c)
            if c["FAILED"] > 0:
                found, called = self._failed_children(entry, job, c["FAILED"] + superseded)
                listed = listed or called
                failed |= found - later
            later |= set(entry.slices)
        return +counts, failed, listed

    # --- status ------------------------------------------------------------------
    def status(self, record: SubmissionRecord) -> JobStatus:
        spec = self.spec_for(record)
        entries = self._entries(record)
        stitch_id = record.jobs.get("stitch_job_id", "")
        ids = [e.render_job_id for e in entries] + ([stitch_id] if stitch_id else [])
        described = self._describe(ids)
        counts, failed, listed = self._slice_states(record, described)
        stitch = described.get(stitch_id) if stitch_id else None
        stitch_state = stitch.get("status", "") if stitch else ""

        frame_times = self._frames_done(spec)
        frames_done = len(frame_times)
        latest = max(frame_times, key=lambda f: (frame_times[f], f)) if frame_times else None

        f2s = self._frame_map(record, spec)
        records = seconds_per_frame_records(spec.slices, frame_times, f2s)
        if record.jobs.get("cancelled"):
            counts, stitch_state = _as_cancelled(counts, stitch_state)
        unfinished = frames_done < len(spec.frames) or stitch_state not in ("", *DONE_STATES)
        if not listed and unfinished and any(counts.get(s, 0) for s in ACTIVE_STATES):
            self._read_progress(record, spec, entries, f2s.get(latest, 0) if latest is not None else 0)
        for (sid, index), rec in self._progress_cache.items():
            if sid == record.submission_id and rec.seconds_per_frame:
                records[index] = rec

        created = [described[e.render_job_id].get("createdAt", 0) for e in entries]
        stops = [j.get("stoppedAt", 0) for j in described.values()]
        start_ms = min(c for c in created if c) if any(created) else 0
        status = summarize(
            submission_id=record.submission_id,
            backend=BACKEND_NAME,
            frames_total=len(spec.frames),
            chunk_counts=dict(counts),
            stitch_state=stitch_state,
            frames_done=frames_done,
            records=records.values(),
            latest_frame=latest,
            latest_frame_uri=spec.frame_uri(latest) if latest is not None else "",
            failed_slices=failed,
            video_uri=spec.video_file_uri() if stitch_state == "SUCCEEDED" else "",
        )
        end_ms = max(stops) if status.finished and any(stops) else time.time() * 1000
        status.elapsed_seconds = max(0.0, (end_ms - start_ms) / 1000) if start_ms else 0.0
        status.vcpu_hours = self._vcpu_hours(described, entries, stitch, frames_done, status.seconds_per_frame)
        if failed:
            status.message = f"{len(failed)} chunk(s) failed: 'retry' renders them again"
        return status

    def _frames_done(self, spec: JobSpec) -> dict[int, float]:
        """Frames of the spec found under the frames prefix -> upload time (unix seconds)."""
        loc = parse_uri(spec.output.frames_uri)
        wanted = set(spec.frames)
        found: dict[int, float] = {}
        s3 = self.client("s3")
        with aws_errors("list the rendered frames", resource=spec.output.frames_uri, **self._who()):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.key):
                for obj in page.get("Contents", ()):
                    frame = frame_from_name(obj["Key"])
                    if frame is not None and frame in wanted:
                        found[frame] = _timestamp(obj.get("LastModified"))
        return found

    def _frame_map(self, record: SubmissionRecord, spec: JobSpec) -> dict[int, int]:
        f2s = self._frame_to_slice.get(record.submission_id)
        if f2s is None:
            f2s = {f: i for i, frames in enumerate(spec.slices) for f in frames}
            self._frame_to_slice[record.submission_id] = f2s
        return f2s

    def _read_progress(self, record: SubmissionRecord, spec: JobSpec, entries: list[_Entry], slice_index: int) -> None:
        """Read the progress record of one slice (named by its submission-wide number, also
        when a retry job rendered it: see JobSpec.original_slice)."""
        uri = spec.progress_record_uri(slice_index)
        try:
            rec = SliceProgress.from_json(self._store().get_bytes(uri))
        except ObjectNotFoundError:
            return
        except (StorageError, ValueError, TypeError) as exc:
            log.debug("cannot read progress record %s: %s", uri, exc)
            return
        rec.index = slice_index
        self._progress_cache[(record.submission_id, slice_index)] = rec

    def _vcpu_hours(
        self,
        described: dict[str, dict[str, Any]],
        entries: list[_Entry],
        stitch: dict[str, Any] | None,
        frames_done: int,
        seconds_per_frame: float | None,
    ) -> float:
        """Approximate vCPU-hours used so far.

        A submission of plain jobs only (one slice, or one-slice retries): their
        (stoppedAt or now) - startedAt, times their vCPUs. With an array job,
        DescribeJobs on the parent tells nothing per child, so rendering time is
        estimated as frames done x seconds per frame, times the vCPUs (start-up and
        failed attempts are not counted). Plus the stitch job's wall time.
        """
        now_ms = time.time() * 1000
        total = 0.0
        jobs = [described[e.render_job_id] for e in entries]
        arrays = [described[e.render_job_id] for e in entries if e.is_array]
        if arrays:
            if seconds_per_frame:
                total += _job_vcpus(arrays[0], self.vcpus) * frames_done * seconds_per_frame / 3600
        else:
            for job in jobs:
                if job.get("startedAt"):
                    wall_ms = max(0.0, (job.get("stoppedAt") or now_ms) - job["startedAt"])
                    total += _job_vcpus(job, self.vcpus) * wall_ms / 3_600_000
        if stitch and stitch.get("startedAt"):
            wall_ms = max(0.0, (stitch.get("stoppedAt") or now_ms) - stitch["startedAt"])
            total += _job_vcpus(stitch, None) * wall_ms / 3_600_000
        return round(total, 4)

    # --- cancel ------------------------------------------------------------------
    def cancel(self, record: SubmissionRecord) -> None:
        """CancelJob stops what has not started; STARTING/RUNNING children and a running
        stitch need TerminateJob (CancelJob on them succeeds but does nothing)."""
        batch = self.client("batch")
        reason = "Cancelled by the user (aws-batch-render)"
        stitch_id = record.jobs.get("stitch_job_id", "")
        with aws_errors("cancel the submission", permission="batch:CancelJob", **self._who()):
            for entry in self._entries(record):
                batch.cancel_job(jobId=entry.render_job_id, reason=reason)
                if entry.is_array:
                    for state in ("STARTING", "RUNNING"):
                        pages = batch.get_paginator("list_jobs").paginate(
                            arrayJobId=entry.render_job_id, jobStatus=state
                        )
                        for page in pages:
                            for child in page.get("jobSummaryList", []):
                                batch.terminate_job(jobId=child["jobId"], reason=reason)
                else:
                    batch.terminate_job(jobId=entry.render_job_id, reason=reason)
            if stitch_id:
                batch.cancel_job(jobId=stitch_id, reason=reason)
                batch.terminate_job(jobId=stitch_id, reason=reason)
        record.jobs["cancelled"] = utc_now_iso()

    def _stop_job(self, job_id: str, why: str) -> None:
        try:
            batch = self.client("batch")
            batch.cancel_job(jobId=job_id, reason=why)
            batch.terminate_job(jobId=job_id, reason=why)
        except Exception:  # best effort while already failing
            log.warning("could not stop job %s after an error", job_id, exc_info=True)

    # --- retry -------------------------------------------------------------------
    def retry_failed(self, record: SubmissionRecord) -> SubmissionRecord:
        spec = self.spec_for(record)
        entries = self._entries(record)
        described = self._describe([e.render_job_id for e in entries])
        counts, failed, _ = self._slice_states(record, described)
        busy = sum(counts.get(s, 0) for s in PENDING_STATES + ACTIVE_STATES)
        if busy:
            raise RetryTooEarlyError(
                f"{busy} chunk(s) of {record.submission_id} are still pending or running; wait until "
                "they finish (or cancel the submission) before retrying the failed ones."
            )
        n = 1 + sum(1 for h in record.jobs.get("history", []) if h.get("kind") in ("retry", "restitch"))
        if not failed:
            return self._restitch(record, spec, n)
        slices = sorted(failed)
        retry_spec = dataclasses.replace(
            spec,
            slices=[list(spec.slices[i]) for i in slices],
            extra={**spec.extra, "retry_of_slices": ",".join(map(str, slices)), "retry": str(n)},
        )
        retry_spec.validate()
        prefix = record.spec_uri.rsplit("/", 1)[0] + "/"
        retry_uri = join_uri(prefix, f"spec-retry-{n}.json")
        self._store().put_bytes(retry_spec.to_json().encode(), retry_uri)
        queue, gpus = self._queue_for(spec)
        render_id, stitch_id = self._submit_pair(
            retry_spec, retry_uri, record.spec_uri, len(slices), queue, gpus, f"-r{n}"
        )
        entry = _Entry(render_id, slices, len(slices) > 1, retry_uri)
        record.jobs["render_job_id"] = render_id
        record.jobs["stitch_job_id"] = stitch_id
        record.jobs.pop("cancelled", None)
        record.jobs.setdefault("history", []).append(self._history_item("retry", entry, stitch_id))
        self._failed_cache.clear()
        log.info("retrying %d slice(s) of %s as %s", len(slices), record.submission_id, render_id)
        return record

    def _restitch(self, record: SubmissionRecord, spec: JobSpec, n: int) -> SubmissionRecord:
        """Every chunk succeeded but the stitch failed: encode again, without re-rendering."""
        stitch_id = record.jobs.get("stitch_job_id", "")
        state = self._describe([stitch_id]).get(stitch_id, {}).get("status", "") if stitch_id else ""
        if state != "FAILED":
            raise NothingToRetryError(f"No chunk of {record.submission_id} has failed: there is nothing to retry.")
        request = stitch_job_request(
            spec, record.spec_uri, None, job_queue=self.job_queue, job_definition=self.stitch_job_definition,
            name_suffix=f"stitch-r{n}", attempts=self.attempts,
        )  # fmt: skip
        with aws_errors("submit the stitch job", resource=self.job_queue, **self._who()):
            new_id = self.client("batch").submit_job(**request)["jobId"]
        record.jobs["stitch_job_id"] = new_id
        record.jobs.pop("cancelled", None)
        record.jobs.setdefault("history", []).append(
            {"kind": "restitch", "stitch_job_id": new_id, "spec_uri": record.spec_uri, "at": utc_now_iso()}
        )
        log.info("re-stitching %s as %s", record.submission_id, new_id)
        return record

    # --- logs --------------------------------------------------------------------
    def logs(self, record: SubmissionRecord, slice_index: int | None = None, lines: int = 100) -> str:
        """The log tail of a slice (None: the first failed one, else the failed stitch, else
        slice 0), or of the stitch job with ``slice_index`` -1."""
        entries = self._entries(record)
        stitch_id = record.jobs.get("stitch_job_id", "")
        if slice_index is None:
            described = self._describe([e.render_job_id for e in entries] + ([stitch_id] if stitch_id else []))
            _, failed, _ = self._slice_states(record, described)
            stitch_failed = bool(stitch_id) and described.get(stitch_id, {}).get("status") == "FAILED"
            slice_index = min(failed) if failed else (-1 if stitch_failed else 0)
        if slice_index == -1:
            if not stitch_id:
                raise AwsBatchRenderError(f"{record.submission_id} has no stitch job (it renders frames only).")
            job_id, what = stitch_id, "the stitch"
        elif not 0 <= slice_index < record.slice_count:
            raise AwsBatchRenderError(
                f"Slice {slice_index} does not exist: {record.submission_id} has slices 0..{record.slice_count - 1} "
                "(-1 is the stitch job)."
            )
        else:
            entry = next(e for e in reversed(entries) if slice_index in e.slices)
            position = entry.slices.index(slice_index)
            job_id = f"{entry.render_job_id}:{position}" if entry.is_array else entry.render_job_id
            what = f"slice {slice_index}"
        job = self._describe([job_id])[job_id]
        stream = (job.get("container") or {}).get("logStreamName") or ""
        if not stream:
            for attempt in reversed(job.get("attempts") or []):
                stream = (attempt.get("container") or {}).get("logStreamName") or ""
                if stream:
                    break
        if not stream:
            return f"(no log yet for {what}: its job {job_id} is {job.get('status', '?')})"
        logs = self.client("logs")
        try:
            with aws_errors(
                "read the log", resource=f"{self.log_group}/{stream}", permission="logs:GetLogEvents", **self._who()
            ):
                events = logs.get_log_events(
                    logGroupName=self.log_group, logStreamName=stream, limit=max(1, lines), startFromHead=False
                ).get("events", [])
        except AwsAccessDeniedError:
            raise
        except AwsBatchRenderError as exc:
            if "ResourceNotFoundException" in str(exc):
                return f"(the log stream {stream} does not exist (yet) in {self.log_group})"
            raise
        text = "\n".join(e.get("message", "").rstrip("\n") for e in events[-lines:])
        return text


def _as_cancelled(counts: Counter, stitch_state: str) -> tuple[Counter, str]:
    """After a user cancel, Batch's FAILED (and not-yet-started) children are CANCELLED."""
    out = Counter(counts)
    moved = out.pop("FAILED", 0) + sum(out.pop(s, 0) for s in PENDING_STATES)
    if moved:
        out["CANCELLED"] += moved
    if stitch_state and stitch_state != "SUCCEEDED":
        stitch_state = "CANCELLED"
    return out, stitch_state


def _job_vcpus(job: dict[str, Any], requested: int | None) -> float:
    """The vCPUs we asked for at submit, else what Batch describes, else 1."""
    if requested:
        return float(requested)
    container = job.get("container") or {}
    for req in container.get("resourceRequirements") or []:
        if req.get("type") == "VCPU":
            try:
                return float(req["value"])
            except (KeyError, ValueError):
                break
    if container.get("vcpus"):
        return float(container["vcpus"])
    return 1.0


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return 0.0


def required_calls(frames: int) -> int:
    """The refresh budget the benchmark checks: 2 + ceil(frames / 1000)."""
    return 2 + math.ceil(frames / 1000)
