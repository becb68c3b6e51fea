"""Mixed child states (RUNNING, FAILED, ...) need moto in this process: the test sets the
states of moto's own job objects, then the backend reads them over real HTTP."""

from __future__ import annotations

import json
import time

import pytest

from addon.core.aws.session import AwsSettings, client
from addon.core.backends.aws_batch.control import NothingToRetryError, RetryTooEarlyError
from addon.core.jobspec import JobSpec
from addon.core.progress import SliceProgress
from addon.core.storage import S3Store
from tests.test_aws_batch_support import (
    BUCKET,
    QUEUE,
    CallCounter,
    clients_of,
    create_batch_env,
    put_frames,
    write_spec,
)

ACCOUNT = "123456789012"
REGION = "us-east-1"


@pytest.fixture
def env(inproc_aws):
    settings = AwsSettings(region=REGION, endpoint_url=inproc_aws)
    client("s3", settings).create_bucket(Bucket=BUCKET)
    return create_batch_env(settings)


def moto_job(job_id: str):
    from moto.batch.models import batch_backends

    return batch_backends[ACCOUNT][REGION]._jobs[job_id]


def set_states(parent_id: str, states: list[str], parent_state: str = "PENDING") -> None:
    """Put the children of an array into ``states`` (child i gets states[i])."""
    now = time.time()
    for i, state in enumerate(states):
        job = moto_job(f"{parent_id}:{i}")
        job.status = state
        job.job_stopped = state in ("SUCCEEDED", "FAILED")
        if state in ("RUNNING", "STARTING", "SUCCEEDED", "FAILED"):
            job.job_started_at = job.job_created_at.fromtimestamp(now - 120)
    moto_job(parent_id).status = parent_state


def submit(env, slices):
    spec, spec_uri = write_spec(env.settings, slices=slices)
    backend = env.backend(vcpus=4)
    return spec, backend, backend.submit(spec, spec_uri)


FIVE = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]


def test_status_with_mixed_child_states_and_call_budget(env):
    spec, backend, record = submit(env, FIVE)
    set_states(record.jobs["render_job_id"], ["SUCCEEDED", "RUNNING", "FAILED", "RUNNABLE", "STARTING"])
    moto_job(record.jobs["stitch_job_id"]).status = "PENDING"
    put_frames(env.settings, spec, [1, 2, 3])
    store = S3Store(env.settings)
    store.put_bytes(
        SliceProgress(index=1, frames_total=2, frames_done=1, seconds_per_frame=30.0).to_json(),
        spec.progress_record_uri(1),
    )

    counter = CallCounter(*clients_of(backend))
    status = backend.status(record)
    assert status.state == "RUNNING"
    assert status.chunk_counts == {"SUCCEEDED": 1, "RUNNING": 1, "FAILED": 1, "RUNNABLE": 1, "STARTING": 1}
    assert status.failed_slices == [2]
    assert status.stitch_state == "PENDING"
    assert status.frames_done == 3 and status.frames_total == 10
    assert status.latest_frame == 3
    # first refresh: describe + frame listing + the failed-children listing
    assert sorted(counter.calls) == ["DescribeJobs", "ListJobs", "ListObjectsV2"]
    assert counter.params["ListJobs"][0]["jobStatus"] == "FAILED"

    counter.reset()
    status = backend.status(record)
    # failed children are cached; the spare call reads the progress record of frame 3's slice
    assert sorted(counter.calls) == ["DescribeJobs", "GetObject", "ListObjectsV2"]
    assert status.seconds_per_frame == pytest.approx(30.0)
    # 7 frames left over 2 active chunks at 30 s a frame
    assert status.eta_seconds == pytest.approx(7 * 30.0 / 2)
    # array children: frames done x seconds per frame x the 4 vCPUs asked for
    assert status.vcpu_hours == pytest.approx(3 * 30.0 * 4 / 3600, abs=1e-4)
    assert status.elapsed_seconds >= 0


