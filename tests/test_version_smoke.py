"""Smoke test on the oldest and the newest Blender the extension supports (run by
scripts/version_smoke.sh in a venv with that bpy; marker ``version_smoke``, not part of
the main suite, which runs on the two LTS versions): Blender's own installer installs the
built extension, a tiny scene is submitted on the local backend from the panel's
operator, followed to the end, and its video downloaded and ffprobed."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from test_addon_support import (
    configure_prefs,
    drain,
    ensure_installed,
    render_and_follow,
    reset_addon_state,
    set_online,
)

bpy = pytest.importorskip("bpy")
pytestmark = [pytest.mark.version_smoke, pytest.mark.timeout(600)]


def test_this_venv_runs_the_asked_blender():
    want = os.environ.get("AWSBR_SMOKE_BPY", "")
    if not want:
        pytest.fail("AWSBR_SMOKE_BPY is not set: run this through scripts/version_smoke.sh")
    assert bpy.app.version_string.split()[0] == want


def test_install_submit_locally_and_get_the_video(tiny_scene, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # the local store lives there
    ensure_installed()  # bpy.ops.extensions.package_install_files on the built zip
    reset_addon_state()
    set_online(False)  # the local backend needs no network
    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    configure_prefs("", "", {}, backend="LOCAL")
    s = bpy.context.scene.awsbatch
    s.use_frames_override = True
    s.frames = "1-3"
    s.chunk_size = 2
    row = render_and_follow(120, 300, pause=0.2)
    assert row.state == "SUCCEEDED", (row.state, row.message, row.error)
    assert bpy.ops.awsbatch.download(submission_id=row.submission_id, what="VIDEO",
                                     directory=str(tmp_path / "dl")) == {"FINISHED"}  # fmt: skip
    drain(timeout=30)
    video = tmp_path / "dl" / row.downloaded.rsplit("/", 1)[-1]
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=codec_name,width,height,nb_read_frames", "-of", "json", str(video)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    stream = json.loads(out.stdout)["streams"][0]
    assert int(stream["nb_read_frames"]) == 3 and (stream["width"], stream["height"]) == (64, 36), stream
    reset_addon_state()


def test_the_scenes_sound_reaches_the_video(tmp_path):
    """The bpy 4.2 wheel is built without Audaspace: the submit lists the sound strips and
    ffmpeg mixes them; a bpy with audio mixes down in Blender. Either way the video has sound."""
    from pathlib import Path

    from test_soundtrack import ADD_SOUND, probe

    from addon.core.backends.local.backend import LocalBackend, wait
    from addon.core.storage import path_to_uri
    from addon.core.submit.options import SubmitOptions
    from addon.core.submit.pipeline import prepare_submission
    from addon.core.submit.scene_reader import read_scene
    from tests.helpers import ROOT, make_scene

    has_audio = bpy.app.build_options.audaspace
    # a sound strip can only be added by a Blender with audio: the 4.5 LTS venv makes it
    maker = Path(os.sys.executable) if has_audio else ROOT / ".venv-blender45" / "bin" / "python"
    if not maker.is_file():
        pytest.fail(f"{maker} is missing: run scripts/bootstrap.sh all first")
    project = tmp_path / "sound"
    project.mkdir()
    blend = make_scene(project / "sound.blend", "--frames", "12", "--size", "64x36", "--samples", "1")
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
                    str(project / "tone.wav")], check=True, timeout=60)  # fmt: skip
    subprocess.run([str(maker), "-c", ADD_SOUND, str(blend), str(project / "tone.wav")], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    snapshot = read_scene(blend)
    assert snapshot.has_audio
    root = path_to_uri(tmp_path / "store", directory=True)
    spec, spec_uri, report = prepare_submission(blend, snapshot, SubmitOptions(chunk_size=6, threads=1), root)
    assert report.warnings == [] and spec.output.video.audio is not None, report.warnings
    backend = LocalBackend(concurrency=2)
    status = wait(backend, backend.submit(spec, spec_uri), timeout=300)
    assert status.state == "SUCCEEDED", status
    info = probe(Path(status.video_uri[len("file://") :]))
    kinds = {s["codec_type"]: s for s in info["streams"]}
    assert kinds["audio"]["codec_name"] == "aac" and kinds["video"]["codec_name"] == "h264"
    assert float(info["format"]["duration"]) < 0.7  # the scene's 12 frames, not the tone's 2 s
