"""Live status: the timer callback (called directly: timers never fire in bpy-module
mode) turns thread messages into job rows, polls the real backend in a thread, backs
off, stops when every job is done; rows come back from the records after a reopen; the
panel draws the button and the rows."""

from __future__ import annotations

import time

import pytest
from test_addon_support import (
    FakePanel,
    configure_prefs,
    create_batch_resources,
    drain,
    ensure_installed,
    mod,
    reset_addon_state,
    runtime,
    set_online,
)

bpy = pytest.importorskip("bpy")


@pytest.fixture
def addon():
    ensure_installed()
    reset_addon_state()
    set_online(True)
    yield
    reset_addon_state()
    set_online(False)


def _record(submission_id: str, blend: str, backend: str = "aws", frames: int = 12):
    backend_mod = mod("core.backends.base")
    return backend_mod.SubmissionRecord(
        submission_id=submission_id,
        backend=backend,
        spec_uri=f"s3://abr-test/submissions/{submission_id}/spec.json",
        created_at=f"2026-01-01T00:00:0{len(runtime().jobs)}+00:00",
        source_blend=blend,
        frames_total=frames,
        slice_count=3,
    )


def _status(submission_id: str, counts: dict, frames_done: int, **kw) -> dict:
    status = mod("core.backends.status")
    progress = [status.SliceProgress(index=0, frames_total=4, frames_done=frames_done, seconds_per_frame=10.0)]
    return status.summarize(
        submission_id=submission_id, backend="aws", frames_total=12, chunk_counts=counts, stitch_state="PENDING",
        frames_done=frames_done, records=progress, elapsed_seconds=95.0, **kw,
    ).to_dict()


def test_timer_turns_mixed_states_into_row_properties(addon):
    bg, st, rows = mod("blender.background"), mod("blender.status_timer"), mod("blender.job_rows")
    rt = runtime()
    rt.jobs_for = rows.current_blend()
    rt["_loaded"] = True
    for sid in ("sub-running", "sub-failed"):
        rows.add_record(_record(sid, rows.current_blend()), rt)
    bg.post(bg.StatusUpdate("sub-running", _status("sub-running", {"RUNNING": 2, "SUCCEEDED": 1}, 5,
                                                   vcpu_hours=0.25, latest_frame=5)))
    bg.post(bg.StatusUpdate("sub-failed", _status("sub-failed", {"FAILED": 1, "SUCCEEDED": 2}, 8,
                                                  failed_slices=[2])))
    st.tick()
    running, failed = rows.find(rt, "sub-running"), rows.find(rt, "sub-failed")
    assert (running.state, running.frames_done, running.frames_total) == ("RUNNING", 5, 12)
    assert running.fraction == pytest.approx(5 / 12)
    assert running.counts == "Chunks: 2 run · 1 done"
    assert running.eta == pytest.approx(7 * 10.0 / 2)  # 7 frames left over 2 running chunks
    assert running.vcpu_hours == pytest.approx(0.25)
    assert not running.finished
    assert (failed.state, failed.failed_slices, failed.first_failed_slice) == ("FAILED", "2", 2)
    assert failed.finished and failed.eta == -1.0
    assert [r.submission_id for r in rows.unfinished(rt)] == ["sub-running"]
    # a failed poll of one submission shows on its row, not as a global error
    bg.post(bg.TaskFailed("poll", "Cannot read the job status: access denied", "sub-running"))
    st.tick()
    assert "access denied" in running.error


def test_tick_stays_short_with_many_messages(addon):
    bg, st, rows = mod("blender.background"), mod("blender.status_timer"), mod("blender.job_rows")
    rt = runtime()
    rt.jobs_for = rows.current_blend()
    rt["_loaded"] = True
    rows.add_record(_record("sub-busy", rows.current_blend()), rt)
    for i in range(3000):
        bg.post(bg.StatusUpdate("sub-busy", _status("sub-busy", {"RUNNING": 3}, i % 12)))
    t = time.perf_counter()
    st.tick()
    first = time.perf_counter() - t
    assert first < 0.010 + 0.005  # budget 8 ms plus one message
    assert not bg.MESSAGES.empty()  # the rest waits for the next tick
    drain(timeout=30)
    assert bg.MESSAGES.empty()


