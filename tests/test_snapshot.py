"""The scene snapshot: read in-process (the add-on's way) and in a child Blender (the
CLI's way) from a scene built with bpy at test time; both must give the same job spec."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from addon.core.submit.options import SubmitOptions
from addon.core.submit.scene_reader import SceneReadError, read_scene
from addon.core.submit.specbuild import build_spec

SCENE_SCRIPT = r'''
import os, sys
import bpy

out, wav, tex = sys.argv[1], sys.argv[2], sys.argv[3]
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
scene.name = "Shot"
scene.frame_start, scene.frame_end, scene.frame_step = 5, 20, 3
scene.render.fps, scene.render.fps_base = 30, 1.001
scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 200, 100, 50
scene.render.engine = "CYCLES"
scene.cycles.device = "GPU"
settings = scene.render.image_settings
if hasattr(settings, "media_type"):  # Blender 5.0+
    settings.media_type = "VIDEO"
settings.file_format = "FFMPEG"
scene.render.ffmpeg.format = "MKV"
scene.render.ffmpeg.codec = "H264"
scene.render.ffmpeg.constant_rate_factor = "HIGH"
scene.render.filepath = "//render/shot_"
cams = []
for i in range(2):
    cam = bpy.data.objects.new(f"Cam{i}", bpy.data.cameras.new(f"Cam{i}"))
    scene.collection.objects.link(cam)
    cams.append(cam)
scene.camera = cams[0]
for i, cam in enumerate(cams):
    marker = scene.timeline_markers.new(f"M{i}", frame=5 + 6 * i)
    marker.camera = cam
scene.timeline_markers.new("plain", frame=7)
editor = scene.sequence_editor_create()
strips = editor.strips if hasattr(editor, "strips") else editor.sequences
strips.new_sound("beep", wav, 1, 1)
ok = bpy.data.images.load(tex)
ok.use_fake_user = True
gone = bpy.data.images.new("gone", 4, 4)
gone.source = "FILE"
gone.filepath = "//tex/gone.png"
gone.use_fake_user = True
bpy.ops.wm.save_as_mainfile(filepath=out)
'''


@pytest.fixture(scope="module")
def shot(tmp_path_factory) -> Path:
    from test_packing import write_png, write_wav

    root = tmp_path_factory.mktemp("snapshot")
    wav = write_wav(root / "audio" / "beep.wav")
    tex = write_png(root / "tex" / "ok.png")
    out = root / "shot.blend"
    proc = subprocess.run(
        [sys.executable, "-c", SCENE_SCRIPT, str(out), str(wav), str(tex)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def spec_for(snapshot):
    return build_spec(
        snapshot, SubmitOptions(chunk_size=2), {"shot.blend": "a" * 64}, "shot.blend", "file:///tmp/abr/",
        "same-id", "2026-01-01T00:00:00+00:00", "0.1.0",
    )  # fmt: skip


def test_in_process_and_child_snapshots_give_the_same_spec(shot):
    import bpy

    from addon.blender.snapshot import snapshot_scene

    child = read_scene(shot)
    bpy.ops.wm.open_mainfile(filepath=str(shot), load_ui=False)
    try:
        here = snapshot_scene(bpy.context.scene, blend_path=bpy.data.filepath)
    finally:
        bpy.ops.wm.read_factory_settings(use_empty=True)
    assert here == child
    assert spec_for(here).to_json() == spec_for(child).to_json()

    expected_version = ".".join(str(v) for v in bpy.app.version)
    assert child.blender_version == expected_version
    assert (child.scene, child.frame_start, child.frame_end, child.frame_step) == ("Shot", 5, 20, 3)
    assert (child.fps_fraction.numerator, child.fps_fraction.denominator) == (30000, 1001)
    assert (child.width, child.height, child.engine, child.device) == (100, 50, "CYCLES", "GPU")
    assert child.is_movie and child.file_format == "FFMPEG"
    assert (child.ffmpeg_codec, child.ffmpeg_format, child.ffmpeg_crf) == ("H264", "MKV", "HIGH")
    assert child.output_path == os.path.join(str(shot.parent), "render", "shot_")
    assert (child.has_camera, child.camera_markers, child.has_audio) == (True, 2, True)
    assert child.blend_path == str(shot) and child.is_dirty is False
    assert child.missing_files == [str(shot.parent / "tex" / "gone.png")]

    spec = spec_for(child)
    assert spec.frames == [5, 8, 11, 14, 17, 20] and spec.slices[0] == [5, 8]
    video = spec.output.video
    assert (video.codec, video.container, video.quality) == ("h264", "mkv", 20)
    assert (video.fps_num, video.fps_den, video.width, video.height) == (30000, 1001, 100, 50)
    assert spec.render.device == "GPU" and video.name == "shot"


def test_reader_reports_a_broken_file_and_a_bad_blender(tmp_path, monkeypatch):
    bad = tmp_path / "broken.blend"
    bad.write_bytes(b"not a blend file at all")
    with pytest.raises(SceneReadError, match=r"broken\.blend"):
        read_scene(bad)
    with pytest.raises(SceneReadError, match="does not exist"):
        read_scene(tmp_path / "absent.blend")
    monkeypatch.setenv("BLENDER_PYTHON", str(tmp_path / "no-such-python"))
    with pytest.raises(SceneReadError, match="BLENDER_PYTHON"):
        read_scene(bad)


def test_unsaved_scene_has_no_output_folder_but_absolute_paths_stay():
    import bpy

    from addon.blender.snapshot import snapshot_scene

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.filepath = "//render/x_"
    snap = snapshot_scene(scene, is_dirty=True)
    assert snap.output_path == "" and snap.blend_path == "" and snap.is_dirty
    assert snap.has_camera is False and snap.camera_markers == 0 and snap.has_audio is False
    scene.render.filepath = "/tmp/abr-out/x_"
    assert snapshot_scene(scene).output_path == "/tmp/abr-out/x_"


def test_reader_drives_a_blender_executable_with_its_own_argv(shot, tmp_path, monkeypatch):
    """BLENDER_BIN: the argv a real ``blender`` gets (-b ... --python SCRIPT -- FILE).
    Here a stand-in executable runs that script with this interpreter's real bpy."""
    fake = tmp_path / "blender"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "$@" > "$(dirname "$0")/argv.txt"\n'
        'while [ "$1" != "--python" ]; do shift; done\n'
        'shift; script="$1"; shift\n'
        f'exec "{sys.executable}" "$script" "$@"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("BLENDER_BIN", str(fake))
    snap = read_scene(shot, scene="Shot")
    assert snap.scene == "Shot" and snap.frame_end == 20
    argv = (tmp_path / "argv.txt").read_text().split()
    assert argv[:2] == ["-b", "--factory-startup"] and argv[-4:] == ["--", str(shot), "--scene", "Shot"]
    with pytest.raises(SceneReadError, match="no scene named"):
        read_scene(shot, scene="Nope")


def test_missing_linked_library_and_texture_are_listed(tmp_path):
    from test_packing import build_project

    paths = build_project(tmp_path)
    (paths["project"] / "lib" / "props.blend").unlink()
    snap = read_scene(paths["main"])
    project = paths["project"]
    assert str(project / "lib" / "props.blend") in snap.missing_files
    assert str(project / "textures" / "missing.png") in snap.missing_files
    assert str(project / "textures" / "wood.png") not in snap.missing_files
