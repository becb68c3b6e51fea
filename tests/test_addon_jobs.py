"""Operators on submissions (cancel, retry failed, show log, download) and the
preferences' Connect and Test Connection, through bpy.ops on the installed extension,
against the moto server. Every one runs its network work in a thread."""

from __future__ import annotations

import time

import pytest
from test_addon_support import (
    configure_prefs,
    create_batch_resources,
    drain,
    ensure_installed,
    mod,
    prefs,
    reset_addon_state,
    runtime,
    set_online,
    submit_direct,
)

bpy = pytest.importorskip("bpy")


@pytest.fixture
def batch(aws, aws_settings, s3_bucket, tiny_scene):
    ensure_installed()
    reset_addon_state()
    set_online(True)
    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    resources = create_batch_resources(aws_settings)
    configure_prefs(aws.endpoint, s3_bucket, resources)
    yield resources
    reset_addon_state()
    set_online(False)


def _load_rows():
    st = mod("blender.status_timer")
    st.reload_rows(runtime())
    return runtime()


def _stored(submission_id):
    return mod("core.records").RecordStore(mod("blender.config").records_dir()).load(submission_id)


def test_cancel_records_the_cancel_and_polls_again(batch, aws_settings, s3_bucket, tiny_scene):
    submit_direct(aws_settings, s3_bucket, batch, str(tiny_scene), "sub-cancel")
    rt = _load_rows()
    assert bpy.ops.awsbatch.cancel_job(submission_id="sub-cancel") == {"FINISHED"}
    assert mod("blender.job_rows").find(rt, "sub-cancel").busy == "cancel"
    drain(timeout=60)
    row = mod("blender.job_rows").find(rt, "sub-cancel")
    assert row.error == "" and row.busy == ""
    assert "cancelled" in _stored("sub-cancel").jobs
    assert "Cancelled sub-cancel" in rt.last_report


ACCOUNT, REGION = "123456789012", "us-east-1"


@pytest.fixture
def inproc_batch(inproc_aws, tiny_scene):
    from addon.core.aws.session import AwsSettings, client

    settings = AwsSettings(region=REGION, endpoint_url=inproc_aws)
    client("s3", settings).create_bucket(Bucket="abr-test")
    ensure_installed()
    reset_addon_state()
    set_online(True)
    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    resources = create_batch_resources(settings)
    configure_prefs(inproc_aws, "abr-test", resources)
    yield settings, resources
    reset_addon_state()
    set_online(False)


def _set_states(parent_id: str, states: list[str], parent_state: str) -> None:
    from moto.batch.models import batch_backends

    jobs = batch_backends[ACCOUNT][REGION]._jobs
    for i, state in enumerate(states):
        jobs[f"{parent_id}:{i}"].status = state
        jobs[f"{parent_id}:{i}"].job_stopped = state in ("SUCCEEDED", "FAILED")
    jobs[parent_id].status = parent_state


def test_mixed_states_then_retry_failed(inproc_batch, tiny_scene):
    from moto.batch.models import batch_backends

    settings, resources = inproc_batch
    spec, record = submit_direct(settings, "abr-test", resources, str(tiny_scene), "sub-retry")
    render_id, stitch_id = record.jobs["render_job_id"], record.jobs["stitch_job_id"]
    rows = mod("blender.job_rows")
    rt = _load_rows()
    # the helper spec has three slices: one done, one running, one failed
    _set_states(render_id, ["SUCCEEDED", "RUNNING", "FAILED"], "RUNNING")
    batch_backends[ACCOUNT][REGION]._jobs[stitch_id].status = "PENDING"
    bpy.ops.awsbatch.refresh()
    drain(timeout=60, until=lambda: rows.find(rt, "sub-retry").state == "RUNNING")
    drain(timeout=60, until=lambda: not mod("blender.background").busy("poll"))
    row = rows.find(rt, "sub-retry")
    assert row.counts == "Chunks: 1 run · 1 done · 1 failed", row.counts
    assert not row.finished
    # the running chunk fails too: the submission is FAILED and the panel offers a retry
    _set_states(render_id, ["SUCCEEDED", "FAILED", "FAILED"], "FAILED")
    batch_backends[ACCOUNT][REGION]._jobs[stitch_id].status = "FAILED"
    bpy.ops.awsbatch.refresh()
    drain(timeout=60, until=lambda: rows.find(rt, "sub-retry").state == "FAILED")
    drain(timeout=60, until=lambda: not mod("blender.background").busy("poll"))
    row = rows.find(rt, "sub-retry")
    assert row.finished and row.failed_slices == "1, 2" and row.first_failed_slice == 1

    from tests.test_aws_batch_support import put_frames

    put_frames(settings, spec, spec.slices[0])  # the SUCCEEDED chunk's frames: retry checks them
    assert bpy.ops.awsbatch.retry_failed(submission_id="sub-retry") == {"FINISHED"}
    drain(timeout=60, until=lambda: "Retrying" in rt.last_report or row.error)
    assert row.error == ""
    stored = _stored("sub-retry")
    assert stored.jobs["render_job_id"] != render_id
    assert [h["kind"] for h in stored.jobs["history"]] == ["submit", "retry"]
    assert stored.jobs["history"][1]["slices"] == [1, 2]
    assert not row.finished  # followed again


