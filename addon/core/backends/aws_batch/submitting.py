"""Submitting: check the queue and job definitions, then submit the render job (an array,
or a plain job for one slice) and the stitch job that waits for it.
"""

from __future__ import annotations

import logging
from typing import Any

from ...aws.errors import JobDefinitionError, JobQueueError, aws_errors
from ...errors import AwsBatchRenderError
from ...jobspec import JobSpec, utc_now_iso
from ...storage import parse_uri
from ..base import SubmissionRecord
from .job_requests import render_job_request, stitch_job_request
from .jobs import BACKEND_NAME, BatchJobs, RenderJob

log = logging.getLogger(__name__)


class Submitter(BatchJobs):
    """Starts a submission's jobs on AWS Batch."""

    def submit(self, spec: JobSpec, spec_uri: str, source_blend: str = "") -> SubmissionRecord:
        queue, gpus = self._queue_for(spec)
        if self.preflight:
            self.check_resources(queue)
        self._specs[spec_uri] = spec
        render_id, stitch_id = self._submit_pair(spec, spec_uri, spec_uri, len(spec.slices), queue, gpus, "")
        entry = RenderJob(render_id, list(range(len(spec.slices))), len(spec.slices) > 1, spec_uri)
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
        if spec.output.video is None and spec.still_split is None:  # a split still is merged in its place
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
    def _history_item(kind: str, entry: RenderJob, stitch_id: str) -> dict[str, Any]:
        return {
            "kind": kind,
            "render_job_id": entry.render_job_id,
            "stitch_job_id": stitch_id,
            "slices": entry.slices,
            "is_array": entry.is_array,
            "spec_uri": entry.spec_uri,
            "at": utc_now_iso(),
        }
