"""Spec building: pure, deterministic, and faithful to the scene's settings."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from addon.core.errors import FrameRangeError, JobSpecError
from addon.core.jobspec import JobSpec
from addon.core.submit.options import SubmitOptions
from addon.core.submit.scene import SceneSnapshot
from addon.core.submit.specbuild import build_spec, new_submission_id, sanitize_name, submission_paths

SHA = "c" * 64
FILES = {"shots/a.blend": "a" * 64, "tex/wood.png": "b" * 64, "audio/mix.flac": SHA}


def snap(**overrides) -> SceneSnapshot:
    base = dict(
        blender_version="5.2.3", scene="Scene", frame_start=1, frame_end=24, frame_step=1,
        fps=24, fps_base=1.0, resolution_x=1920, resolution_y=1080, resolution_percentage=50,
        engine="CYCLES", blend_path="/home/ann/films/shots/a.blend",
    )  # fmt: skip
    base.update(overrides)
    return SceneSnapshot(**base)


def build(snapshot: SceneSnapshot | None = None, options: SubmitOptions | None = None, **kw) -> JobSpec:
    args = dict(
        manifest_files=FILES, main_blend="shots/a.blend", root_uri="s3://bucket/",
        submission_id="a-20260101-000000-abcdef", created_at="2026-01-01T00:00:00+00:00",
        tool_version="0.1.0",
    )  # fmt: skip
    args.update(kw)
    return build_spec(snapshot or snap(), options or SubmitOptions(), **args)


def test_layout_and_defaults():
    spec = build()
    base = "s3://bucket/submissions/a-20260101-000000-abcdef/"
    assert spec.inputs.uri == "s3://bucket/inputs/"
    assert spec.inputs.files == FILES and spec.inputs.main_blend == "shots/a.blend"
    assert (spec.output.frames_uri, spec.output.progress_uri, spec.output.video_uri) == (
        "s3://bucket/frames/a-20260101-000000-abcdef/", base + "progress/", base + "video/",
    )
    assert submission_paths("s3://bucket/", "x")["spec"] == "s3://bucket/submissions/x/spec.json"
    assert spec.slices == [list(range(1, 11)), list(range(11, 21)), [21, 22, 23, 24]]
    video = spec.output.video
    assert (video.codec, video.container, video.quality, video.name) == ("h264", "mp4", 20, "a")
    assert (video.fps_num, video.fps_den, video.width, video.height) == (24, 1, 960, 540)
    assert (spec.render.engine, spec.render.device, spec.render.scene) == ("CYCLES", "CPU", "Scene")
    assert (spec.render.width, spec.render.height, spec.render.threads) == (960, 540, 0)
    assert spec.source_name == "a.blend" and spec.blender_version == "5.2.3"
    assert JobSpec.from_json(spec.to_json()) == spec  # valid and round-trips


def test_same_inputs_give_the_same_spec():
    assert build().to_json() == build().to_json()


def test_scene_step_and_frame_override():
    assert build(snap(frame_start=3, frame_end=12, frame_step=4)).frames == [3, 7, 11]
    spec = build(options=SubmitOptions(frames="1-5,40,50-60x5", chunk_size=3))
    assert spec.slices == [[1, 2, 3], [4, 5, 40], [50, 55, 60]]
    # The scene's step applies to override ranges without their own xN, as the add-on says.
    stepped = build(snap(frame_step=2), SubmitOptions(frames="1-10,20-24x1", chunk_size=50))
    assert stepped.frames == [1, 3, 5, 7, 9, 20, 21, 22, 23, 24]
    with pytest.raises(FrameRangeError):
        build(options=SubmitOptions(frames="5-1"))
    with pytest.raises(FrameRangeError):
        build(snap(frame_start=10, frame_end=1))


def test_ntsc_frame_rate_is_exact():
    video = build(snap(fps=30, fps_base=1.001)).output.video
    assert (video.fps_num, video.fps_den) == (30000, 1001)


@pytest.mark.parametrize(
    ("codec", "fmt", "crf", "expected"),
    [
        ("H264", "MPEG4", "HIGH", ("h264", "mp4", 20)),
        ("H264", "MKV", "MEDIUM", ("h264", "mkv", 23)),
        ("H265", "QUICKTIME", "LOW", ("h265", "mov", 26)),
        ("PRORES", "QUICKTIME", "NONE", ("prores", "mov", 20)),
        ("PRORES", "MPEG4", "NONE", ("prores", "mov", 20)),  # ProRes cannot go in MP4
        ("WEBM", "WEBM", "PERC_LOSSLESS", ("vp9", "webm", 17)),
        ("AV1", "MKV", "LOSSLESS", ("av1", "mkv", 0)),
        ("H264", "WEBM", "VERYLOW", ("h264", "mp4", 29)),  # WebM holds no H.264
        ("MPEG2", "MPEG2", "LOWEST", ("h264", "mp4", 32)),  # unsupported codec: the default
    ],
)
def test_movie_scene_video_settings_follow_ffmpeg(codec, fmt, crf, expected):
    scene = snap(is_movie=True, file_format="FFMPEG", ffmpeg_codec=codec, ffmpeg_format=fmt, ffmpeg_crf=crf)
    video = build(scene).output.video
    assert (video.codec, video.container, video.quality) == expected


def test_image_scene_ignores_ffmpeg_settings_and_options_win():
    scene = snap(is_movie=False, ffmpeg_codec="PRORES", ffmpeg_format="QUICKTIME", ffmpeg_crf="LOW")
    video = build(scene).output.video
    assert (video.codec, video.container, video.quality) == ("h264", "mp4", 20)
    options = SubmitOptions(video_codec="h265", video_container="mkv", video_quality=30, allow_partial_video=True)
    video = build(scene, options).output.video
    assert (video.codec, video.container, video.quality, video.allow_partial) == ("h265", "mkv", 30, True)


def test_options_device_threads_format_and_no_video():
    spec = build(snap(device="GPU"), SubmitOptions(threads=8, image_format="OPEN_EXR", video=False))
    assert (spec.render.device, spec.render.threads, spec.output.image_format) == ("GPU", 8, "OPEN_EXR")
    assert spec.output.video is None
    assert build(snap(device="GPU"), SubmitOptions(device="CPU")).render.device == "CPU"


def test_audio_track_and_output_path_note():
    spec = build(snap(output_path="/home/ann/renders/a_"), audio_path="audio/mix.flac")
    assert spec.output.video.audio.path == "audio/mix.flac"
    assert spec.extra == {"scene_output_path": "/home/ann/renders/a_"}
    with pytest.raises(JobSpecError, match="audio"):
        build(audio_path="audio/not-packed.flac")


def test_unsaved_scene_names_video_after_the_packed_file():
    spec = build(snap(blend_path=""), main_blend="shots/a.blend")
    assert spec.source_name == "a.blend" and spec.output.video.name == "a"


def test_unknown_engine_is_refused_naming_it():
    with pytest.raises(JobSpecError, match="OCTANE"):
        build(snap(engine="OCTANE"))


def test_submission_ids_are_new_valid_and_named_after_the_file():
    now = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    ids = {new_submission_id("/x/My Shot (v2).blend", now) for _ in range(50)}
    assert len(ids) == 50
    for sid in ids:
        assert re.fullmatch(r"My-Shot-v2-20260304-050607-[0-9a-f]{6}", sid), sid
        build(submission_id=sid)  # the spec accepts it
    assert new_submission_id("").startswith("untitled-")
    assert sanitize_name("über/..//") == "ber"
    assert sanitize_name("///") == "untitled"
    assert len(new_submission_id("x" * 300)) <= 128


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, 100),
    length=st.integers(0, 300),
    step=st.integers(1, 7),
    chunk=st.integers(1, 40),
)
def test_every_scene_frame_is_in_exactly_one_slice(start, length, step, chunk):
    scene = snap(frame_start=start, frame_end=start + length, frame_step=step)
    spec = build(scene, SubmitOptions(chunk_size=chunk))
    assert spec.frames == list(range(start, start + length + 1, step))
    assert all(0 < len(s) <= chunk for s in spec.slices)


@pytest.mark.parametrize(
    ("fps", "base", "expected"),
    [(30, 1.00100004673, (30000, 1001)), (24, 1.001, (24000, 1001)), (60, 1.0, (60, 1)), (25, 1.0, (25, 1)),
     (48, 2.0, (24, 1)), (24, 0.99999994, (24, 1))],
)
def test_float32_fps_base_gives_the_exact_rate(fps, base, expected):
    video = build(snap(fps=fps, fps_base=base)).output.video
    assert (video.fps_num, video.fps_den) == expected


def test_a_render_cropped_to_its_border_is_checked_for_no_size():
    """Frames cropped to the render border are smaller than the resolution: the spec then asks
    the worker for no particular size (0 x 0), which the frame check accepts, instead of
    refusing every frame as the wrong size."""
    from addon.core.framecheck import FrameInvalid, check_frame_bytes
    from tests.frame_images import png_bytes

    full = build()
    cropped = build(snap(facts={"crop_to_border": True}))
    assert (full.render.width, full.render.height) == (960, 540)
    assert (cropped.render.width, cropped.render.height) == (0, 0)
    assert cropped.output.video.width == 960  # the video settings are unchanged
    border_frame = png_bytes(300, 120)
    with pytest.raises(FrameInvalid):
        check_frame_bytes(border_frame, "PNG", full.render.width, full.render.height)
    assert check_frame_bytes(border_frame, "PNG", cropped.render.width, cropped.render.height) == (300, 120)


def test_the_scene_facts_say_when_the_render_is_cropped_to_its_border():
    import bpy

    from addon.blender.preflight_facts import gather_facts

    scene = bpy.data.scenes.new("abr-border-test")
    try:
        assert gather_facts(scene)["crop_to_border"] is False
        scene.render.use_border = True
        assert gather_facts(scene)["crop_to_border"] is False  # border without crop: full-size frames
        scene.render.use_crop_to_border = True
        assert gather_facts(scene)["crop_to_border"] is True
    finally:
        bpy.data.scenes.remove(scene)
