"""The AWS Batch backend against a real moto server over HTTP (jobs SUCCEED at once)."""

from __future__ import annotations

import json
import re
import time

import pytest

from addon.core import exitcodes
from addon.core.aws.errors import JobDefinitionError, JobQueueError
from addon.core.aws.session import client
from addon.core.backends.aws_batch.backend import AwsBatchBackend
from addon.core.backends.aws_batch.following import seconds_per_frame_records
from addon.core.backends.aws_batch.job_requests import (
    TAG_BLEND,
    TAG_SUBMISSION,
    render_job_request,
    retry_strategy,
    sanitize_job_name,
    sanitize_tag_value,
)
from addon.core.backends.aws_batch.jobs import child_counts
from addon.core.backends.base import SubmissionRecord
from addon.core.backends.factory import backend_for_record
from addon.core.errors import AwsBatchRenderError
from addon.core.jobspec import JobSpec
from addon.core.storage import S3Store
from tests.helpers import make_spec
from tests.test_aws_batch_support import (
    QUEUE,
    RENDER_DEF,
    STITCH_DEF,
    CallCounter,
    clients_of,
    create_batch_env,
    put_frames,
    write_spec,
)

NAME_OK = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


@pytest.fixture
def env(aws_settings, s3_bucket):
    return create_batch_env(aws_settings)


# --- pure builders -------------------------------------------------------------------


def test_job_names_are_sanitized_to_batch_rules():
    assert sanitize_job_name("my scene (final).blend") == "my-scene-final-blend"
    assert sanitize_job_name("ü" * 300) == "render"
    long = sanitize_job_name("a" * 500)
    assert len(long) == 128 and NAME_OK.match(long)
    spec = make_spec(source_name="Ünïcode shot 010 — v2.blend", submission_id="shot-010-20260101-000000-abcdef")
    request = render_job_request(spec, "s3://b/s.json", job_queue="q", job_definition="d")
    assert NAME_OK.match(request["jobName"])
    assert request["jobName"].endswith("shot-010-20260101-000000-abcdef-render")


def test_tag_values_are_sanitized():
    assert sanitize_tag_value("a/b:c=d+e@f.g h_i-j") == "a/b:c=d+e@f.g h_i-j"
    assert sanitize_tag_value("scene<1>|*?.blend") == "scene_1_.blend"
    assert len(sanitize_tag_value("x" * 400)) == 256


def test_retry_strategy_retries_spot_and_retryable_exit_then_stops():
    rs = retry_strategy(4)
    assert rs["attempts"] == 4
    rules = rs["evaluateOnExit"]
    assert {"onStatusReason": "Host EC2*", "action": "RETRY"} in rules
    assert {"onExitCode": str(exitcodes.RETRYABLE), "action": "RETRY"} in rules
    assert rules[-1] == {"onReason": "*", "action": "EXIT"}  # catch-all last, or Batch retries
    assert len(rules) <= 5
    with pytest.raises(AwsBatchRenderError, match="between 1 and 10"):
        retry_strategy(11)


def test_child_counts_for_arrays_plain_jobs_and_fresh_arrays():
    assert child_counts({"status": "RUNNING"}) == {"RUNNING": 1}
    job = {"status": "PENDING", "arrayProperties": {"size": 4, "statusSummary": {"RUNNING": 1, "FAILED": 1}}}
    assert child_counts(job) == {"RUNNING": 1, "FAILED": 1, "PENDING": 2}
    fresh = {"status": "SUBMITTED", "arrayProperties": {"size": 3, "statusSummary": {}}}
    assert child_counts(fresh) == {"SUBMITTED": 3}
    # A parent that failed before its children existed must not look SUBMITTED forever.
    dead = {"status": "FAILED", "arrayProperties": {"size": 5, "statusSummary": {}}}
    assert child_counts(dead) == {"FAILED": 5}