def test_all_failed_is_failed(env):
    _spec, backend, record = submit(env, FIVE[:3])
    set_states(record.jobs["render_job_id"], ["SUCCEEDED", "FAILED", "FAILED"], parent_state="FAILED")
    moto_job(record.jobs["stitch_job_id"]).status = "FAILED"
    status = backend.status(record)
    assert status.state == "FAILED"
    assert status.failed_slices == [1, 2]
    assert "retry" in status.message


def test_cancel_terminates_running_children_and_cancels_the_rest(env):
    _spec, backend, record = submit(env, FIVE)
    parent = record.jobs["render_job_id"]
    set_states(parent, ["SUCCEEDED", "RUNNING", "RUNNABLE", "STARTING", "PENDING"])
    moto_job(record.jobs["stitch_job_id"]).status = "PENDING"
    counter = CallCounter(*clients_of(backend))
    backend.cancel(record)

    terminated = {p["jobId"] for p in counter.params["TerminateJob"]}
    assert {f"{parent}:1", f"{parent}:3"} <= terminated  # RUNNING and STARTING children
    assert f"{parent}:0" not in terminated and f"{parent}:2" not in terminated
    assert {p["jobId"] for p in counter.params["CancelJob"]} == {parent, record.jobs["stitch_job_id"]}
    for i in (1, 3):
        assert moto_job(f"{parent}:{i}").job_stopped_reason.startswith("Cancelled by the user")
    assert moto_job(record.jobs["stitch_job_id"]).job_stopped_reason.startswith("Cancelled by the user")

    # Batch then fails what it stopped; the record knows it was the user
    set_states(parent, ["SUCCEEDED", "FAILED", "FAILED", "FAILED", "FAILED"], parent_state="FAILED")
    moto_job(record.jobs["stitch_job_id"]).status = "FAILED"
    status = backend.status(record)
    assert status.state == "CANCELLED"
    assert status.chunk_counts == {"SUCCEEDED": 1, "CANCELLED": 4}


def test_retry_failed_submits_only_the_failed_slices_then_a_full_stitch(env):
    spec, backend, record = submit(env, FIVE)
    first_render, first_stitch = record.jobs["render_job_id"], record.jobs["stitch_job_id"]
    set_states(first_render, ["SUCCEEDED", "SUCCEEDED", "FAILED", "SUCCEEDED", "FAILED"], parent_state="FAILED")
    moto_job(first_stitch).status = "FAILED"
    put_frames(env.settings, spec, FIVE[0] + FIVE[1] + FIVE[3])  # the SUCCEEDED slices' frames (retry checks them)

    counter = CallCounter(*clients_of(backend))
    backend.retry_failed(record)
    render_req, stitch_req = counter.params["SubmitJob"]
    retry_uri = render_req["containerOverrides"]["environment"][0]["value"]
    assert retry_uri.endswith("/spec-retry-1.json") and retry_uri.rsplit("/", 1)[0] == record.spec_uri.rsplit("/", 1)[0]
    retry_spec = JobSpec.from_json(S3Store(env.settings).get_bytes(retry_uri))
    assert retry_spec.slices == [FIVE[2], FIVE[4]]
    assert retry_spec.output == spec.output  # same prefixes: finished frames stay
    assert render_req["arrayProperties"] == {"size": 2}
    assert stitch_req["containerOverrides"]["environment"][0]["value"] == record.spec_uri  # checks every frame
    assert stitch_req["dependsOn"] == [{"jobId": record.jobs["render_job_id"]}]
    assert record.jobs["render_job_id"] != first_render
    assert [h["kind"] for h in record.jobs["history"]] == ["submit", "retry"]
    assert record.jobs["history"][1]["slices"] == [2, 4]

    # the retry array SUCCEEDED at once in moto: the submission is whole again
    put_frames(env.settings, spec, spec.frames)
    status = backend.status(record)
    assert status.chunk_counts == {"SUCCEEDED": 5}
    assert status.failed_slices == []
    assert status.state == "SUCCEEDED"

    # a failure inside the retry maps back to the original slice number
    set_states(record.jobs["render_job_id"], ["SUCCEEDED", "FAILED"], parent_state="FAILED")
    moto_job(record.jobs["stitch_job_id"]).status = "FAILED"
    status = backend.status(record)
    assert status.failed_slices == [4]
    assert status.chunk_counts == {"SUCCEEDED": 4, "FAILED": 1}


