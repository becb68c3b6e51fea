"""Fault injection, the worker under a real render: a full scratch disk (a small tmpfs the
test mounts; tests run as root, and a failed mount FAILS the test), SIGTERM/SIGKILL mid-slice
then resume, and the S3 endpoint (a moto server of the test's own) killed mid-render and
mid-upload. Each asserts one clear line, the retryable exit, and no invalid frame counted."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from frame_images import png_bytes
from helpers import make_scene, start_moto_server
from test_worker_render import pack_job, progress_record, rendered_frames, run_worker, worker_env

from addon.core.exitcodes import RETRYABLE, SUCCESS
from addon.core.framecheck import check_frame_bytes
from addon.core.storage import open_store, path_to_uri

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def slow_scene(tmp_path_factory) -> Path:
    """128x72 at 300 samples: slow enough to act between frames."""
    return make_scene(tmp_path_factory.mktemp("slowf") / "slow.blend", "--frames", "6", "--size", "128x72",
                      "--samples", "300")  # fmt: skip


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 2 MB tmpfs as the worker's scratch disk; unmounted afterwards."""
    mount = tmp_path / "scratch"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the full-disk test (tests run as root): {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave: int = 0) -> None:
    """Write a filler file until the disk is full (or ``leave`` bytes are left)."""
    free = os.statvfs(folder)
    room = free.f_bavail * free.f_frsize - leave
    with open(folder / f"filler-{time.monotonic_ns()}", "wb") as fh:
        try:
            while room > 0:
                room -= fh.write(b"\0" * min(room, 1 << 16))
                fh.flush()
        except OSError:
            pass


def one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if " ERROR worker: " in line]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]


def assert_all_frames_valid(spec, size=(64, 36)) -> list[int]:
    store = open_store(spec.output.frames_uri)
    frames = []
    for obj in store.list(spec.output.frames_uri):
        check_frame_bytes(store.get_bytes(obj.uri), "PNG", *size)
        frames.append(int(obj.uri.rsplit("_", 1)[1][:6]))
    return sorted(frames)


# --- a full scratch disk ---------------------------------------------------------------------------


def test_scratch_full_before_fetching_is_one_retryable_line(tmp_path, small_tmpfs, tiny_scene):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, tiny_scene, [[1, 2]])
    fill(small_tmpfs)
    proc = run_worker(worker_env(spec_uri, 0, WORKER_SCRATCH=str(small_tmpfs)))
    assert proc.returncode == RETRYABLE, proc.stderr[-3000:]
    line = one_line_error(proc.stderr)
    pattern = r"is full \(fetching the packed inputs\): [\d.]+ (bytes|KB) free in .* needs about [\d.]+ [KM]B"
    assert re.search(pattern, line), line
    assert assert_all_frames_valid(spec) == []
    record = progress_record(spec, 0)
    assert (record.state, record.exit_code) == ("FAILED", RETRYABLE) and "scratch disk is full" in record.message


def test_scratch_full_while_blender_writes_uploads_no_broken_frame(tmp_path, small_tmpfs, tiny_scene):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, tiny_scene, [[1, 2, 3, 4]])
    blend_size = tiny_scene.stat().st_size
    stop = threading.Event()

    def fill_once_fetched() -> None:  # the inputs fit; then the disk fills before the first frame
        while not stop.is_set():
            for blend in small_tmpfs.glob("abr-render-*/pack/shots/scene.blend"):
                if blend.stat().st_size == blend_size:
                    fill(small_tmpfs)
                    return
            time.sleep(0.005)

    filler = threading.Thread(target=fill_once_fetched, daemon=True)
    filler.start()
    proc = run_worker(worker_env(spec_uri, 0, WORKER_SCRATCH=str(small_tmpfs)))
    stop.set()
    filler.join(5)
    assert proc.returncode == RETRYABLE, proc.stderr[-3000:]
    line = one_line_error(proc.stderr)
    assert "scratch disk is full" in line and "needs about" in line, line
    assert assert_all_frames_valid(spec) == [], "a frame written to a full disk is never uploaded"
    # with room again, the next attempt renders the whole slice
    for f in small_tmpfs.glob("filler-*"):
        f.unlink()
    again = run_worker(worker_env(spec_uri, 0, WORKER_SCRATCH=str(small_tmpfs), AWS_BATCH_JOB_ATTEMPT="2"))
    assert again.returncode == SUCCESS, again.stderr[-3000:]
    assert assert_all_frames_valid(spec) == [1, 2, 3, 4]


