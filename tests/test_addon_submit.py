"""Render on AWS Batch, driven through bpy.ops.awsbatch.submit on the installed extension,
against the moto server: the job reflects the scene as it is in memory, the user's file
is untouched and still dirty; offline and credential failures are reported clearly."""

from __future__ import annotations

import hashlib
import json

import pytest
from test_addon_support import (
    configure_prefs,
    create_batch_resources,
    drain,
    ensure_installed,
    mod,
    render_and_follow,
    reset_addon_state,
    runtime,
    set_online,
)

bpy = pytest.importorskip("bpy")


@pytest.fixture
def addon(aws):
    ensure_installed()
    reset_addon_state()
    set_online(True)
    yield
    reset_addon_state()
    set_online(False)


@pytest.fixture
def batch(addon, aws, aws_settings, s3_bucket):
    resources = create_batch_resources(aws_settings)
    configure_prefs(aws.endpoint, s3_bucket, resources)
    return resources


def _open_with_unsaved_changes(path):
    bpy.ops.wm.open_mainfile(filepath=str(path))
    scene = bpy.context.scene
    scene.frame_end = 12
    scene.render.resolution_x = 48
    marker = bpy.data.objects.new("UnsavedMarker", None)
    scene.collection.objects.link(marker)
    scene.awsbatch.chunk_size = 5
    bpy.ops.ed.undo_push(message="unsaved edit")  # what the UI does after an edit
    assert bpy.data.is_dirty
    return scene


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_submit_uses_the_in_memory_scene_and_leaves_the_file_alone(batch, aws_settings, s3_bucket, tiny_scene):
    from addon.core.aws.session import client
    from addon.core.jobspec import JobSpec

    before = _sha(tiny_scene)
    _open_with_unsaved_changes(tiny_scene)

    assert bpy.ops.awsbatch.submit() == {"FINISHED"}
    assert runtime().submitting
    drain(timeout=90, until=lambda: not runtime().submitting)
    drain(timeout=30)

    rt = runtime()
    assert rt.submit_error == ""
    # the user's document: same bytes on disk, still marked as changed, same path
    assert _sha(tiny_scene) == before
    assert bpy.data.is_dirty
    assert bpy.data.filepath == str(tiny_scene)
    # the job: a row for it, a record on disk, the spec in the bucket with the unsaved range
    assert len(rt.jobs) == 1
    row = rt.jobs[0]
    assert row.frames_total == 12
    records = mod("core.records").RecordStore(mod("blender.config").records_dir()).list(str(tiny_scene))
    assert [r.submission_id for r in records] == [row.submission_id]
    record = records[0]
    s3 = client("s3", aws_settings)
    bucket, key = record.spec_uri[5:].split("/", 1)
    spec = JobSpec.from_json(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert spec.frames == list(range(1, 13))
    assert spec.slices == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12]]
    assert spec.render.width == 48
    # AWS Batch got an array job of three children
    jobs = client("batch", aws_settings).describe_jobs(jobs=[record.jobs["render_job_id"]])["jobs"]
    assert jobs[0]["arrayProperties"]["size"] == 3
    # the uploaded .blend holds the unsaved object (checked last: opening it replaces the document)
    blend_key = spec.inputs.uri[5:].split("/", 1)[1] + spec.inputs.files[spec.inputs.main_blend]
    uploaded = tiny_scene.parent.parent / "uploaded.blend"
    uploaded.write_bytes(s3.get_object(Bucket=s3_bucket, Key=blend_key)["Body"].read())
    bpy.ops.wm.open_mainfile(filepath=str(uploaded))
    assert "UnsavedMarker" in bpy.data.objects
    assert bpy.context.scene.frame_end == 12


def test_offline_submit_is_refused_without_network(batch, tiny_scene, aws):
    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    set_online(False)
    with pytest.raises(RuntimeError, match="Online access is off"):
        bpy.ops.awsbatch.submit()
    assert "Allow Online Access" in runtime().submit_error
    assert not mod("blender.background").busy()
    # nothing reached the endpoint: the bucket is still empty
    from addon.core.aws.session import AwsSettings, client

    s3 = client("s3", AwsSettings(region="us-east-1", endpoint_url=aws.endpoint))
    assert s3.list_objects_v2(Bucket="abr-test").get("KeyCount", 0) == 0


