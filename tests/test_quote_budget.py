"""The budget cap end to end: on the local backend (a real render, a price injected) and
on AWS Batch (moto in this process, the children's states driven by the test)."""

from __future__ import annotations

import json

import pytest

from addon.cli import main
from addon.core.aws.session import AwsSettings, client
from addon.core.progress import SliceProgress
from addon.core.quote.budget import Budget
from addon.core.records import RecordStore
from addon.core.storage import S3Store
from tests.test_aws_batch_states import moto_job, set_states, submit
from tests.test_aws_batch_support import BUCKET, create_batch_env, put_frames


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_local_render_stops_at_the_cap_and_retry_continues(tiny_scene, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    records = tmp_path / "records"
    # $1 per vCPU-second, 2 threads: a chunk (Blender start + 2 frames) costs about $2 on an idle
    # machine (the whole render about $8), several times that on a loaded one: a $4 cap stops it
    # within the first two chunks however fast the machine is
    code, out, err = run(
        capsys, "submit", tiny_scene, "--backend", "local", "--frames", "1-8", "--chunk", "2", "--concurrency", "1",
        "--threads", "2", "--max-cost", "4", "--price-per-vcpu-hour", "3600", "--watch",
        "--interval", "0.2", "--records", records,
    )  # fmt: skip
    assert code == 8, err + out  # ended CANCELLED
    assert "stopped by budget" in out
    (record,) = RecordStore(records).list()
    budget = Budget.of(record)
    # stopped when the spend plus the next step would pass the cap: near it, not far past it
    # (a poll interval of 0.2 s at $2/s, plus the step it saw coming)
    assert budget.stopped_at_cost is not None and 0 < budget.stopped_at_cost < 4 + 4
    status = record.last_status
    assert status["state"] == "CANCELLED" and status["frames_total"] == 8
    frames_dir = tmp_path / "data"
    kept = sorted(p.name for p in frames_dir.rglob("frame_*.png") if "frames" in p.parts)
    assert len(kept) == status["frames_done"] < 8  # every finished frame kept, none counted that is not there

    code, out, err = run(capsys, "retry", record.submission_id, "--records", records)
    assert code == 2 and "--max-cost" in err and len(err.strip().splitlines()) == 1
    code, out, err = run(capsys, "retry", record.submission_id, "--max-cost", "100000", "--records", records)
    assert code == 0, err
    code, out, err = run(capsys, "status", record.submission_id, "--watch", "--interval", "0.2", "--records", records)
    assert code == 0, err + out
    assert "frames   8/8" in out and "of the $100000.00 cap" in out


def test_submit_refuses_a_cap_it_cannot_count(tiny_scene, tmp_path, capsys):
    code, _, err = run(capsys, "submit", tiny_scene, "--backend", "local", "--max-cost", "5",
                       "--records", tmp_path / "r")  # fmt: skip
    assert code == 2 and "--price-per-vcpu-hour" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "submit", tiny_scene, "--backend", "local", "--max-cost", "0",
                       "--price-per-vcpu-hour", "1", "--records", tmp_path / "r")  # fmt: skip
    assert code == 2 and "more than 0" in err


@pytest.fixture
def env(inproc_aws):
    settings = AwsSettings(region="us-east-1", endpoint_url=inproc_aws)
    client("s3", settings).create_bucket(Bucket=BUCKET)
    return create_batch_env(settings)


def test_aws_submission_stops_at_the_cap(env, tmp_path, capsys):
    from addon.cli.follow import refresh

    slices = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]
    spec, backend, record = submit(env, slices)
    Budget(max_cost=0.05, price_per_vcpu_hour=0.5, job_vcpus=4).save_to(record)
    store = RecordStore(tmp_path / "records")
    store.save(record)
    parent = record.jobs["render_job_id"]
    set_states(parent, ["SUCCEEDED", "RUNNING", "RUNNABLE", "RUNNABLE", "RUNNABLE"])
    moto_job(record.jobs["stitch_job_id"]).status = "PENDING"
    put_frames(env.settings, spec, [1, 2, 3])
    progress = SliceProgress(index=1, frames_total=2, frames_done=1, seconds_per_frame=30.0)
    S3Store(env.settings).put_bytes(progress.to_json(), spec.progress_record_uri(1))

    status = refresh(backend, record, store)  # 3 frames x 30 s x 4 vCPUs x $0.5/h = $0.05
    assert status.state == "CANCELLED"
    assert "stopped by budget: ≈ $0.05 spent of the $0.05 cap" in status.message
    saved = store.load(record.submission_id)
    assert saved.jobs.get("cancelled") and Budget.of(saved).stopped_at_cost == pytest.approx(0.05, abs=1e-3)
    assert sorted(k["Key"].rsplit("/", 1)[1] for k in client("s3", env.settings).list_objects_v2(
        Bucket=BUCKET, Prefix=spec.output.frames_uri.split(BUCKET + "/", 1)[1])["Contents"]) == [
        "frame_000001.png", "frame_000002.png", "frame_000003.png"]  # fmt: skip
    # Batch ends cancelled children FAILED; retry with a new cap renders them again
    set_states(parent, ["SUCCEEDED", "FAILED", "FAILED", "FAILED", "FAILED"], parent_state="FAILED")
    moto_job(record.jobs["stitch_job_id"]).status = "FAILED"
    code, out, err = run(capsys, "retry", record.submission_id, "--records", tmp_path / "records")
    assert code == 2 and "stopped by its budget" in err
    code, out, err = run(capsys, "retry", record.submission_id, "--max-cost", "1", "--records", tmp_path / "records")
    assert code == 0, err
    again = store.load(record.submission_id)
    assert again.jobs["render_job_id"] != parent and Budget.of(again).max_cost == 1
    code, out, err = run(capsys, "status", record.submission_id, "--json", "--records", tmp_path / "records")
    assert "of the $1.00 cap" in json.loads(out)["message"]


def test_spend_is_shown_while_under_the_cap(env, tmp_path):
    from addon.cli.follow import format_status, refresh

    spec, backend, record = submit(env, [[1, 2], [3, 4]])
    Budget(max_cost=10, price_per_vcpu_hour=0.5, job_vcpus=4).save_to(record)
    set_states(record.jobs["render_job_id"], ["SUCCEEDED", "RUNNING"])
    moto_job(record.jobs["stitch_job_id"]).status = "PENDING"
    put_frames(env.settings, spec, [1, 2])
    status = refresh(backend, record, RecordStore(tmp_path / "r"))
    assert status.state == "RUNNING" and "spent ≈ $0.00 of the $10.00 cap" in format_status(status)