def test_seconds_per_frame_from_upload_times():
    slices = [[1, 2, 3], [4, 5, 6]]
    f2s = {f: i for i, s in enumerate(slices) for f in s}
    records = seconds_per_frame_records(slices, {1: 100.0, 2: 110.0, 3: 120.0, 4: 105.0}, f2s)
    assert records[1].seconds_per_frame is None  # one frame of slice 1 gives no interval...
    assert (records[1].frames_done, records[1].updated_at) == (1, 105.0)  # ...but a time to count from
    assert records[0].seconds_per_frame == pytest.approx(10.0)
    assert (records[0].frames_done, records[0].state, records[0].updated_at) == (3, "SUCCEEDED", 120.0)


# --- submit round trip -----------------------------------------------------------------


def test_submit_round_trip(env, aws_settings):
    spec, spec_uri = write_spec(aws_settings, source_name="my shot.blend")
    backend = env.backend(vcpus=4, memory_mib=8192, timeout_seconds=900, attempts=5)
    counter = CallCounter(*clients_of(backend))
    record = backend.submit(spec, spec_uri, source_blend="/projects/my shot.blend")

    assert record.backend == "aws"
    assert record.slice_count == 3 and record.frames_total == 8
    render_id, stitch_id = record.jobs["render_job_id"], record.jobs["stitch_job_id"]
    assert render_id and stitch_id and render_id != stitch_id
    assert record.jobs["history"][0]["slices"] == [0, 1, 2]
    assert record.settings["bucket"] == "abr-test" and record.settings["job_queue"] == QUEUE
    assert "testing" not in record.to_json()  # no credentials in the record

    submits = counter.params["SubmitJob"]
    assert len(submits) == 2
    render, stitch = submits
    assert render["arrayProperties"] == {"size": 3}
    assert render["retryStrategy"] == retry_strategy(5)
    assert render["timeout"] == {"attemptDurationSeconds": 900}
    assert render["propagateTags"] is True
    assert render["tags"] == {TAG_SUBMISSION: spec.submission_id, TAG_BLEND: "my shot.blend"}
    assert render["containerOverrides"]["environment"] == [
        {"name": "JOB_SPEC_URI", "value": spec_uri},
        {"name": "RENDER_THREADS", "value": "4"},  # the vCPU override, since a reservation is no cap
    ]
    assert {"type": "VCPU", "value": "4"} in render["containerOverrides"]["resourceRequirements"]
    assert {"type": "MEMORY", "value": "8192"} in render["containerOverrides"]["resourceRequirements"]
    assert render["jobDefinition"] == RENDER_DEF and NAME_OK.match(render["jobName"])
    assert stitch["dependsOn"] == [{"jobId": render_id}]
    assert stitch["jobDefinition"] == STITCH_DEF
    assert "arrayProperties" not in stitch
    assert "timeout" not in stitch  # the stitch job definition's own limit, never a chunk's
    assert stitch["retryStrategy"] == retry_strategy(5)

    # what Batch itself recorded
    jobs = {j["jobId"]: j for j in client("batch", aws_settings).describe_jobs(jobs=[render_id, stitch_id])["jobs"]}
    assert jobs[render_id]["arrayProperties"]["size"] == 3
    env_vars = {e["name"]: e["value"] for e in jobs[render_id]["container"]["environment"]}
    assert env_vars["JOB_SPEC_URI"] == spec_uri
    assert jobs[render_id]["tags"][TAG_SUBMISSION] == spec.submission_id
    assert jobs[stitch_id]["dependsOn"] == [{"jobId": render_id}]


def test_one_slice_is_a_plain_job_and_no_video_means_no_stitch(env, aws_settings):
    spec, spec_uri = write_spec(aws_settings, slices=[[1, 2, 3]])
    spec.output.video = None
    backend = env.backend()
    counter = CallCounter(*clients_of(backend))
    record = backend.submit(spec, spec_uri)
    assert len(counter.params["SubmitJob"]) == 1
    assert "arrayProperties" not in counter.params["SubmitJob"][0]
    assert record.jobs["stitch_job_id"] == ""
    status = backend.status(record)
    assert status.chunk_counts == {"SUCCEEDED": 1}
    assert status.stitch_state == ""