def test_show_log_writes_a_text_block(batch, aws_settings, s3_bucket, tiny_scene):
    from addon.core.aws.session import client

    _spec, record = submit_direct(aws_settings, s3_bucket, batch, str(tiny_scene), "sub-log")
    child = f"{record.jobs['render_job_id']}:1"
    stream = client("batch", aws_settings).describe_jobs(jobs=[child])["jobs"][0]["container"]["logStreamName"]
    logs = client("logs", aws_settings)
    logs.create_log_group(logGroupName="/aws/batch/job")
    logs.create_log_stream(logGroupName="/aws/batch/job", logStreamName=stream)
    logs.put_log_events(
        logGroupName="/aws/batch/job",
        logStreamName=stream,
        logEvents=[{"timestamp": int(time.time() * 1000) + i, "message": f"Fra:{i} rendered"} for i in (4, 5)],
    )
    _load_rows()
    assert bpy.ops.awsbatch.show_log(submission_id="sub-log", slice_index=1) == {"FINISHED"}
    drain(timeout=60)
    text = bpy.data.texts.get("AWS Batch sub-log slice 1")
    assert text is not None, runtime().last_report
    assert text.as_string().splitlines() == ["Fra:4 rendered", "Fra:5 rendered"]
    assert "sub-log slice 1" in runtime().last_report


def test_download_video_and_frames(batch, aws_settings, s3_bucket, tiny_scene, tmp_path):
    from addon.core.storage import S3Store

    spec, _record = submit_direct(aws_settings, s3_bucket, batch, str(tiny_scene), "sub-dl")
    store = S3Store(aws_settings)
    for frame in (1, 2, 3):
        store.put_bytes(f"png {frame}".encode(), spec.frame_uri(frame))
    store.put_bytes(b"mp4 bytes", spec.video_file_uri())
    rt = _load_rows()

    assert bpy.ops.awsbatch.download(submission_id="sub-dl", what="VIDEO", directory=str(tmp_path)) == {
        "FINISHED"
    }
    drain(timeout=60)
    row = mod("blender.job_rows").find(rt, "sub-dl")
    assert row.error == "", row.error
    assert (tmp_path / "video.mp4").read_bytes() == b"mp4 bytes"
    assert row.downloaded == str(tmp_path / "video.mp4")

    assert bpy.ops.awsbatch.download(submission_id="sub-dl", what="FRAMES", directory=str(tmp_path)) == {
        "FINISHED"
    }
    drain(timeout=60)
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [
        "frame_000001.png", "frame_000002.png", "frame_000003.png"
    ]
    assert (tmp_path / "frames" / "frame_000002.png").read_bytes() == b"png 2"
    assert "Downloaded 3 file(s)" in rt.last_report


def test_default_download_folder_follows_the_scene_output(batch, tiny_scene):
    folder = mod("blender.ops_jobs").default_download_folder(bpy.context.scene, "sub-x")
    # the generated scene renders to //render/demo_
    assert folder == str(tiny_scene.parent / "render" / "sub-x")


def test_job_operators_refuse_when_offline(batch, aws_settings, s3_bucket, tiny_scene):
    submit_direct(aws_settings, s3_bucket, batch, str(tiny_scene), "sub-off")
    _load_rows()
    set_online(False)
    with pytest.raises(RuntimeError, match="Online access is off"):
        bpy.ops.awsbatch.cancel_job(submission_id="sub-off")
    assert not mod("blender.background").busy()
    assert "cancelled" not in _stored("sub-off").jobs


def test_test_connection_reports_each_resource(batch, aws_settings, s3_bucket):
    assert bpy.ops.awsbatch.test_connection() == {"FINISHED"}
    drain(timeout=60)
    p = prefs()
    assert p.connection_ok, p.connection_report
    report = p.connection_report
    assert "✓ Credentials" in report and f"✓ Bucket s3://{s3_bucket}" in report
    assert "✓ Job queue abr-addon-queue is enabled" in report
    assert "✓ Render job definition abr-addon-render:1" in report
    # a wrong bucket is named, with the fix
    p.bucket = "abr-no-such-bucket"
    bpy.ops.awsbatch.test_connection()
    drain(timeout=60)
    assert not p.connection_ok
    assert "abr-no-such-bucket" in p.connection_report and "✗" in p.connection_report


def test_connect_fills_preferences_from_the_stack(batch, aws_settings):
    from addon.core.aws.session import client

    outputs = {
        "BucketName": "abr-stack-bucket",
        "JobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/q",
        "RenderJobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/r:1",
        "StitchJobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/s:1",
        "RepositoryUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/abr-worker",
        "LogGroupName": "/aws/batch/abr",
        "Region": "us-east-1",
    }
    import json

    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }
    client("cloudformation", aws_settings).create_stack(StackName="abr-addon", TemplateBody=json.dumps(template))
    p = prefs()
    p.stack_name = "abr-addon"
    p.bucket = p.job_queue = ""
    assert bpy.ops.awsbatch.connect_stack() == {"FINISHED"}
    drain(timeout=60)
    assert p.connection_ok, p.connection_report
    assert p.bucket == "abr-stack-bucket"
    assert p.job_queue == outputs["JobQueue"]
    assert p.repository_uri == outputs["RepositoryUri"]
    assert p.log_group == "/aws/batch/abr"
    # a stack that is not there: the report says how to fix it
    p.stack_name = "abr-missing"
    bpy.ops.awsbatch.connect_stack()
    drain(timeout=60)
    assert not p.connection_ok
    assert "No stack named 'abr-missing'" in p.connection_report
