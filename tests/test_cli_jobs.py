"""The job commands of the CLI, called in-process through ``addon.cli.main`` against the
moto server (and, for ``submit``, the real pipeline: child Blender, BAT packing, upload)."""

from __future__ import annotations

import io
import json

import pytest

from addon.cli import main
from addon.cli.follow import format_status, progress_line
from addon.core.aws.errors import JobQueueError
from addon.core.aws.session import client
from addon.core.backends.aws_batch.control import NothingToRetryError
from addon.core.backends.status import JobStatus
from addon.core.jobspec import JobSpec
from addon.core.records import RecordNotFoundError, RecordStore
from addon.core.storage import S3Store
from tests.test_aws_batch_support import BUCKET, QUEUE, RENDER_DEF, STITCH_DEF, create_batch_env, put_frames, write_spec


@pytest.fixture
def env(aws_settings, s3_bucket):
    return create_batch_env(aws_settings)


@pytest.fixture
def records(tmp_path):
    return tmp_path / "records"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def submitted(env, aws_settings, records, **overrides):
    """A submission made through the backend (no Blender), recorded where the CLI looks."""
    spec, spec_uri = write_spec(aws_settings, **overrides)
    record = env.backend().submit(spec, spec_uri, source_blend="/projects/shot.blend")
    RecordStore(records).save(record)
    return spec, record


# --- pure formatting ------------------------------------------------------------------------


def test_progress_line_and_status_text():
    status = JobStatus(
        submission_id="shot-1",
        backend="aws",
        state="RUNNING",
        frames_total=240,
        frames_done=60,
        chunk_counts={"RUNNING": 3, "RUNNABLE": 9, "SUCCEEDED": 11, "FAILED": 1},
        failed_slices=[4],
        eta_seconds=250,
        seconds_per_frame=12.5,
        latest_frame=60,
        latest_frame_uri="s3://b/f/frame_000060.png",
    )
    plain = progress_line(status)
    assert plain == "shot-1: 60/240 frames 25% | chunks run 3 wait 9 ok 11 fail 1 | ETA 4m 10s | RUNNING"
    bar = progress_line(status, width=120)
    assert bar.startswith("[") and "#" in bar and "-]" in bar and bar.endswith("RUNNING")
    text = format_status(status)
    assert "60/240 (25%)" in text and "12.5 s/frame" in text
    assert "aws-batch-render retry shot-1" in text and "frame 60" in text


# --- submit with the real pipeline --------------------------------------------------------------


@pytest.mark.slow
def test_submit_a_real_scene_to_aws(env, aws_settings, tiny_scene, records, capsys):
    code, out, err = run(
        capsys, "submit", tiny_scene, "--frames", "1-6", "--chunk", "2",
        "--bucket", BUCKET, "--queue", QUEUE, "--job-definition", RENDER_DEF,
        "--stitch-job-definition", STITCH_DEF, "--region", "us-east-1", "--endpoint-url", aws_settings.endpoint_url,
        "--vcpus", "2", "--memory", "4096", "--records", records,
    )  # fmt: skip
    assert code == 0, err
    assert "Submitted" in out and "6 frame(s) in 3 chunk(s)" in out
    (record,) = RecordStore(records).list()
    assert record.backend == "aws" and record.source_blend == str(tiny_scene)
    spec = JobSpec.from_json(S3Store(aws_settings).get_bytes(record.spec_uri))
    assert spec.slices == [[1, 2], [3, 4], [5, 6]]
    assert spec.inputs.main_blend.endswith("tiny.blend")
    for digest in spec.inputs.files.values():
        assert S3Store(aws_settings).exists(spec.inputs.uri + digest)
    jobs = client("batch", aws_settings).describe_jobs(jobs=[record.jobs["render_job_id"]])["jobs"]
    assert jobs[0]["arrayProperties"]["size"] == 3


def test_submit_checks_the_queue_before_uploading(env, aws_settings, tiny_scene, records, capsys):
    client("batch", aws_settings).update_job_queue(jobQueue=QUEUE, state="DISABLED")
    code, _, err = run(
        capsys, "submit", tiny_scene, "--bucket", BUCKET, "--queue", QUEUE, "--job-definition", RENDER_DEF,
        "--stitch-job-definition", STITCH_DEF, "--endpoint-url", aws_settings.endpoint_url, "--records", records,
    )  # fmt: skip
    assert code == JobQueueError.exit_code
    assert "is DISABLED" in err and "Traceback" not in err
    assert client("s3", aws_settings).list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0  # nothing uploaded