def test_retry_refuses_while_running_or_with_nothing_failed(env):
    spec, backend, record = submit(env, FIVE[:2])
    put_frames(env.settings, spec, spec.frames)
    set_states(record.jobs["render_job_id"], ["RUNNING", "FAILED"])
    with pytest.raises(RetryTooEarlyError, match="still pending or running"):
        backend.retry_failed(record)
    set_states(record.jobs["render_job_id"], ["SUCCEEDED", "SUCCEEDED"], parent_state="SUCCEEDED")
    with pytest.raises(NothingToRetryError, match="nothing to retry") as exc:
        backend.retry_failed(record)
    assert exc.value.exit_code == 32


def test_logs_default_to_the_first_failed_slice(env):
    _spec, backend, record = submit(env, FIVE[:3])
    parent = record.jobs["render_job_id"]
    set_states(parent, ["SUCCEEDED", "FAILED", "SUCCEEDED"], parent_state="FAILED")
    stream = moto_job(f"{parent}:1").log_stream_name
    logs = client("logs", env.settings)
    logs.create_log_group(logGroupName="/aws/batch/job")
    logs.create_log_stream(logGroupName="/aws/batch/job", logStreamName=stream)
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName="/aws/batch/job",
        logStreamName=stream,
        logEvents=[{"timestamp": now, "message": "Error: cannot read textures/wood.png"}],
    )
    assert backend.logs(record) == "Error: cannot read textures/wood.png"


def test_access_denied_names_the_missing_permission(env, monkeypatch):
    """moto's IAM enforcement (in this process): a user allowed to read Batch and S3 but
    not to submit."""
    from moto import settings as moto_settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.models import iam_backends

    from addon.core.aws.errors import AwsAccessDeniedError

    iam = iam_backends[ACCOUNT]["global"]
    iam.create_user(region_name=REGION, user_name="artist", path="/", tags=[])
    policy = {
        "Version": "2012-10-17",
        # moto names Batch actions in lower case (real IAM matches case-insensitively)
        "Statement": [{"Effect": "Allow", "Action": ["batch:describe*", "s3:*"], "Resource": "*"}],
    }
    iam.put_user_policy("artist", "read-only-batch", json.dumps(policy))
    key = iam.create_access_key("artist")
    spec, spec_uri = write_spec(env.settings)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key.secret_access_key)
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setattr(ActionAuthenticatorMixin, "request_count", 0)
    backend = env.backend()
    with pytest.raises(AwsAccessDeniedError) as exc:
        backend.submit(spec, spec_uri)
    assert exc.value.permission.lower() == "batch:submitjob"
    assert "access denied" in str(exc.value) and "batch:submitjob" in str(exc.value).lower()
    assert exc.value.exit_code == AwsAccessDeniedError.exit_code


