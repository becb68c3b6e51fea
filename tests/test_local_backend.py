"""The local backend, end to end with the real worker, real Blender (bpy) and real ffmpeg."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from addon.core.backends.base import SubmissionRecord
from addon.core.backends.local.backend import LocalBackend, wait
from addon.core.backends.local.processes import supervisor_pid
from addon.core.backends.local.state import LocalBackendError, default_concurrency, read_state
from addon.core.records import RecordStore
from addon.core.storage import FileStore
from tests.helpers import make_scene, stage_submission

ROOT = Path(__file__).resolve().parent.parent


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
         "stream=codec_name,nb_read_frames,r_frame_rate,width,height", "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )
    return json.loads(out.stdout)["streams"][0]


def frame_files(spec) -> dict[int, os.stat_result]:
    folder = Path(spec.output.frames_uri[len("file://"):])
    return {int(p.stem.split("_")[1]): p.stat() for p in folder.glob("frame_*.png")} if folder.is_dir() else {}


def processes_with(marker: str) -> list[int]:
    """Pids of live processes whose environment or command line mentions ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[0] == "Z":
                continue
            blob = (entry / "environ").read_bytes() + (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in blob:
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def slow_scene(tmp_path_factory) -> Path:
    """Slower frames (more samples, more pixels) so a test can act while a slice runs."""
    return make_scene(tmp_path_factory.mktemp("slow") / "slow.blend", "--frames", "12", "--size", "160x90",
                      "--samples", "48")


def test_end_to_end_two_slices_and_a_valid_mp4(tiny_scene, tmp_path):
    spec, spec_uri = stage_submission(tmp_path / "store", tiny_scene, [range(1, 13), range(13, 25)])
    backend = LocalBackend(concurrency=2)
    record = backend.submit(spec, spec_uri, source_blend=str(tiny_scene))
    assert record.slice_count == 2 and record.frames_total == 24
    status = wait(backend, record, timeout=300)
    assert status.state == "SUCCEEDED", (status, backend.logs(record))
    assert status.frames_done == 24
    assert status.chunk_counts == {"SUCCEEDED": 2}
    assert status.stitch_state == "SUCCEEDED"
    assert status.latest_frame == 24
    assert status.seconds_per_frame and status.seconds_per_frame > 0
    assert status.eta_seconds == 0.0
    assert status.video_uri.endswith("/video/tiny.mp4")
    info = ffprobe(Path(status.video_uri[len("file://"):]))
    assert info["codec_name"] == "h264"
    assert int(info["nb_read_frames"]) == 24
    assert info["r_frame_rate"] == "24/1"
    assert sorted(frame_files(spec)) == list(range(1, 25))
    # Each slice ran once, as its own worker process.
    state = read_state(Path(record.jobs["state_dir"]))
    assert [t.attempts for t in state.slices] == [1, 1]
    assert not processes_with(spec_uri)


def test_killed_slice_is_retried_and_renders_only_missing_frames(slow_scene, tmp_path):
    spec, spec_uri = stage_submission(tmp_path / "store", slow_scene, [range(1, 13)], video=False,
                                      size=(160, 90), submission_id="sub-kill")
    backend = LocalBackend(concurrency=1, max_attempts=3)
    record = backend.submit(spec, spec_uri)
    state_dir = Path(record.jobs["state_dir"])
    deadline = time.monotonic() + 120
    while not frame_files(spec):  # wait for the first frame to land, then kill the slice
        assert time.monotonic() < deadline, backend.logs(record)
        time.sleep(0.02)
    worker_pid = read_state(state_dir).slices[0].pid
    assert worker_pid
    os.killpg(worker_pid, signal.SIGKILL)
    before = frame_files(spec)
    assert 0 < len(before) < 12, "the slice must be killed mid-way"
    status = wait(backend, record, timeout=300)
    assert status.state == "SUCCEEDED", backend.logs(record)
    after = frame_files(spec)
    assert sorted(after) == list(range(1, 13))
    # Frames finished before the kill were not rendered or written again.
    for frame, st in before.items():
        assert (after[frame].st_ino, after[frame].st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    state = read_state(state_dir)
    assert state.slices[0].attempts == 2
    second_log = Path(state.slices[0].log).read_text()
    assert "attempt-2" in state.slices[0].log
    for frame in before:
        assert f"Frame {frame} rendered" not in second_log


def test_cancel_leaves_no_worker_process_behind(slow_scene, tmp_path):
    spec, spec_uri = stage_submission(tmp_path / "store", slow_scene, [range(1, 7), range(7, 13)],
                                      size=(160, 90), submission_id="sub-cancel")
    backend = LocalBackend(concurrency=2)
    record = backend.submit(spec, spec_uri)
    state_dir = Path(record.jobs["state_dir"])
    deadline = time.monotonic() + 60
    while not all(t.pid for t in read_state(state_dir).slices):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert processes_with(spec_uri)
    backend.cancel(record)
    time.sleep(0.2)
    assert processes_with(spec_uri) == []
    status = backend.status(record)
    assert status.state == "CANCELLED"
    assert status.finished
    assert read_state(state_dir).state == "CANCELLED"


def test_render_survives_its_submitter_and_a_new_reader_sees_it(tiny_scene, tmp_path):
    """Submit from a short-lived process (like closing Blender), then follow from here."""
    records = tmp_path / "records"
    _spec, spec_uri = stage_submission(tmp_path / "store", tiny_scene, [range(1, 9), range(9, 17)],
                                      submission_id="sub-detached")
    code = (
        "import sys; from addon.core.jobspec import JobSpec; from addon.core.storage import FileStore;"
        "from addon.core.backends.local.backend import LocalBackend; from addon.core.records import RecordStore;"
        f"spec = JobSpec.from_json(FileStore().get_bytes({spec_uri!r}));"
        f"rec = LocalBackend(concurrency=1).submit(spec, {spec_uri!r});"
        f"RecordStore({str(records)!r}).save(rec)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=ROOT)
    record = RecordStore(records).load("sub-detached")  # a fresh reader, from disk
    pid = supervisor_pid(Path(record.jobs["state_dir"]))
    assert pid
    first = LocalBackend().status(record)
    assert first.state in ("SUBMITTED", "RUNNABLE", "RUNNING", "SUCCEEDED")
    status = wait(LocalBackend(), record, timeout=300)
    assert status.state == "SUCCEEDED"
    assert status.frames_done == 16


def test_a_failing_slice_is_retried_up_to_the_limit_then_reported(tmp_path):
    broken = tmp_path / "broken.blend"
    broken.write_bytes(b"BLENDER-v502 this is not a blend file")
    spec, spec_uri = stage_submission(tmp_path / "store", broken, [[1, 2]], submission_id="sub-broken")
    backend = LocalBackend(max_attempts=2)
    record = backend.submit(spec, spec_uri)
    status = wait(backend, record, timeout=120)
    assert status.state == "FAILED"
    assert status.failed_slices == [0]
    assert status.stitch_state == "FAILED"
    state = read_state(Path(record.jobs["state_dir"]))
    assert state.slices[0].attempts == 1, "a content error is not retried"
    assert backend.logs(record).strip(), "the failed slice's log is available"


def test_bad_spec_path_gives_a_clear_error(tiny_scene, tmp_path):
    spec, spec_uri = stage_submission(tmp_path / "store", tiny_scene, [[1]])
    with pytest.raises(LocalBackendError, match=r"No job spec at file:///nowhere/spec\.json"):
        LocalBackend().submit(spec, "file:///nowhere/spec.json")
    with pytest.raises(LocalBackendError, match="submit with a file:// store"):
        LocalBackend().submit(spec, "s3://bucket/submissions/x/spec.json")
    record = SubmissionRecord(
        submission_id="gone", backend="local", spec_uri=spec_uri, created_at="", source_blend="",
        frames_total=1, slice_count=1, jobs={"state_dir": str(tmp_path / "moved-away")},
    )
    with pytest.raises(LocalBackendError, match="moved or deleted"):
        LocalBackend().status(record)
    with pytest.raises(LocalBackendError, match="between 1 and 10"):
        LocalBackend(max_attempts=0)


def test_default_concurrency_is_cores_over_threads():
    cores = os.cpu_count() or 1
    assert default_concurrency(1) == cores
    assert default_concurrency(0) == 1  # automatic threads use every core
    assert default_concurrency(cores * 4) == 1


def test_store_listing_ignores_partial_frames(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "frame_000001.png").write_bytes(b"x")
    (folder / ".tmp-abc.part").write_bytes(b"half")
    listed = [o.uri for o in FileStore().list(f"file://{folder}/")]
    assert listed == [f"file://{folder}/frame_000001.png"]


def test_readme_demo_end_to_end_and_second_run_uploads_nothing(tmp_path):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    cmd = [sys.executable, str(ROOT / "demo" / "run_demo.py"), "--frames", "8", "--size", "64x36",
           "--samples", "2", "--out", str(tmp_path / "out")]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    video = tmp_path / "out" / "demo.mp4"
    assert f"Video: {video}" in first.stdout
    assert "8/8 frames" in first.stdout + first.stderr
    info = ffprobe(video)
    assert (info["codec_name"], int(info["nb_read_frames"]), info["r_frame_rate"]) == ("h264", 8, "24/1")
    assert "uploaded 1 file(s)" in first.stdout
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "uploaded 0 file(s), 0 B" in second.stdout
    # Each run is its own submission, recorded where the CLI finds it.
    records = RecordStore(tmp_path / "data" / "aws-batch-render" / "submissions").list()
    assert len(records) == 2 and {r.backend for r in records} == {"local"}


def test_installed_extension_layout_exposes_addon_and_worker_to_children(tmp_path):
    """Inside Blender the package is bl_ext.<repo>.aws_batch_render with the worker bundled in
    it; the supervisor and workers still import `addon` and `worker` through import_root()."""
    import shutil

    ext = tmp_path / "extensions" / "user_default" / "aws_batch_render"
    shutil.copytree(ROOT / "addon", ext, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "worker", ext / "worker", ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "from aws_batch_render.core.backends.local.processes import process_env;"
        "print(json.dumps(process_env({'BLENDER_BIN': '/opt/blender/blender'})))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XDG_RUNTIME_DIR")}
    clean["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # the private link folder: not in the real home
    out = subprocess.run([sys.executable, "-I", "-c", code, str(ext.parent)], capture_output=True, text=True,
                         timeout=60, env=clean, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    env = json.loads(out.stdout)
    assert env["BLENDER_BIN"] == "/opt/blender/blender"
    root = Path(env["PYTHONPATH"].split(os.pathsep)[0])
    assert (root / "addon").resolve() == ext.resolve()
    probe = ("import addon.core.backends.local.supervisor, worker.render, addon.core.jobspec as j;"
             "print(j.__file__)")
    # -S: no site-packages, so the venv's own `addon`/`worker` (editable install) cannot answer.
    child = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, timeout=60,
                           env={"PYTHONPATH": env["PYTHONPATH"], "PATH": os.environ["PATH"]}, cwd=tmp_path)
    assert child.returncode == 0, child.stderr
    assert Path(child.stdout.strip()).resolve().is_relative_to(ext.resolve())


def test_a_reused_pid_is_never_taken_for_the_supervisor(tiny_scene, tmp_path):
    """After the render ends its pid may belong to anything: cancel and status must not
    signal or wait on it."""
    spec, spec_uri = stage_submission(tmp_path / "store", tiny_scene, [[1, 2]], video=False,
                                      submission_id="sub-reused")
    backend = LocalBackend()
    record = backend.submit(spec, spec_uri)
    assert wait(backend, record, timeout=120).state == "SUCCEEDED"
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        state_dir = Path(record.jobs["state_dir"])
        (state_dir / "supervisor.pid").write_text(str(bystander.pid))  # as if the pid were reused
        assert supervisor_pid(state_dir) == 0
        backend.cancel(record)
        assert bystander.poll() is None, "cancel signalled a process that is not the supervisor"
        assert backend.status(record).state == "SUCCEEDED"
    finally:
        bystander.kill()
        bystander.wait()
