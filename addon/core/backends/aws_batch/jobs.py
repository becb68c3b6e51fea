"""What every part of the AWS Batch backend shares: its settings and clients, and reading
a submission record back into the Batch jobs it made (the first array and any retry
arrays), their descriptions and their failed children.

A backend instance is used from one thread at a time (the add-on's poll thread or the
CLI); it never touches bpy. boto3 is imported lazily through :mod:`...aws.session`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from typing import Any

from ...aws.errors import BatchJobNotFoundError, aws_errors
from ...aws.session import AwsSettings, client
from ...errors import AwsBatchRenderError
from ...jobspec import JobSpec
from ...progress import SliceProgress
from ...storage import S3Store, parse_uri
from ..base import SubmissionRecord
from ..status import PENDING_STATES
from .job_requests import retry_strategy

log = logging.getLogger(__name__)

BACKEND_NAME = "aws"
#: Batch allows at most 100 ids per DescribeJobs call
DESCRIBE_LIMIT = 100


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


@dataclasses.dataclass
class RenderJob:
    """One render job of a submission: the first array, or a retry of some slices."""

    render_job_id: str
    slices: list[int]  # global slice index of each child, in child order
    is_array: bool
    spec_uri: str


class BatchJobs:
    """The backend's state and its reading of records; the submit, follow and control
    parts build on it (see :class:`.backend.AwsBatchBackend`)."""

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
        self._frame_listings: dict[tuple[str, str], Any] = {}  # following.FrameListing

    # --- clients -----------------------------------------------------------------
    def client(self, service: str) -> Any:
        if service not in self._clients:
            with aws_errors(f"connect to AWS {service}", **self._who()):
                self._clients[service] = client(service, self.settings)
        return self._clients[service]

    def _who(self) -> dict[str, str]:
        return {"profile": self.settings.profile, "region": self.settings.region}

    def _stop_job(self, job_id: str, why: str) -> None:
        try:
            batch = self.client("batch")
            batch.cancel_job(jobId=job_id, reason=why)
            batch.terminate_job(jobId=job_id, reason=why)
        except Exception:  # best effort while already failing
            log.warning("could not stop job %s after an error", job_id, exc_info=True)

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
    def _entries(record: SubmissionRecord) -> list[RenderJob]:
        history = record.jobs.get("history") or []
        entries = [
            RenderJob(h["render_job_id"], list(h["slices"]), bool(h.get("is_array")), h.get("spec_uri", ""))
            for h in history
            if "render_job_id" in h  # a re-stitch rendered nothing
        ]
        if not entries:  # a record written without history: one job for every slice
            entries = [
                RenderJob(
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

    def _failed_children(self, entry: RenderJob, job: dict[str, Any], failed_count: int) -> tuple[set[int], bool]:
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
