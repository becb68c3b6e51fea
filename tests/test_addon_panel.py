"""What the panel says, defect by defect (the GUI tier shows the same in a real window):
the button names where the render goes, no two rows share a label, no vCPU-hours for a
local render, the newest submission's progress sits under the button, the download and
the thumbnail come back after reopening, the thumbnail follows the latest frame to the
end, a failing "open" shows in the row, and the status bar carries the progress."""

from __future__ import annotations

import pytest
from test_addon_support import FakePanel, drain, ensure_installed, mod, reset_addon_state, runtime

bpy = pytest.importorskip("bpy")


@pytest.fixture
def addon():
    ensure_installed()
    reset_addon_state()
    yield
    reset_addon_state()
    bpy.context.scene.awsbatch.backend = "DEFAULT"


def _row(rt, sid="scene-20261201-231502-ab12cd", backend="local", state="RUNNING", done=6, total=24, **values):
    row = rt.jobs.add()
    row.submission_id, row.backend, row.state, row.frames_done, row.frames_total = sid, backend, state, done, total
    row.fraction = done / total
    row.finished = state in ("SUCCEEDED", "FAILED", "CANCELLED")
    for key, value in values.items():
        setattr(row, key, value)
    return row


def _draw(cls):
    fake = FakePanel()
    cls.draw(fake, bpy.context)
    return fake.layout


def test_the_button_says_where_the_render_goes(addon):
    panel = mod("blender.panel")
    for backend, text in (("LOCAL", "Render on This Computer"), ("AWS", "Render on AWS Batch")):
        bpy.context.scene.awsbatch.backend = backend
        ops = _draw(panel.AWSBATCH_PT_output).operators()
        assert [c.get("text") for c in ops if c["args"][0] == "awsbatch.submit"] == [text]


def test_no_two_rows_share_a_label(addon):
    layout = _draw(mod("blender.panel").AWSBATCH_PT_output)
    labels = []
    for c in layout.calls:
        if c["name"] == "prop":
            data, name = c["args"][:2]
            labels.append(c.get("text", data.bl_rna.properties[name].name))
    assert len(labels) == len(set(labels)), labels
    assert "Image Format" in labels and "Frame List" in labels


def test_newest_progress_under_the_button_and_no_vcpu_hours_for_local(addon):
    rt = runtime()
    _row(rt, eta=12.0, vcpu_hours=0.004, elapsed=5.0)
    layout = _draw(mod("blender.panel").AWSBATCH_PT_output)
    assert any(c["name"] == "progress" and c.get("text") == "6/24 · ETA 12s" for c in layout.calls)
    texts = _draw(mod("blender.panel").AWSBATCH_PT_jobs).texts()
    assert any(t.startswith("Running · ") for t in texts), texts
    assert not any("vCPU" in t for t in texts), texts
    rt.jobs[0].backend = "aws"
    rt.jobs[0].vcpu_hours = 0.25
    assert any("0.25 vCPU-h" in t for t in _draw(mod("blender.panel").AWSBATCH_PT_jobs).texts())


def test_download_and_thumbnail_come_back_after_reopening(addon, tmp_path):
    rows, previews = mod("blender.job_rows"), mod("blender.previews")
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    image = bpy.data.images.new("abr-thumb-reopen", 8, 8)
    image.filepath_raw = str(tmp_path / "frame_000024.png")
    image.file_format = "PNG"
    image.save()
    bpy.data.images.remove(image)
    rt = runtime()
    row = _row(rt, sid="sub-reopen", state="SUCCEEDED", done=24)
    rows.remember(row, downloaded=str(video), download_folder=str(tmp_path))
    rows.remember(row, preview_path=str(tmp_path / "frame_000024.png"), preview_frame=24)
    rt.jobs.clear()  # what reopening the file does to the rows
    again = _row(rt, sid="sub-reopen", state="SUCCEEDED", done=24)
    rows.recall(again)
    assert again.downloaded == str(video) and again.download_folder == str(tmp_path)
    assert again.preview_frame == 24 and previews.loaded()
    ops = [c["args"][0] for c in _draw(mod("blender.panel").AWSBATCH_PT_jobs).operators()]
    assert ops.count("awsbatch.open_result") == 2  # Play and Folder


