"""The scene's sound reaches the video: mixed down in a child Blender at submit, packed like
any input, muxed in by stitch (real bpy, real ffmpeg, the local backend)."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from addon.core.backends.local.backend import LocalBackend, wait
from addon.core.storage import FileStore, path_to_uri
from addon.core.submit.options import SubmitOptions
from addon.core.submit.pipeline import prepare_submission
from addon.core.submit.scene_reader import read_scene
from addon.core.submit.soundtrack import SOUNDTRACK
from tests.helpers import make_scene

ADD_SOUND = r"""
import sys, bpy
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
scene = bpy.context.scene
editor = scene.sequence_editor_create()
strips = editor.strips if hasattr(editor, "strips") else editor.sequences  # 5.x / 4.x
strips.new_sound("tone", sys.argv[2], 1, 1)
bpy.ops.file.make_paths_relative()
bpy.ops.wm.save_mainfile()
"""


@pytest.fixture(scope="module")
def sound_scene(tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("sound")
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
                    str(project / "tone.wav")], check=True, timeout=60)
    blend = make_scene(project / "sound.blend", "--frames", "12", "--size", "64x36", "--samples", "1")
    subprocess.run([sys.executable, "-c", ADD_SOUND, str(blend), str(project / "tone.wav")], check=True,
                   capture_output=True, timeout=120)
    return blend


def probe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def test_sound_is_mixed_down_packed_and_muxed_into_the_video(sound_scene, tmp_path):
    snapshot = read_scene(sound_scene)
    assert snapshot.has_audio
    root = path_to_uri(tmp_path / "store", directory=True)
    spec, spec_uri, report = prepare_submission(
        sound_scene, snapshot, SubmitOptions(chunk_size=6, threads=1), root
    )
    assert spec.output.video.audio is not None and spec.output.video.audio.path == SOUNDTRACK
    assert SOUNDTRACK in spec.inputs.files and "tone.wav" in spec.inputs.files
    assert report.warnings == []
    mixed = tmp_path / "mixed.wav"
    FileStore().get_file(spec.input_uri(SOUNDTRACK), mixed)
    with wave.open(str(mixed)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert abs(seconds - 12 / 24) < 0.05  # the scene's 12 frames at 24 fps, not the tone's 2 s

    backend = LocalBackend(concurrency=2)
    status = wait(backend, backend.submit(spec, spec_uri), timeout=300)
    assert status.state == "SUCCEEDED", status
    info = probe(Path(status.video_uri[len("file://"):]))
    kinds = {s["codec_type"]: s for s in info["streams"]}
    assert kinds["video"]["codec_name"] == "h264"
    assert kinds["audio"]["codec_name"] == "aac"
    assert float(info["format"]["duration"]) < 0.7


def test_no_soundtrack_without_video_or_when_turned_off(sound_scene, tmp_path):
    snapshot = read_scene(sound_scene)
    root = path_to_uri(tmp_path / "store", directory=True)
    for options in (SubmitOptions(audio=False), SubmitOptions(video=False)):
        spec, _, _ = prepare_submission(sound_scene, snapshot, options, root)
        assert SOUNDTRACK not in spec.inputs.files
        assert spec.output.video is None or spec.output.video.audio is None


def test_a_failed_mixdown_leaves_the_video_silent_with_a_warning(sound_scene, tmp_path):
    snapshot = read_scene(sound_scene)
    root = path_to_uri(tmp_path / "store", directory=True)
    options = SubmitOptions(blender_bin=str(tmp_path / "no-such-blender"))
    spec, _, report = prepare_submission(sound_scene, snapshot, options, root)
    assert spec.output.video is not None and spec.output.video.audio is None
    assert len(report.warnings) == 1 and "The video will be silent" in report.warnings[0]
    assert "no-such-blender" in report.warnings[0]




def test_no_soundtrack_when_frames_skip(sound_scene, tmp_path):
    snapshot = read_scene(sound_scene)
    root = path_to_uri(tmp_path / "store", directory=True)
    spec, _, report = prepare_submission(sound_scene, snapshot, SubmitOptions(frames="1-12x2"), root)
    assert spec.output.video.audio is None and SOUNDTRACK not in spec.inputs.files
    assert "would not line up" in report.warnings[0]