def test_poll_interval_backs_off_and_resets():
    ensure_installed()
    st = mod("blender.status_timer")
    rt = runtime()
    rt.jobs.clear()
    st.STATE.interval = st.POLL_MIN_S
    seen = []
    for _ in range(12):
        st.STATE.changed = False
        st._after_poll(rt)
        seen.append(st.STATE.interval)
    assert seen[0] == pytest.approx(st.POLL_MIN_S * st.POLL_BACKOFF)
    assert seen == sorted(seen) and seen[-1] == st.POLL_MAX_S
    st.STATE.changed = True
    st._after_poll(rt)
    assert st.STATE.interval == st.POLL_MIN_S
    assert not rt.polling  # no unfinished rows: polling stops


def test_polling_the_real_backend_until_done_then_stopping(addon, aws, aws_settings, s3_bucket, tiny_scene):
    """Submitted straight through the core backend (no packing), followed by the add-on."""
    from addon.core.backends.aws_batch.backend import AwsBatchBackend
    from addon.core.records import RecordStore
    from addon.core.storage import S3Store
    from tests.helpers import make_spec

    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    resources = create_batch_resources(aws_settings)
    configure_prefs(aws.endpoint, s3_bucket, resources)
    spec = make_spec(root=f"s3://{s3_bucket}/", submission_id="sub-polled")
    spec_uri = f"s3://{s3_bucket}/submissions/sub-polled/spec.json"
    S3Store(aws_settings).put_bytes(spec.to_json().encode(), spec_uri)
    backend = AwsBatchBackend(aws_settings, resources["job_queue"], resources["render_job_definition"],
                              resources["stitch_job_definition"])
    record = backend.submit(spec, spec_uri, str(tiny_scene))
    RecordStore(mod("blender.config").records_dir()).save(record)

    st, rows = mod("blender.status_timer"), mod("blender.job_rows")
    rt = runtime()
    rt["_loaded"] = False
    st.tick()  # loads the rows of this file and schedules a poll
    assert [r.submission_id for r in rt.jobs] == ["sub-polled"]
    assert rt.polling
    drain(timeout=60)
    row = rows.find(rt, "sub-polled")
    assert row.state == "SUCCEEDED", (row.state, row.error)  # moto without Docker: jobs succeed at once
    assert row.finished
    assert st.tick() is None  # nothing left to follow: the timer stops itself
    assert not rt.polling
    # the status is kept in the record: a reopened file shows it without polling
    assert RecordStore(mod("blender.config").records_dir()).load("sub-polled").last_status["state"] == "SUCCEEDED"
    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    st.tick()
    assert rows.find(runtime(), "sub-polled").state == "SUCCEEDED"
    assert not runtime().polling


def test_offline_polling_is_skipped_with_a_note(addon, tiny_scene):
    st, rows = mod("blender.status_timer"), mod("blender.job_rows")
    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    rt = runtime()
    rt.jobs_for = rows.current_blend()
    rt["_loaded"] = True
    rows.add_record(_record("sub-offline", rows.current_blend()), rt)
    set_online(False)
    st.poll_soon(rt)
    assert st.maybe_poll(rt) is False
    assert "Online access is off" in rt.last_report
    assert not mod("blender.background").busy("poll")


