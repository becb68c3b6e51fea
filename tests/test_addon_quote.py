"""The panel's Estimate button and budget cap, driven through the installed extension's
operators with the real bpy: the scout render runs in a thread (the operator returns at
once), the quote's one line shows in the panel; a cap set in the panel goes with the
submission and the add-on's own poll loop stops the render by budget as the CLI does,
keeping every finished frame, with the spend against the cap in the panel."""

from __future__ import annotations

import time

import pytest
from test_addon_support import (
    FakePanel,
    configure_prefs,
    drain,
    local_store_addon,  # noqa: F401 (the ``addon`` fixture)
    mod,
    render_and_follow,
    runtime,
)

bpy = pytest.importorskip("bpy")


def _local_scene(path, frames: str, chunk: int):
    bpy.ops.wm.open_mainfile(filepath=str(path))
    configure_prefs("", "", {}, backend="LOCAL")
    s = bpy.context.scene.awsbatch
    s.use_frames_override = True
    s.frames = frames
    s.chunk_size = chunk
    return bpy.context.scene


def _panel_texts() -> list[str]:
    fake = FakePanel()
    mod("blender.panel").AWSBATCH_PT_output.draw(fake, bpy.context)
    return fake.layout.texts() + [c["args"][0] for c in fake.layout.operators()]


def test_estimate_runs_the_scout_in_the_background_and_shows_the_quote(addon, tiny_scene):
    _local_scene(tiny_scene, "1-6", 2)
    bg = mod("blender.background")
    started = time.perf_counter()
    assert bpy.ops.awsbatch.estimate() == {"FINISHED"}
    assert time.perf_counter() - started < 5  # saving the copy only: the scout runs in the thread
    assert bg.busy("estimate")
    assert "Estimating: scout render…" in _panel_texts()
    drain(timeout=180, until=lambda: not bg.busy("estimate") and bg.MESSAGES.empty())
    drain(timeout=10)
    q = bpy.context.window_manager.awsbatch_quote
    assert q.error == "", q.error
    assert "with 3 chunks of 2 frame(s), 1 at a time on this computer" in q.line, q.line
    assert "start-up+load" in q.assumptions and "chunk size 2: chunk size given" in q.assumptions
    texts = _panel_texts()
    assert q.line in " ".join(texts) and "awsbatch.estimate" in texts  # wrapped to whole lines
    assert not list((tiny_scene.parent).glob("*.png"))  # the scout wrote nothing beside the file


def test_a_cap_on_this_computer_needs_a_price(addon, tiny_scene):
    scene = _local_scene(tiny_scene, "1-4", 2)
    b = scene.awsbatch_budget
    b.use_max_cost, b.max_cost, b.price_per_vcpu_hour = True, 5.0, 0.0
    with pytest.raises(RuntimeError, match=r"needs a price: set \$/vCPU-hour"):
        bpy.ops.awsbatch.submit()
    assert "needs a price" in runtime().submit_error
    assert not mod("blender.background").busy()
    assert mod("core.records").RecordStore(mod("blender.config").records_dir()).list() == []


@pytest.mark.slow
def test_the_panel_cap_stops_the_local_render_in_the_poll_loop(addon, tiny_scene, tmp_path):
    scene = _local_scene(tiny_scene, "1-8", 2)
    # $1 per vCPU-second: a chunk (Blender start + 2 frames on all cores) costs $2 or more, the
    # whole render $8 or more: a $4 cap stops it within the first two chunks however fast the machine
    b = scene.awsbatch_budget
    b.use_max_cost, b.max_cost, b.price_per_vcpu_hour = True, 4.0, 3600.0
    row = render_and_follow(90, 180, pause=0.2)
    assert row.state == "CANCELLED", (row.state, row.message, row.error)
    assert "stopped by budget" in row.message and "of the $4.00 cap" in row.message
    record = mod("core.records").RecordStore(mod("blender.config").records_dir()).load(row.submission_id)
    budget = mod("core.quote.budget").Budget.of(record)
    assert budget.price_per_vcpu_hour == 3600.0 and budget.price_source == "given"
    assert budget.stopped_at_cost is not None and 0 < budget.stopped_at_cost < 4 + 4
    kept = sorted(p.name for p in (tmp_path / "xdg").rglob("frame_*.png") if "frames" in p.parts)
    assert len(kept) == row.frames_done < 8  # finished frames kept, none counted that is not there
    assert any(t.startswith("Stopped by budget: ≈ $") for t in _panel_texts())