def test_submit_without_a_bucket_says_what_to_pass(aws, tiny_scene, records, capsys):
    code, _, err = run(capsys, "submit", tiny_scene, "--queue", QUEUE, "--records", records)
    assert code == 2
    assert "--bucket" in err and "--stack" in err


# --- follow ---------------------------------------------------------------------------------------


def test_status_list_and_json(env, aws_settings, records, capsys):
    spec, record = submitted(env, aws_settings, records)
    put_frames(aws_settings, spec, [1, 2, 3])
    code, out, _ = run(capsys, "status", record.submission_id[:6], "--records", records)
    assert code == 0
    assert "frames   3/8" in out and "3 succeeded" in out

    code, out, _ = run(capsys, "status", record.submission_id, "--json", "--records", records)
    data = json.loads(out)
    assert data["frames_done"] == 3 and data["chunk_counts"] == {"SUCCEEDED": 3}

    code, out, _ = run(capsys, "list", "--records", records)
    assert code == 0
    header, row = out.splitlines()
    assert header.split()[:5] == ["ID", "BACKEND", "CREATED", "FRAMES", "STATE"]
    assert row.split()[0] == record.submission_id and "shot.blend" in row
    assert row.split()[4] == RecordStore(records).load(record.submission_id).last_status["state"]


def test_status_watch_prints_plain_lines_when_not_a_tty(env, aws_settings, records, capsys):
    spec, record = submitted(env, aws_settings, records)
    put_frames(aws_settings, spec, spec.frames)
    S3Store(aws_settings).put_bytes(b"mp4", spec.video_file_uri())
    code, out, _ = run(capsys, "status", record.submission_id, "--watch", "--interval", "0.05", "--records", records)
    assert code == 0
    first = out.splitlines()[0]
    assert first == f"{record.submission_id}: 8/8 frames 100% | chunks ok 3 | ETA 0s | SUCCEEDED"
    assert "\r" not in out and spec.video_file_uri() in out


def test_unknown_id(records, capsys):
    code, _, err = run(capsys, "status", "nope", "--records", records)
    assert code == RecordNotFoundError.exit_code and "No submission 'nope'" in err


def test_cancel_retry_and_logs(env, aws_settings, records, capsys):
    spec, record = submitted(env, aws_settings, records)
    put_frames(aws_settings, spec, spec.frames)  # every chunk SUCCEEDED in moto; retry checks their frames too
    code, out, _ = run(capsys, "cancel", record.submission_id, "--records", records)
    # every chunk SUCCEEDED at once in moto: nothing left to cancel, and cancel says so
    assert code == 0 and "had already finished (succeeded)" in out
    assert "cancelled" not in RecordStore(records).load(record.submission_id).jobs

    code, _, err = run(capsys, "retry", record.submission_id, "--records", records)
    assert code == NothingToRetryError.exit_code and "nothing to retry" in err  # every chunk SUCCEEDED in moto

    code, out, _ = run(capsys, "logs", record.submission_id, "--slice", "1", "--records", records)
    assert code == 0 and "log stream" in out and "does not exist" in out


def test_download_frames_then_skip_what_is_there(env, aws_settings, records, tmp_path, capsys):
    spec, record = submitted(env, aws_settings, records)
    put_frames(aws_settings, spec, spec.frames, data=b"x" * 100)
    S3Store(aws_settings).put_bytes(b"v" * 1000, spec.video_file_uri())
    dest = tmp_path / "out"
    code, out, _ = run(capsys, "download", record.submission_id, "--dest", dest, "--records", records)
    assert code == 0
    assert "Downloaded 9 file(s)" in out and "0 already there" in out
    assert (dest / "video.mp4").read_bytes() == b"v" * 1000
    assert sorted(p.name for p in (dest / "frames").iterdir()) == [spec.frame_name(f) for f in spec.frames]

    code, out, _ = run(capsys, "download", record.submission_id, "--dest", dest, "--frames", "--records", records)
    assert "Downloaded 0 file(s)" in out and "8 already there" in out


