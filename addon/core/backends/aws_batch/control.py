"""Controlling a submission on AWS Batch: cancel it, retry its failed slices (or only the
stitch, when every chunk succeeded), and read a slice's or the stitch's log.
"""

from __future__ import annotations

import dataclasses
import logging

from ...aws.errors import AwsAccessDeniedError, aws_errors
from ...errors import AwsBatchRenderError
from ...jobspec import JobSpec, utc_now_iso
from ...progress import frames_done_from_listing
from ...still_split import slices_without_part
from ...storage import join_uri
from ..base import RetryTooEarlyError, SubmissionRecord
from ..status import ACTIVE_STATES, PENDING_STATES
from .job_requests import stitch_job_request
from .jobs import RenderJob
from .submitting import Submitter

log = logging.getLogger(__name__)


class NothingToRetryError(AwsBatchRenderError):
    """retry was asked for a submission with no failed slice."""

    exit_code = 32


class Controller(Submitter):
    """Cancel, retry (which submits again, hence a :class:`Submitter`) and logs."""

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
        # SUCCEEDED slices are checked again: a frame that is not done (missing, empty, a stub:
        # addon.core.framecheck) puts its slice back in the retry, whose worker resumes and renders it.
        incomplete = self._slices_with_frames_not_done(spec) - set(failed)
        if not failed and not incomplete:
            return self._restitch(record, spec, n)
        if incomplete:
            log.info("re-rendering slice(s) %s of %s: frames not done", sorted(incomplete), record.submission_id)
        slices = sorted(set(failed) | incomplete)
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
        entry = RenderJob(render_id, slices, len(slices) > 1, retry_uri)
        record.jobs["render_job_id"] = render_id
        record.jobs["stitch_job_id"] = stitch_id
        record.jobs.pop("cancelled", None)
        record.jobs.setdefault("history", []).append(self._history_item("retry", entry, stitch_id))
        self._failed_cache.clear()
        log.info("retrying %d slice(s) of %s as %s", len(slices), record.submission_id, render_id)
        return record

    def _slices_with_frames_not_done(self, spec: JobSpec) -> set[int]:
        if spec.still_split:  # a part's slice is done when its part EXR is in the store
            return slices_without_part(spec, range(len(spec.slices)), self._store().exists)
        listing = ((o.uri, o.size) for o in self._store().list(spec.output.frames_uri))
        done, _, _ = frames_done_from_listing(listing, spec.frames, spec.output.image_format)
        return {i for i, frames in enumerate(spec.slices) if any(f not in done for f in frames)}

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