def test_cli_watch_ends_with_failure_exit_and_names_the_fix(env, tmp_path, capsys):
    from addon.cli import main
    from addon.cli.follow import WATCH_NOT_SUCCEEDED
    from addon.core.records import RecordStore

    _spec, _backend, record = submit(env, FIVE[:2])
    set_states(record.jobs["render_job_id"], ["SUCCEEDED", "FAILED"], parent_state="FAILED")
    moto_job(record.jobs["stitch_job_id"]).status = "FAILED"
    RecordStore(tmp_path).save(record)
    code = main(["status", record.submission_id, "--watch", "--interval", "0.05", "--records", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == WATCH_NOT_SUCCEEDED
    assert "| FAILED" in out.splitlines()[0]
    assert f"aws-batch-render retry {record.submission_id}" in out


def test_plain_job_vcpu_hours_from_its_start_time(env):
    from datetime import datetime

    _spec, backend, record = submit(env, [[1, 2, 3]])
    job = moto_job(record.jobs["render_job_id"])
    job.status = "RUNNING"
    job.job_stopped = False
    job.job_started_at = datetime.fromtimestamp(time.time() - 360)
    moto_job(record.jobs["stitch_job_id"]).status = "PENDING"
    status = backend.status(record)
    assert status.state == "RUNNING" and status.chunk_counts == {"RUNNING": 1}
    assert status.vcpu_hours == pytest.approx(4 * 360 / 3600, rel=0.05)  # 4 vCPUs for 6 minutes


def test_retry_of_one_slice_is_a_plain_job(env):
    _spec, backend, record = submit(env, FIVE[:3])
    set_states(record.jobs["render_job_id"], ["SUCCEEDED", "FAILED", "SUCCEEDED"], parent_state="FAILED")
    moto_job(record.jobs["stitch_job_id"]).status = "FAILED"
    put_frames(env.settings, _spec, FIVE[0] + FIVE[2])  # the SUCCEEDED slices' frames (retry checks them)
    counter = CallCounter(*clients_of(backend))
    backend.retry_failed(record)
    render_req = counter.params["SubmitJob"][0]
    assert "arrayProperties" not in render_req  # Batch arrays start at 2 children
    assert render_req["jobName"].endswith("-render-r1")
    assert record.jobs["history"][-1] == {**record.jobs["history"][-1], "slices": [1], "is_array": False}
    status = backend.status(record)  # the plain retry SUCCEEDED at once in moto
    assert status.chunk_counts == {"SUCCEEDED": 3} and status.failed_slices == []


def test_a_failed_stitch_alone_is_retried_without_rendering_and_its_log_is_shown(env):
    _spec, backend, record = submit(env, FIVE[:2])
    put_frames(env.settings, _spec, _spec.frames)  # every frame done: only the stitch is retried
    parent, old_stitch = record.jobs["render_job_id"], record.jobs["stitch_job_id"]
    set_states(parent, ["SUCCEEDED", "SUCCEEDED"], parent_state="SUCCEEDED")
    moto_job(old_stitch).status = "FAILED"
    stream = moto_job(old_stitch).log_stream_name
    logs = client("logs", env.settings)
    logs.create_log_group(logGroupName="/aws/batch/job")
    logs.create_log_stream(logGroupName="/aws/batch/job", logStreamName=stream)
    logs.put_log_events(logGroupName="/aws/batch/job", logStreamName=stream,
                        logEvents=[{"timestamp": int(time.time() * 1000), "message": "ffmpeg: out of disk"}])
    assert backend.logs(record) == "ffmpeg: out of disk"  # no failed chunk: the stitch's log
    assert backend.logs(record, slice_index=-1) == "ffmpeg: out of disk"
    batch = client("batch", env.settings)

    def render_jobs() -> int:
        listed = batch.list_jobs(jobQueue=QUEUE, jobStatus="SUCCEEDED")["jobSummaryList"]
        return sum(1 for j in listed if "render" in j["jobName"])

    renders_before = render_jobs()

    record = backend.retry_failed(record)
    new_stitch = record.jobs["stitch_job_id"]
    assert new_stitch != old_stitch and record.jobs["render_job_id"] == parent
    assert record.jobs["history"][-1]["kind"] == "restitch"
    job = batch.describe_jobs(jobs=[new_stitch])["jobs"][0]
    assert not job.get("dependsOn")  # every frame exists: nothing to wait for
    env_vars = {e["name"]: e["value"] for e in job["container"]["environment"]}
    assert env_vars["JOB_SPEC_URI"] == record.spec_uri  # the original spec: every frame checked
    assert render_jobs() == renders_before, "no render job was submitted again"
    assert backend.status(record).state == "SUCCEEDED"