@pytest.mark.slow
def test_local_backend_end_to_end(tiny_scene, tmp_path, records, monkeypatch, capsys):
    """submit --backend local renders for real (child Blender, worker, ffmpeg), then
    status, list and download work from the record alone."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    code, out, err = run(
        capsys, "submit", tiny_scene, "--backend", "local", "--frames", "1-3", "--chunk", "2",
        "--concurrency", "1", "--watch", "--interval", "0.2", "--records", records,
    )  # fmt: skip
    assert code == 0, err + out
    assert "3 frame(s) in 2 chunk(s)" in out and "SUCCEEDED" in out
    (record,) = RecordStore(records).list()
    assert record.backend == "local" and record.last_status["frames_done"] == 3

    code, out, _ = run(capsys, "status", record.submission_id, "--records", records)
    assert code == 0 and "frames   3/3" in out and "video" in out
    dest = tmp_path / "dl"
    code, out, _ = run(capsys, "download", record.submission_id, "--dest", dest, "--records", records)
    assert code == 0 and "Downloaded 4 file(s)" in out
    (video,) = dest.glob("*.mp4")  # named after the scene by the spec builder
    assert video.stat().st_size > 0 and f"Video: {video}" in out
    assert sorted(p.name for p in (dest / "frames").iterdir()) == [
        "frame_000001.png",
        "frame_000002.png",
        "frame_000003.png",
    ]


@pytest.mark.slow
def test_submit_with_stack_reads_bucket_queue_and_definitions(env, aws_settings, tiny_scene, records, capsys):
    outputs = {
        "BucketName": BUCKET, "JobQueue": env.queue_arn, "RenderJobDefinition": env.render_def_arn,
        "StitchJobDefinition": env.stitch_def_arn, "RepositoryUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/abr",
        "LogGroupName": "/abr/jobs", "Region": "us-east-1",
    }  # fmt: skip
    template = {
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }
    client("cloudformation", aws_settings).create_stack(StackName="abr-render", TemplateBody=json.dumps(template))
    put_worker_images(aws_settings, "abr")  # submit's check wants the image for the scene's Blender
    code, _out, err = run(
        capsys, "submit", tiny_scene, "--frames", "1-2", "--stack", "abr-render",
        "--endpoint-url", aws_settings.endpoint_url, "--records", records,
    )  # fmt: skip
    assert code == 0, err
    (record,) = RecordStore(records).list()
    assert record.settings["job_queue"] == env.queue_arn
    assert record.settings["render_job_definition"] == env.render_def_arn
    assert record.settings["log_group"] == "/abr/jobs" and record.settings["bucket"] == BUCKET
    assert record.settings["region"] == "us-east-1"  # from the stack: none was given
    assert record.spec_uri.startswith(f"s3://{BUCKET}/submissions/")


def put_worker_images(aws_settings, repository: str) -> None:
    """The repository with a worker image tag for each Blender line (a manifest only)."""
    media = "application/vnd.docker.distribution.manifest.v2+json"
    manifest = json.dumps({"schemaVersion": 2, "mediaType": media, "layers": [], "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json", "size": 2, "digest": "sha256:" + "c" * 64}})
    ecr = client("ecr", aws_settings)
    ecr.create_repository(repositoryName=repository)
    for tag in ("blender-5.2", "blender-4.5"):
        ecr.put_image(repositoryName=repository, imageManifest=manifest, imageManifestMediaType=media, imageTag=tag)


class _Terminal(io.StringIO):
    """A text stream that says it is a terminal, as a real console does."""

    def isatty(self) -> bool:
        return True


def test_watch_draws_a_live_bar_on_a_terminal(env, aws_settings, records):
    from addon.cli.follow import watch as _watch

    spec, record = submitted(env, aws_settings, records)
    put_frames(aws_settings, spec, spec.frames)
    S3Store(aws_settings).put_bytes(b"mp4", spec.video_file_uri())
    out = _Terminal()
    code = _watch(env.backend(), record, RecordStore(records), interval=0.05, out=out)
    text = out.getvalue()
    assert code == 0
    assert text.startswith("\r[") and "#" * 10 in text and "8/8 frames 100%" in text
    assert text.split("\n")[1] == f"{record.submission_id} (aws): SUCCEEDED"