def test_panel_draws_settings_button_and_job_rows(addon):
    rows = mod("blender.job_rows")
    panel = mod("blender.panel")
    rt = runtime()
    rt.jobs_for = rows.current_blend()
    rt["_loaded"] = True
    for sid in ("sub-a", "sub-b"):
        rows.add_record(_record(sid, rows.current_blend()), rt)
    rows.apply_status(rows.find(rt, "sub-a"), _status("sub-a", {"RUNNING": 1, "SUCCEEDED": 2}, 9))
    rows.apply_status(rows.find(rt, "sub-b"), _status("sub-b", {"FAILED": 1, "SUCCEEDED": 2}, 8,
                                                       failed_slices=[1], video_uri=""))
    context = bpy.context
    assert panel.AWSBATCH_PT_output.poll(context)
    main = FakePanel()
    panel.AWSBATCH_PT_output.draw(main, context)
    assert "awsbatch.submit" in [c["args"][0] for c in main.layout.operators()]
    assert any(c["name"] == "prop" and c["args"][1] == "chunk_size" for c in main.layout.calls)

    jobs = FakePanel()
    panel.AWSBATCH_PT_jobs.draw(jobs, context)
    ops = [(c["args"][0], c.get("props", {}).get("submission_id")) for c in jobs.layout.operators()]
    assert ("awsbatch.cancel_job", "sub-a") in ops
    assert ("awsbatch.retry_failed", "sub-b") in ops
    assert ("awsbatch.show_log", "sub-b") in ops
    assert ("awsbatch.download", "sub-a") in ops  # frames exist
    assert ("awsbatch.cancel_job", "sub-b") not in ops  # finished
    texts = jobs.layout.texts()
    assert any(t.startswith("9/12") for t in texts) and "8 of 12 frames" in texts
    assert any("Failed chunks: 1" in t for t in texts)

    # while uploading, the panel shows progress and a cancel button instead of the button
    rt.submitting = True
    rt.submit_fraction = 0.4
    rt.submit_message = "Uploading 2 of 5 files"
    busy = FakePanel()
    panel.AWSBATCH_PT_output.draw(busy, context)
    names = [c["args"][0] for c in busy.layout.operators()]
    assert "awsbatch.cancel_submit" in names and "awsbatch.submit" not in names
    assert any(c["name"] == "progress" and c["factor"] == pytest.approx(0.4) for c in busy.layout.calls)
    rt.submitting = False


def test_preferences_draw_connect_and_test(addon):
    prefs = mod("blender.config").prefs()
    fake = FakePanel()
    type(prefs).draw(_PrefsSelf(prefs, fake.layout), bpy.context)
    names = [c["args"][0] for c in fake.layout.operators()]
    assert names == ["awsbatch.connect_stack", "awsbatch.test_connection"]
    assert any("blender-" in t for t in fake.layout.texts())


class _PrefsSelf:
    """``self`` for AddonPreferences.draw: the real preferences, a recording layout."""

    def __init__(self, prefs, layout) -> None:
        object.__setattr__(self, "_prefs", prefs)
        object.__setattr__(self, "layout", layout)

    def __getattr__(self, name):
        return getattr(self._prefs, name)


def test_latest_frame_becomes_a_thumbnail(addon, tmp_path):
    bg, rows = mod("blender.background"), mod("blender.job_rows")
    frame = tmp_path / "frames" / "frame_000007.png"
    frame.parent.mkdir()
    image = bpy.data.images.new("abr-thumb", 16, 9)
    image.filepath_raw = str(frame)
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)
    rt = runtime()
    rt.jobs_for = rows.current_blend()
    rt["_loaded"] = True
    record = _record("sub-thumb", rows.current_blend(), backend="local")
    mod("core.records").RecordStore(mod("blender.config").records_dir()).save(record)
    rows.add_record(record, rt)
    bg.post(bg.StatusUpdate("sub-thumb", _status("sub-thumb", {"RUNNING": 1}, 7, latest_frame=7,
                                                 latest_frame_uri=f"file://{frame}")))
    drain(timeout=30)  # the status starts a fetch thread; its answer loads the icon
    row = rows.find(rt, "sub-thumb")
    assert row.preview_frame == 7
    # the fetched file is loaded as a preview (headless Blender gives it icon id 0: no UI)
    previews = mod("blender.previews")
    assert previews.loaded()
    assert tuple(previews._collection["sub-thumb-7"].image_size) == (16, 9)
    jobs = FakePanel()
    mod("blender.panel").AWSBATCH_PT_jobs.draw(jobs, bpy.context)
    assert "Latest frame 7" in jobs.layout.texts()


def test_preferences_and_scene_settings_hold_no_secrets(addon):
    prefs = mod("blender.config").prefs()
    names = [p.identifier for p in prefs.bl_rna.properties]
    names += [p.identifier for p in bpy.context.scene.awsbatch.bl_rna.properties]
    assert "profile" in names and "endpoint_url" in names
    assert not [n for n in names if any(w in n for w in ("secret", "access_key", "token", "password"))]


def test_open_result_before_download_explains(addon):
    rows = mod("blender.job_rows")
    rt = runtime()
    rows.add_record(_record("sub-open", rows.current_blend()), rt)
    with pytest.raises(RuntimeError, match="Nothing downloaded yet"):
        bpy.ops.awsbatch.open_result(submission_id="sub-open")