def test_resume_rerenders_empty_and_stub_frames(tmp_path, tiny_scene):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, tiny_scene, [[1, 2, 3]])
    store = open_store(root)
    store.put_bytes(b"", spec.frame_uri(1))  # what a full disk used to leave
    store.put_bytes(b"\x89PNG\r\n", spec.frame_uri(2))
    store.put_bytes(png_bytes(64, 36), spec.frame_uri(3))
    proc = run_worker(worker_env(spec_uri, 0))
    assert proc.returncode == SUCCESS, proc.stderr[-3000:]
    assert rendered_frames(proc.stderr) == [1, 2]
    assert assert_all_frames_valid(spec) == [1, 2, 3]


# --- signals mid-slice ---------------------------------------------------------------------------------


def _start(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "worker", "render"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True)  # fmt: skip


def _wait_for_frames(folder: Path, proc: subprocess.Popen[str], count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.is_dir() and len(list(folder.glob("frame_*.png"))) >= count:
            return
        if proc.poll() is not None:
            raise AssertionError(f"worker ended early ({proc.returncode}): {proc.communicate()[1][-3000:]}")
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("no frame appeared in time")


def test_sigterm_then_sigkill_mid_slice_then_resume_leaves_only_valid_frames(tmp_path, slow_scene):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, slow_scene, [[1, 2, 3, 4, 5, 6]], size=(128, 72))
    folder = Path(spec.output.frames_uri[len("file://") :])
    proc = _start(worker_env(spec_uri, 0))
    _wait_for_frames(folder, proc, 1)
    os.kill(proc.pid, signal.SIGTERM)  # the worker alone: it stops Blender and keeps finished frames
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == RETRYABLE
    assert "Interrupted by SIGTERM" in one_line_error(err)
    kept = assert_all_frames_valid(spec, (128, 72))
    assert 1 <= len(kept) < 6
    # the second attempt resumes, and dies by SIGKILL (no chance to clean up) after one more frame
    proc = _start(worker_env(spec_uri, 0, AWS_BATCH_JOB_ATTEMPT="2"))
    _wait_for_frames(folder, proc, len(kept) + 1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    kept_after_kill = assert_all_frames_valid(spec, (128, 72))
    assert set(kept) < set(kept_after_kill)
    again = run_worker(worker_env(spec_uri, 0, AWS_BATCH_JOB_ATTEMPT="3"), timeout=300)
    assert again.returncode == SUCCESS, again.stderr[-3000:]
    assert sorted(rendered_frames(again.stderr)) == sorted(set(range(1, 7)) - set(kept_after_kill))
    assert assert_all_frames_valid(spec, (128, 72)) == [1, 2, 3, 4, 5, 6]


# --- the S3 endpoint goes away ---------------------------------------------------------------------


@pytest.mark.parametrize("when", ["mid-render", "mid-upload"])
def test_s3_endpoint_killed_is_one_retryable_line_and_counts_nothing_false(tmp_path, slow_scene, when, monkeypatch):
    moto, endpoint = start_moto_server()
    try:
        env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
               "AWS_MAX_ATTEMPTS": "2", "AWS_RETRY_MODE": "standard"}  # fmt: skip
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        from addon.core.aws.session import AwsSettings, client

        client("s3", AwsSettings(region="us-east-1", endpoint_url=endpoint)).create_bucket(Bucket="faults")
        # frames of about a second each: the endpoint dies while a frame renders, not after the slice
        spec, spec_uri = pack_job("s3://faults/", slow_scene, [[1, 2, 3, 4, 5, 6]], size=(128, 72))
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        store = open_store("s3://faults/")  # the client is made before the worker starts: no delay at the kill
        list(store.list(spec.output.frames_uri))
        proc = _start(worker_env(spec_uri, 0, WORKER_SCRATCH=str(scratch), **env))
        deadline = time.monotonic() + 120
        uploaded: list[str] = []
        while time.monotonic() < deadline and proc.poll() is None:
            if when == "mid-render" and list(scratch.glob("abr-render-*/frames")):
                moto.kill()  # inputs fetched, Blender rendering the first frame: nothing uploaded yet
                break
            if when == "mid-upload":
                uploaded = [o.uri for o in store.list(spec.output.frames_uri)]
                if uploaded:
                    for f in uploaded:  # what reached the store before the endpoint dies is valid
                        check_frame_bytes(store.get_bytes(f), "PNG", 128, 72)
                    moto.kill()
                    break
            time.sleep(0.01)
        moto.kill()
        moto.wait(10)
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == RETRYABLE, err[-3000:]
        line = one_line_error(err)
        assert "Uploading frames failed" in line and "network is unreachable" in line, line
        assert "another attempt resumes" in line, line
        if when == "mid-render":
            assert rendered_frames(err) == [], err[-3000:]  # the log says "uploaded" only after the upload
        else:
            assert 1 <= len(uploaded) < 6, uploaded
    finally:
        moto.kill()