def test_missing_credentials_are_reported(batch, tiny_scene, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    assert bpy.ops.awsbatch.submit() == {"FINISHED"}  # the check happens off the main thread
    drain(timeout=60)
    error = runtime().submit_error
    assert "credentials" in error.lower(), error
    assert "aws configure" in error
    assert not runtime().submitting


def test_scene_without_camera_is_refused(addon, tmp_path):
    from tests.helpers import make_scene

    path = make_scene(tmp_path / "nocam.blend", "--frames", "3", "--no-camera")
    bpy.ops.wm.open_mainfile(filepath=str(path))
    configure_prefs("http://127.0.0.1:9", "abr-test", {}, backend="LOCAL")
    with pytest.raises(RuntimeError, match="no camera"):
        bpy.ops.awsbatch.submit()
    assert not mod("blender.background").busy()


def test_incomplete_preferences_say_what_to_fill(addon, tiny_scene):
    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    configure_prefs("http://127.0.0.1:9", "", {}, backend="AWS")
    with pytest.raises(RuntimeError, match="Bucket, Job queue"):
        bpy.ops.awsbatch.submit()
    assert "Connect" in runtime().submit_error


def test_submit_options_follow_the_panel(addon, tiny_scene):
    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    s = bpy.context.scene.awsbatch
    s.use_frames_override = True
    s.frames = "1-3, 9"
    s.chunk_size = 0  # -> the preferences' default
    s.video_codec = "h265"
    s.device = "CPU"
    configure_prefs("", "b", {}, backend="AWS")
    options = mod("blender.ops_submit").build_options(bpy.context.scene, mod("blender.config").prefs())
    assert (options.frames, options.chunk_size, options.video_codec, options.device) == ("1-3, 9", 10, "h265", "CPU")
    s.use_frames_override = False
    s.video_codec = "SCENE"
    options = mod("blender.ops_submit").build_options(bpy.context.scene, mod("blender.config").prefs())
    assert (options.frames, options.video_codec) == ("", "")
    assert json.dumps(options.__dict__)  # plain data: safe to hand to the thread


def test_cancelled_upload_submits_nothing_and_cleans_up(batch, aws, tiny_scene, tmp_path):
    """The thread's submit with its cancel event already set (what Cancel/Esc do)."""
    import threading

    from addon.core.aws.session import AwsSettings, client

    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    config, ops, tasks = mod("blender.config"), mod("blender.ops_submit"), mod("blender.tasks")
    bg = mod("blender.background")
    with pytest.raises(RuntimeError, match="No upload is running"):
        bpy.ops.awsbatch.cancel_submit()  # poll() explains why it is greyed out
    temp = tmp_path / "copy"
    temp.mkdir()
    blend_copy = ops.save_copy(str(temp))
    snapshot = mod("blender.snapshot").snapshot_scene(bpy.context.scene, blend_path=str(tiny_scene))
    options = ops.build_options(bpy.context.scene, config.prefs())
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(mod("core.submit.options").SubmissionCancelled):
        tasks.submit(blend_copy, snapshot, options, config.target(bpy.context.scene), config.records_dir(),
                     str(temp), cancel=cancel)
    assert not temp.exists()  # the saved copy is removed whatever happens
    assert not [m for m in bg.drain_pending() if isinstance(m, bg.SubmitDone)]
    s3 = client("s3", AwsSettings(region="us-east-1", endpoint_url=aws.endpoint))
    assert not [o["Key"] for o in s3.list_objects_v2(Bucket="abr-test").get("Contents", [])
                if o["Key"].endswith("spec.json")]
    assert mod("core.records").RecordStore(config.records_dir()).list() == []


def test_render_on_this_computer_end_to_end(addon, tiny_scene, tmp_path, monkeypatch):
    """Backend 'This Computer': submit, follow to SUCCEEDED with the timer, download the video."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # the local store lives there
    set_online(False)  # the local backend needs no network
    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    configure_prefs("", "", {}, backend="LOCAL")
    s = bpy.context.scene.awsbatch
    s.use_frames_override = True
    s.frames = "1-3"
    s.chunk_size = 2
    row = render_and_follow(60, 150)
    assert (row.backend, row.frames_total) == ("local", 3)
    assert row.state == "SUCCEEDED", (row.state, row.message, row.error)
    assert row.frames_done == 3 and row.video_uri
    assert bpy.ops.awsbatch.download(submission_id=row.submission_id, what="VIDEO",
                                     directory=str(tmp_path / "dl")) == {"FINISHED"}
    drain(timeout=30)
    video = tmp_path / "dl" / row.downloaded.rsplit("/", 1)[-1]
    assert row.downloaded == str(video) and video.suffix == ".mp4", (row.downloaded, row.error)
    assert video.is_file() and video.read_bytes()[4:8] == b"ftyp"  # an MP4 container


def test_a_never_saved_file_can_be_submitted(batch, aws_settings):
    from addon.core.aws.session import client
    from addon.core.jobspec import JobSpec

    bpy.ops.wm.read_homefile(use_empty=True)
    ensure_installed()  # reading the home file must not lose the add-on
    assert bpy.data.filepath == ""
    scene = bpy.context.scene
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    scene.frame_start, scene.frame_end = 1, 4
    assert bpy.ops.awsbatch.submit() == {"FINISHED"}
    drain(timeout=90, until=lambda: not runtime().submitting)
    drain(timeout=30)
    rt = runtime()
    assert rt.submit_error == ""
    assert bpy.data.filepath == ""  # still a new, unsaved document
    assert [r.frames_total for r in rt.jobs] == [4]
    record = mod("core.records").RecordStore(mod("blender.config").records_dir()).list("")[0]
    assert record.source_blend == ""
    bucket, key = record.spec_uri[5:].split("/", 1)
    spec = JobSpec.from_json(client("s3", aws_settings).get_object(Bucket=bucket, Key=key)["Body"].read())
    assert spec.inputs.main_blend.endswith(".blend") and spec.frames == [1, 2, 3, 4]