def test_preflight_names_disabled_and_missing_queue_and_definition(env, aws_settings):
    spec, spec_uri = write_spec(aws_settings)
    batch = client("batch", aws_settings)
    with pytest.raises(JobQueueError, match="does not exist") as exc:
        AwsBatchBackend(aws_settings, "no-such-queue", RENDER_DEF, STITCH_DEF).submit(spec, spec_uri)
    assert exc.value.exit_code == JobQueueError.exit_code
    with pytest.raises(JobDefinitionError, match="'no-such-def' does not exist"):
        AwsBatchBackend(aws_settings, QUEUE, "no-such-def", STITCH_DEF).submit(spec, spec_uri)
    batch.update_job_queue(jobQueue=QUEUE, state="DISABLED")
    with pytest.raises(JobQueueError, match=r"is DISABLED.*Enable it"):
        env.backend().submit(spec, spec_uri)
    assert batch.list_jobs(jobQueue=QUEUE, jobStatus="SUCCEEDED")["jobSummaryList"] == []  # nothing submitted


# --- follow ------------------------------------------------------------------------------


def test_status_of_a_finished_submission_and_call_budget(env, aws_settings):
    spec, spec_uri = write_spec(aws_settings)
    backend = env.backend()
    record = backend.submit(spec, spec_uri)
    put_frames(aws_settings, spec, spec.frames)
    S3Store(aws_settings).put_bytes(b"mp4", spec.video_file_uri())

    later = backend_for_record(SubmissionRecord.from_json(record.to_json()))  # a new session
    counter = CallCounter(*clients_of(later))
    status = later.status(record)
    assert status.state == "SUCCEEDED"
    assert status.frames_total == 8 and status.frames_done == 8
    assert status.chunk_counts == {"SUCCEEDED": 3}
    assert status.stitch_state == "SUCCEEDED"
    assert status.video_uri == spec.video_file_uri()
    assert status.latest_frame in spec.frames
    assert status.latest_frame_uri == spec.frame_uri(status.latest_frame)
    assert status.eta_seconds == 0.0
    assert counter.calls.count("GetObject") == 1  # the spec, read once
    counter.reset()
    later.status(record)
    assert counter.calls == ["DescribeJobs"]  # every job had ended at the first listing: nothing can change


def test_status_counts_partial_frames(env, aws_settings):
    spec, spec_uri = write_spec(aws_settings)
    record = env.backend().submit(spec, spec_uri)
    put_frames(aws_settings, spec, [1, 2, 7])
    S3Store(aws_settings).put_bytes(b"x", spec.output.frames_uri + "notes.txt")  # not a frame
    status = env.backend().status(record)
    assert status.frames_done == 3


def test_logs_tail_of_a_slice(env, aws_settings):
    spec, spec_uri = write_spec(aws_settings)
    backend = env.backend()
    record = backend.submit(spec, spec_uri)
    child = f"{record.jobs['render_job_id']}:1"
    stream = client("batch", aws_settings).describe_jobs(jobs=[child])["jobs"][0]["container"]["logStreamName"]
    logs = client("logs", aws_settings)
    logs.create_log_group(logGroupName="/aws/batch/job")
    logs.create_log_stream(logGroupName="/aws/batch/job", logStreamName=stream)
    logs.put_log_events(
        logGroupName="/aws/batch/job",
        logStreamName=stream,
        logEvents=[{"timestamp": int(time.time() * 1000) - 1000 + i, "message": f"line {i}"} for i in range(10)],
    )
    text = backend.logs(record, slice_index=1, lines=3)
    assert text.splitlines() == ["line 7", "line 8", "line 9"]
    assert "does not exist" in backend.logs(record, slice_index=2)  # no stream for that child
    with pytest.raises(AwsBatchRenderError, match="Slice 7 does not exist"):
        backend.logs(record, slice_index=7)