def test_the_addon_poll_stops_an_aws_submission_at_its_cap(addon, inproc_aws):
    """The add-on's poll thread (tasks.poll) against AWS Batch (moto in this process, the
    children's states set by the test): the same stop as the CLI's refresh, kept in the record."""
    import threading

    from addon.core.aws.session import AwsSettings, client
    from addon.core.progress import SliceProgress
    from addon.core.quote.budget import Budget
    from addon.core.storage import S3Store
    from tests.test_aws_batch_states import moto_job, set_states, submit
    from tests.test_aws_batch_support import BUCKET, create_batch_env, put_frames

    settings = AwsSettings(region="us-east-1", endpoint_url=inproc_aws)
    client("s3", settings).create_bucket(Bucket=BUCKET)
    env = create_batch_env(settings)
    spec, _backend, record = submit(env, [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]])
    Budget(max_cost=0.05, price_per_vcpu_hour=0.5, job_vcpus=4).save_to(record)
    records_dir = mod("blender.config").records_dir()
    store = mod("core.records").RecordStore(records_dir)
    store.save(mod("core.backends.base").SubmissionRecord.from_json(record.to_json()))
    parent = record.jobs["render_job_id"]
    set_states(parent, ["SUCCEEDED", "RUNNING", "RUNNABLE", "RUNNABLE", "RUNNABLE"])
    moto_job(record.jobs["stitch_job_id"]).status = "PENDING"
    put_frames(settings, spec, [1, 2, 3])
    progress = SliceProgress(index=1, frames_total=2, frames_done=1, seconds_per_frame=30.0)
    S3Store(settings).put_bytes(progress.to_json(), spec.progress_record_uri(1))

    bg = mod("blender.background")
    mod("blender.tasks").poll([record.submission_id], records_dir, cancel=threading.Event())
    updates = [m for m in bg.drain_pending() if type(m).__name__ == "StatusUpdate"]
    assert len(updates) == 1 and updates[0].status["state"] == "CANCELLED", updates
    message = updates[0].status["message"]
    assert "stopped by budget: ≈ $" in message and "spent of the $0.05 cap" in message, message
    saved = store.load(record.submission_id)
    assert saved.jobs.get("cancelled") and 0.04 < saved.jobs["budget"]["stopped_at_cost"] < 0.1
    assert saved.last_status["state"] == "CANCELLED"


def test_estimate_on_aws_prices_the_render_and_the_cap_counts_in_its_price(addon, aws, aws_settings, s3_bucket,
                                                                          tiny_scene):  # fmt: skip
    """AWS: the quote's Spot price (moto serves the Spot price history) becomes the price a cap
    without one is counted in, kept in the submission's record."""
    from test_addon_support import create_batch_resources, set_online

    set_online(True)
    try:
        configure_prefs(aws.endpoint, s3_bucket, create_batch_resources(aws_settings))
        bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
        s = bpy.context.scene.awsbatch
        s.use_frames_override, s.frames, s.chunk_size = True, "1-4", 2
        assert bpy.ops.awsbatch.estimate() == {"FINISHED"}
        bg = mod("blender.background")
        drain(timeout=180, until=lambda: not bg.busy("estimate") and bg.MESSAGES.empty())
        drain(timeout=10)
        q = bpy.context.window_manager.awsbatch_quote
        assert q.error == "", q.error
        assert q.line.startswith("≈ $") and "Spot prices of" in q.line, q.line
        assert q.backend == "aws" and q.price_per_vcpu_hour > 0 and q.price_source.startswith("Spot median of")

        b = bpy.context.scene.awsbatch_budget
        b.use_max_cost, b.max_cost, b.price_per_vcpu_hour = True, 3.0, 0.0
        assert bpy.ops.awsbatch.submit() == {"FINISHED"}
        drain(timeout=120, until=lambda: not runtime().submitting)
        assert runtime().submit_error == "", runtime().submit_error
        (record,) = mod("core.records").RecordStore(mod("blender.config").records_dir()).list()
        budget = record.jobs["budget"]
        assert budget["max_cost"] == 3.0 and budget["price_per_vcpu_hour"] == pytest.approx(q.price_per_vcpu_hour)
        assert budget["price_source"] == q.price_source
    finally:
        set_online(False)