def test_opening_the_video_without_an_opener_says_so_in_the_row(addon, tmp_path, monkeypatch):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    rt = runtime()
    _row(rt, sid="sub-open", state="SUCCEEDED", done=24, downloaded=str(video))
    monkeypatch.setenv("PATH", str(tmp_path))  # no xdg-open on this PATH (as in Debian's chroot)
    with pytest.raises(RuntimeError, match="xdg-open"):
        bpy.ops.awsbatch.open_result(submission_id="sub-open")
    assert "xdg-open is missing" in rt.jobs[0].error


def test_the_thumbnail_follows_the_latest_frame_after_the_last_poll(addon, tmp_path):
    """AWS showed "Latest frame 6" after all 12 frames: a fetch for a newer frame was
    refused while an older one ran, and no poll came after the end to ask again."""
    bg, rows, st = mod("blender.background"), mod("blender.job_rows"), mod("blender.status_timer")
    frames = {}
    for n in (6, 12):
        image = bpy.data.images.new(f"abr-f{n}", 4, 4)
        image.filepath_raw = str(tmp_path / f"frame_{n:06d}.png")
        image.file_format = "PNG"
        image.save()
        bpy.data.images.remove(image)
        frames[n] = f"file://{tmp_path}/frame_{n:06d}.png"
    record = mod("core.backends.base").SubmissionRecord(
        submission_id="sub-stale", backend="local", spec_uri="file:///nowhere/spec.json", created_at="",
        source_blend=rows.current_blend(), frames_total=12, slice_count=1)
    mod("core.records").RecordStore(mod("blender.config").records_dir()).save(record)
    rt = runtime()
    rt.jobs_for = rows.current_blend()
    rt["_loaded"] = True
    rows.add_record(record, rt)
    status = mod("core.backends.status")
    for n, state in ((6, {"RUNNING": 1}), (12, {"SUCCEEDED": 1})):
        s = status.summarize(submission_id="sub-stale", backend="local", frames_total=12, chunk_counts=state,
                             stitch_state="", frames_done=n, latest_frame=n, latest_frame_uri=frames[n])
        bg.post(bg.StatusUpdate("sub-stale", s.to_dict()))
    st.tick()  # both updates in one tick: the fetch of 6 runs when 12 arrives
    drain(timeout=30)
    assert rows.find(rt, "sub-stale").preview_frame == 12


def test_status_bar_item_for_the_newest_running_submission(addon):
    sb = mod("blender.statusbar")
    rt = runtime()
    sb.LAST.until = 0.0
    assert sb.item_text(rt) is None  # nothing running, nothing just ended
    _row(rt, state="RUNNING", done=6, eta=75.0)
    text, _icon, fraction = sb.item_text(rt)
    assert text == "6/24 · ETA 1m 15s · Running" and fraction == pytest.approx(0.25)
    row = rt.jobs[0]
    row.state, row.finished, row.frames_done = "SUCCEEDED", True, 24
    sb.announce(row)
    text, icon, fraction = sb.item_text(rt)
    assert "finished, 24 frames" in text and icon == "CHECKMARK" and fraction < 0
    assert sb.draw in bpy.types.STATUSBAR_HT_header._dyn_ui_initialize()


def test_connection_report_shows_no_cross_character(addon):
    p = mod("blender.config").prefs()
    p.connection_ok = False
    p.connection_report = mod("blender.ops_submit").OFFLINE_MESSAGE
    fake = FakePanel()

    class Self:
        def __getattr__(self, name):
            return getattr(p, name)

    me = Self()
    me.__dict__["layout"] = fake.layout
    type(p).draw(me, bpy.context)
    texts = fake.layout.texts()
    assert texts and not any("✕" in t or "✗" in t for t in texts), texts


def test_a_task_is_no_longer_busy_when_its_end_is_read(addon):
    """The timer restarts a preview fetch when the last one ends; if the ended thread still
    counted as busy then, the restart was refused and the thumbnail stayed on an old frame."""
    bg = mod("blender.background")
    busy_at_end = 0
    for i in range(200):
        key = f"preview:race-{i}"
        assert bg.start("preview", key, lambda cancel: None)
        while True:
            m = bg.MESSAGES.get(timeout=10)
            if isinstance(m, bg.TaskEnded) and m.key == key:
                busy_at_end += bg.busy(key)
                break
    assert busy_at_end == 0, f"{busy_at_end} of 200 ended tasks still busy when their end was read"