def test_cancel_marks_the_record_and_stops_the_jobs(env, aws_settings):
    spec, spec_uri = write_spec(aws_settings)
    backend = env.backend()
    record = backend.submit(spec, spec_uri)
    counter = CallCounter(*clients_of(backend))
    backend.cancel(record)
    assert record.jobs["cancelled"]
    cancelled = {p["jobId"] for p in counter.params["CancelJob"]}
    assert cancelled == {record.jobs["render_job_id"], record.jobs["stitch_job_id"]}
    assert {p["jobStatus"] for p in counter.params["ListJobs"]} == {"STARTING", "RUNNING"}


def test_spec_is_cached_and_validated(env, aws_settings):
    spec, spec_uri = write_spec(aws_settings)
    record = env.backend().submit(spec, spec_uri)
    fresh = env.backend()
    assert isinstance(fresh.spec_for(record), JobSpec)
    assert fresh.spec_for(record) is fresh.spec_for(record)
    S3Store(aws_settings).put_bytes(json.dumps({"schema_version": 99}).encode(), spec_uri)
    with pytest.raises(AwsBatchRenderError, match="newer than this worker"):
        env.backend().status(record)


def test_gpu_specs_render_on_the_gpu_queue_and_stitch_on_the_cpu_queue(env, aws_settings):
    from addon.core.aws.session import client as aws_client

    batch = aws_client("batch", aws_settings)
    ce = batch.describe_compute_environments()["computeEnvironments"][0]["computeEnvironmentArn"]
    batch.create_job_queue(
        jobQueueName="abr-gpu",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )
    spec, spec_uri = write_spec(aws_settings)
    spec.render.device = "GPU"
    backend = env.backend(gpu_job_queue="abr-gpu")
    counter = CallCounter(*clients_of(backend))
    record = backend.submit(spec, spec_uri)
    render, stitch = counter.params["SubmitJob"]
    assert render["jobQueue"] == "abr-gpu" and stitch["jobQueue"] == QUEUE
    assert {"type": "GPU", "value": "1"} in render["containerOverrides"]["resourceRequirements"]
    assert "resourceRequirements" not in stitch["containerOverrides"]
    assert record.jobs["job_queue"] == "abr-gpu" and record.settings["gpu_job_queue"] == "abr-gpu"


def test_a_failed_stitch_submit_stops_the_render_job(env, aws_settings):
    spec, spec_uri = write_spec(aws_settings)
    backend = AwsBatchBackend(aws_settings, QUEUE, RENDER_DEF, "no-such-stitch", preflight=False)
    counter = CallCounter(*clients_of(backend))
    with pytest.raises(JobDefinitionError):
        backend.submit(spec, spec_uri)
    (render_id,) = {p["jobId"] for p in counter.params["TerminateJob"]}
    assert counter.params["CancelJob"][0]["jobId"] == render_id
    assert counter.params["SubmitJob"][0]["jobDefinition"] == RENDER_DEF


def test_unasked_limits_leave_the_job_definitions_in_charge():
    """A timeout or retry strategy given at submit replaces the job definition's: send none
    unless asked, so the stack's 4-hour timeout and its attempts apply."""
    from addon.core.aws.session import AwsSettings
    from addon.core.backends.aws_batch.job_requests import stitch_job_request

    spec = make_spec("s3://bucket/")
    render = render_job_request(spec, "s3://bucket/spec.json", job_queue="q", job_definition="r")
    stitch = stitch_job_request(spec, "s3://bucket/spec.json", "id-1", job_queue="q", job_definition="s")
    for request in (render, stitch):
        assert "timeout" not in request and "retryStrategy" not in request
    assert render["containerOverrides"]["environment"] == [{"name": "JOB_SPEC_URI", "value": "s3://bucket/spec.json"}]
    with pytest.raises(AwsBatchRenderError, match="between 1 and 10"):
        AwsBatchBackend(AwsSettings(), "q", "r", "s", attempts=11)
