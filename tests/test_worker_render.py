"""``python -m worker render`` end to end: real bpy in a child process, real stores.

Each test packs a scene generated with bpy into a store (moto S3 over HTTP or a file://
folder), writes a job spec and runs the worker as a subprocess with the environment
AWS Batch (or the local backend) sets.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from frame_images import png_bytes
from helpers import make_spec
from hypothesis import given
from hypothesis import strategies as st

from addon.core.exitcodes import CONTENT_ERROR, RETRYABLE, SUCCESS
from addon.core.jobspec import InputManifest, JobSpec
from addon.core.progress import SliceProgress
from addon.core.storage import join_uri, open_store, path_to_uri
from tests.helpers import make_scene
from worker.blender_process import blender_argv, describe_exit
from worker.cpu import container_cpu_limit, parse_cfs, parse_cpu_max, render_threads
from worker.inner_render import FRAME_TAG, format_event, frame_runs, parse_event
from worker.job import WorkerEnv

ROOT = Path(__file__).resolve().parent.parent
BLENDER_5 = None  # filled lazily: the bpy major version of this interpreter


def bpy_major() -> int:
    global BLENDER_5
    if BLENDER_5 is None:
        out = subprocess.run(
            [sys.executable, "-c", "import bpy; print(bpy.app.version[0])"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        BLENDER_5 = int(out.stdout.strip().splitlines()[-1])
    return BLENDER_5


# --- building packed jobs -----------------------------------------------------------------


def pack_job(
    root: str,
    blend: Path,
    slices: list[list[int]],
    *,
    engine: str = "CYCLES",
    device: str = "CPU",
    image_format: str = "PNG",
    threads: int = 1,
    submission_id: str = "sub-worker-1",
    size: tuple[int, int] = (64, 36),
) -> tuple[JobSpec, str]:
    """Upload ``blend`` content-addressed under ``root``, write a spec; returns (spec, spec URI).
    ``size`` is the scene's render size: the worker refuses frames of another size."""
    data = blend.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    spec = make_spec(root, submission_id=submission_id)
    spec.inputs = InputManifest(
        uri=join_uri(root, "inputs/"), files={"shots/scene.blend": digest}, main_blend="shots/scene.blend"
    )
    spec.slices = slices
    spec.output.image_format = image_format
    spec.render.engine = engine
    spec.render.device = device
    spec.render.threads = threads
    spec.render.width, spec.render.height = size
    spec.validate()
    store = open_store(root)
    store.put_bytes(data, spec.input_uri("shots/scene.blend"))
    spec_uri = join_uri(root, f"submissions/{submission_id}/spec.json")
    store.put_bytes(spec.to_json().encode(), spec_uri)
    return spec, spec_uri


def worker_env(spec_uri: str, index: int | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_BATCH_")}
    env["JOB_SPEC_URI"] = spec_uri
    if index is not None:
        env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
    env.update(extra)
    return env


def run_worker(env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", "render"],
        env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )  # fmt: skip


def frames_in_store(spec: JobSpec) -> dict[int, bytes]:
    store = open_store(spec.output.frames_uri)
    found = {}
    for obj in store.list(spec.output.frames_uri):
        name = obj.uri.rsplit("/", 1)[-1]
        found[int(name[6:12])] = store.get_bytes(obj.uri)
    return found


def progress_record(spec: JobSpec, index: int) -> SliceProgress:
    store = open_store(spec.output.progress_uri)
    return SliceProgress.from_json(store.get_bytes(spec.progress_record_uri(index)))


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def rendered_frames(stderr: str) -> list[int]:
    """Frames this run rendered and uploaded, from the worker's log."""
    out = []
    for line in stderr.splitlines():
        if "worker.render: Frame " in line and " rendered in " in line:
            out.append(int(line.split("worker.render: Frame ", 1)[1].split()[0]))
    return sorted(out)


@pytest.fixture(scope="module")
def slow_scene(tmp_path_factory) -> Path:
    """128x72 at 1000 samples: slow enough (~0.5 s a frame) to interrupt between frames."""
    return make_scene(tmp_path_factory.mktemp("slow") / "slow.blend", "--frames", "8", "--size", "128x72",
                      "--samples", "1000")  # fmt: skip


@pytest.fixture(scope="module")
def eevee_scene(tiny_scene_master, tmp_path_factory) -> Path:
    """The tiny scene with EEVEE at 1 sample (its default 64 take ~20 s on llvmpipe)."""
    out = tmp_path_factory.mktemp("eevee") / "eevee.blend"
    script = (
        "import bpy, sys\n"
        "bpy.ops.wm.open_mainfile(filepath=sys.argv[1])\n"
        "bpy.context.scene.eevee.taa_render_samples = 1\n"
        "bpy.ops.wm.save_as_mainfile(filepath=sys.argv[2])\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tiny_scene_master), str(out)], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def marker_scene(tiny_scene_master, tmp_path_factory) -> Path:
    """Markers bind 'Camera' at frame 1 and 'SkyCam' (looking up at an empty sky) at frame 3."""
    out = tmp_path_factory.mktemp("markers") / "markers.blend"
    script = (
        "import bpy, math, sys\n"
        "bpy.ops.wm.open_mainfile(filepath=sys.argv[1])\n"
        "scene = bpy.context.scene\n"
        "sky = bpy.data.objects.new('SkyCam', bpy.data.cameras.new('SkyCam'))\n"
        "sky.location = (0, 0, 30); sky.rotation_euler = (math.pi, 0, 0)\n"
        "scene.collection.objects.link(sky)\n"
        "m1 = scene.timeline_markers.new('A', frame=1); m1.camera = scene.camera\n"
        "m2 = scene.timeline_markers.new('B', frame=3); m2.camera = sky\n"
        "bpy.ops.wm.save_as_mainfile(filepath=sys.argv[2])\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tiny_scene_master), str(out)], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    return out


def gray_stddev(png: bytes) -> float:
    gray = subprocess.run(["ffmpeg", "-v", "error", "-i", "-", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                          input=png, capture_output=True, check=True).stdout  # fmt: skip
    mean = sum(gray) / len(gray)
    return (sum((v - mean) ** 2 for v in gray) / len(gray)) ** 0.5


@pytest.fixture(scope="module")
def no_camera_scene(tmp_path_factory) -> Path:
    return make_scene(tmp_path_factory.mktemp("nocam") / "nocam.blend", "--frames", "4", "--no-camera")


# --- pure parts -----------------------------------------------------------------------------


def test_frame_runs_cover_every_frame_once_in_order():
    assert frame_runs([1, 2, 3, 7, 9, 11, 12]) == [(1, 3, 1), (7, 11, 2), (12, 12, 1)]
    assert frame_runs([5]) == [(5, 5, 1)]
    assert frame_runs([-3, -1, 1, 2]) == [(-3, 1, 2), (2, 2, 1)]
    for frames in ([1, 2, 3, 4], [1, 3, 4, 10, 20, 30], [0, 5, 6, 8, 100]):
        expanded = [f for s, e, step in frame_runs(frames) for f in range(s, e + 1, step)]
        assert expanded == frames


@given(st.sets(st.integers(-1000, 1000), min_size=1, max_size=60))
def test_frame_runs_property_every_frame_exactly_once(frame_set):
    frames = sorted(frame_set)
    runs = frame_runs(frames)
    expanded = [f for s, e, step in runs for f in range(s, e + 1, step)]
    assert expanded == frames  # each frame once, in order, nothing extra
    assert all(step >= 1 and s <= e for s, e, step in runs)


def test_event_lines_round_trip_and_ignore_blender_chatter():
    line = format_event(FRAME_TAG, {"frame": 3, "path": "/x/frame_000003.png", "seconds": 0.21})
    assert parse_event(line) == (FRAME_TAG, {"frame": 3, "path": "/x/frame_000003.png", "seconds": 0.21})
    assert parse_event("Fra:1 Mem:12.00M | Rendering 1 / 4 samples") is None
    assert parse_event("ABR_FRAME not-json") is None
    assert parse_event("ABR_OTHER {}") is None


def test_cpu_quota_parsers_and_thread_choice(tmp_path):
    assert parse_cpu_max("200000 100000\n") == 2
    assert parse_cpu_max("150000 100000") == 2  # 1.5 CPUs: round up, never 0
    assert parse_cpu_max("max 100000") is None
    assert parse_cfs("-1", "100000") is None
    assert parse_cfs("400000\n", "100000\n") == 4
    (tmp_path / "cpu.max").write_text("300000 100000\n")
    assert container_cpu_limit(tmp_path) == 3
    assert render_threads(0, tmp_path, {}) == 3
    assert render_threads(5, tmp_path, {}) == 5  # the spec wins
    # The job's vCPUs (Batch sets no quota: a vCPU reservation is CPU shares) beat cpu.max.
    assert render_threads(0, tmp_path, {"RENDER_THREADS": "8"}) == 8
    assert render_threads(5, tmp_path, {"RENDER_THREADS": "8"}) == 5
    assert render_threads(0, tmp_path, {"RENDER_THREADS": "lots"}) == 3
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert container_cpu_limit(v1) == 2
    assert render_threads(0, tmp_path / "none", {}) == len(os.sched_getaffinity(0))


def test_blender_argv_binary_and_module():
    argv = blender_argv("/w/inner_render.py", blender_bin="/opt/blender/blender")
    assert argv[:3] == ["/opt/blender/blender", "-b", "--factory-startup"]
    assert argv[argv.index("--python") + 1] == "/w/inner_render.py"
    assert argv[argv.index("--") + 1 :] == ["--job", "-"]
    assert blender_argv("/w/inner_render.py", python="/venv/bin/python") == [
        "/venv/bin/python", "/w/inner_render.py", "--job", "-",
    ]  # fmt: skip
    assert describe_exit(-6) == "killed by signal 6 (SIGABRT)"
    assert describe_exit(1) == "exit status 1"


def test_env_without_spec_uri_is_a_content_error_and_index_defaults_to_zero():
    with pytest.raises(Exception) as err:
        WorkerEnv.from_env({})
    assert err.value.exit_code == CONTENT_ERROR
    assert "JOB_SPEC_URI" in str(err.value)
    env = WorkerEnv.from_env({"JOB_SPEC_URI": "file:///x/spec.json"})
    assert (env.array_index, env.attempt) == (0, 1)
    env = WorkerEnv.from_env({"JOB_SPEC_URI": "s3://b/s.json", "AWS_BATCH_JOB_ARRAY_INDEX": "7",
                              "AWS_BATCH_JOB_ATTEMPT": "3"})  # fmt: skip
    assert (env.array_index, env.attempt) == (7, 3)


# --- rendering for real ---------------------------------------------------------------------


@pytest.mark.slow
def test_slice_renders_exactly_its_frames_to_s3(s3_bucket, tiny_scene):
    spec, spec_uri = pack_job(f"s3://{s3_bucket}/", tiny_scene, [[1, 2], [3, 4, 5], [6]])
    proc = run_worker(worker_env(spec_uri, 1, AWS_BATCH_JOB_ATTEMPT="2"))
    assert proc.returncode == SUCCESS, proc.stderr[-3000:]
    frames = frames_in_store(spec)
    assert sorted(frames) == [3, 4, 5]
    assert all(png_size(data) == (64, 36) for data in frames.values())
    record = progress_record(spec, 1)
    assert (record.state, record.frames_done, record.frames_total, record.attempt) == ("SUCCEEDED", 3, 3, 2)
    assert record.seconds_per_frame and 0 < record.seconds_per_frame < 30
    assert record.started_at <= record.updated_at
    assert "attempt 2" in proc.stderr


@pytest.mark.slow
def test_resume_renders_only_missing_frames_and_falls_back_from_gpu(tmp_path, tiny_scene):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, tiny_scene, [[1, 2, 3, 4]], device="GPU")
    store = open_store(root)
    for f in (1, 3):  # valid frames count as done (an earlier attempt's); see test_faults_frames for invalid ones
        store.put_bytes(png_bytes(64, 36), spec.frame_uri(f))
    proc = run_worker(worker_env(spec_uri))  # no AWS_BATCH_JOB_ARRAY_INDEX: a plain job, index 0
    assert proc.returncode == SUCCESS, proc.stderr[-3000:]
    assert rendered_frames(proc.stderr) == [2, 4]
    frames = frames_in_store(spec)
    assert frames[1] == frames[3] == png_bytes(64, 36)  # untouched
    assert png_size(frames[2]) == png_size(frames[4]) == (64, 36)
    assert "2 already in the store, 2 to render" in proc.stderr
    # no GPU on this machine: CPU with a clear warning, recorded for the status display
    assert "no CUDA/OptiX device" in proc.stderr
    record = progress_record(spec, 0)
    assert record.state == "SUCCEEDED" and record.frames_done == 4
    assert "rendering on the CPU" in record.message
    # nothing left to do: a rerun renders nothing and still succeeds
    again = run_worker(worker_env(spec_uri, 0))
    assert again.returncode == SUCCESS, again.stderr[-3000:]
    assert rendered_frames(again.stderr) == []
    # the record keeps the earlier attempt's time per frame for the ETA
    assert progress_record(spec, 0).seconds_per_frame == pytest.approx(record.seconds_per_frame)


def _start_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "render"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        start_new_session=True,  # its own process group, as the local backend starts it
    )  # fmt: skip


def _wait_for_frames(spec: JobSpec, proc: subprocess.Popen[str], count: int, timeout: float = 90) -> None:
    folder = Path(spec.output.frames_uri[len("file://") :])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.is_dir() and len([p for p in folder.glob("frame_*.png")]) >= count:
            return
        if proc.poll() is not None:
            raise AssertionError(f"worker ended early ({proc.returncode}): {proc.communicate()[1][-3000:]}")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("no frame appeared in time")


@pytest.mark.slow
def test_killed_mid_slice_then_second_attempt_renders_only_the_rest(tmp_path, slow_scene):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, slow_scene, [[1, 2, 3, 4, 5]], size=(128, 72))
    proc = _start_worker(worker_env(spec_uri, 0))
    _wait_for_frames(spec, proc, 1)
    os.killpg(proc.pid, signal.SIGKILL)  # no chance to clean up: the whole group dies
    proc.communicate(timeout=30)
    kept = sorted(frames_in_store(spec))
    assert 1 <= len(kept) < 5
    # every kept frame is a whole PNG (uploads are atomic), and no temp file is listed
    assert all(png_size(data) == (128, 72) for data in frames_in_store(spec).values())
    second = run_worker(worker_env(spec_uri, 0, AWS_BATCH_JOB_ATTEMPT="2"))
    assert second.returncode == SUCCESS, second.stderr[-3000:]
    assert rendered_frames(second.stderr) == [f for f in range(1, 6) if f not in kept]
    assert sorted(frames_in_store(spec)) == [1, 2, 3, 4, 5]
    assert progress_record(spec, 0).attempt == 2


@pytest.mark.slow
def test_sigterm_uploads_finished_frames_and_exits_retryable(tmp_path, slow_scene):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, slow_scene, [[1, 2, 3, 4, 5, 6]], size=(128, 72))
    proc = _start_worker(worker_env(spec_uri, 0))
    _wait_for_frames(spec, proc, 1)
    os.killpg(proc.pid, signal.SIGTERM)  # what the local backend does to stop a slice
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == RETRYABLE, stderr[-3000:]
    kept = frames_in_store(spec)
    assert 1 <= len(kept) < 6
    assert rendered_frames(stderr) == sorted(kept)  # every frame Blender finished is uploaded
    record = progress_record(spec, 0)
    assert record.state == "FAILED" and record.frames_done == len(kept)
    assert "SIGTERM" in record.message and "resumes" in record.message
    assert "retryable" in stderr.splitlines()[-1]


@pytest.mark.slow
def test_sigterm_to_worker_alone_stops_blender(tmp_path, slow_scene):
    """ECS signals only the container's main process: the worker must stop Blender itself."""
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, slow_scene, [[1, 2, 3, 4, 5, 6, 7, 8]], size=(128, 72))
    proc = _start_worker(worker_env(spec_uri, 0))
    _wait_for_frames(spec, proc, 1)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == RETRYABLE, stderr[-3000:]
    assert time.monotonic() - t0 < 8  # did not wait for the remaining frames
    assert len(frames_in_store(spec)) < 8


@pytest.mark.slow
def test_bad_spec_version_is_a_content_error(tmp_path, tiny_scene):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, tiny_scene, [[1]])
    data = json.loads(spec.to_json())
    data["schema_version"] = 99
    open_store(root).put_bytes(json.dumps(data).encode(), spec_uri)
    proc = run_worker(worker_env(spec_uri, 0))
    assert proc.returncode == CONTENT_ERROR
    last = proc.stderr.strip().splitlines()[-1]
    assert "schema version 99 is newer than this worker understands" in last
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_corrupt_blend_is_a_content_error(tmp_path):
    bad = tmp_path / "broken.blend"
    bad.write_bytes(b"BLENDER-v502RENDR" + os.urandom(4000))
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, bad, [[1]])
    proc = run_worker(worker_env(spec_uri, 0))
    assert proc.returncode == CONTENT_ERROR, proc.stderr[-3000:]
    assert "cannot open the .blend file" in proc.stderr.strip().splitlines()[-1]
    record = progress_record(spec, 0)
    assert record.state == "FAILED" and "corrupt" in record.message


@pytest.mark.slow
def test_scene_without_camera_is_a_content_error(tmp_path, no_camera_scene):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, no_camera_scene, [[1, 2]])
    proc = run_worker(worker_env(spec_uri, 0))
    assert proc.returncode == CONTENT_ERROR, proc.stderr[-3000:]
    assert "has no active camera" in proc.stderr.strip().splitlines()[-1]
    assert frames_in_store(spec) == {}


@pytest.mark.slow
def test_missing_input_object_is_a_content_error(tmp_path, tiny_scene):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, tiny_scene, [[1]])
    os.unlink(spec.input_uri("shots/scene.blend")[len("file://") :])
    proc = run_worker(worker_env(spec_uri, 0))
    assert proc.returncode == CONTENT_ERROR, proc.stderr[-3000:]
    assert "Packed input 'shots/scene.blend' is missing" in proc.stderr


@pytest.mark.slow
def test_blender_crash_is_retryable_and_reports_its_last_lines(tmp_path, tiny_scene):
    """A Blender that aborts (as with a missing GL driver): exit 75 with its last output."""
    fake = tmp_path / "crashing-blender"
    fake.write_text("#!/bin/sh\necho 'Fra:1 Mem:10M | Syncing Cube'\necho 'EGL: no display found' \nkill -ABRT $$\n")
    fake.chmod(0o755)
    root = path_to_uri(tmp_path / "bucket", directory=True)
    _, spec_uri = pack_job(root, tiny_scene, [[1, 2]])
    proc = run_worker(worker_env(spec_uri, 0, BLENDER_BIN=str(fake)))
    assert proc.returncode == RETRYABLE, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "SIGABRT" in last and "EGL: no display found" in last
    assert "Syncing Cube" in proc.stderr  # the tail is logged
    assert "--factory-startup" in proc.stderr  # it ran the binary's argv


def test_a_failed_render_reports_blenders_error_line_not_blender_quit(tmp_path, tiny_scene):
    """Debian's Blender 4.3 (no OpenImageDenoise) rendering a Cycles scene with Denoise on:
    its last lines, as it printed them in the GUI tier's chroot, end with "Blender quit"."""
    fake = tmp_path / "debian-blender-4.3"
    fake.write_text(
        "#!/bin/sh\necho 'RuntimeError: Error: Failed to denoise, build has no OpenImageDenoise support'\n"
        "echo 'Error: Failed to denoise, build has no OpenImageDenoise support'\necho ''\necho 'Blender quit'\nexit 1\n"
    )
    fake.chmod(0o755)
    root = path_to_uri(tmp_path / "bucket", directory=True)
    _, spec_uri = pack_job(root, tiny_scene, [[1]])
    proc = run_worker(worker_env(spec_uri, 0, BLENDER_BIN=str(fake)))
    assert proc.returncode == RETRYABLE, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "Blender said: Error: Failed to denoise, build has no OpenImageDenoise support" in last, last


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["EEVEE", "BLENDER_WORKBENCH"])
def test_eevee_and_workbench_render_a_frame(tmp_path, request, engine):
    scene = request.getfixturevalue("tiny_scene")
    if engine == "EEVEE":
        scene = request.getfixturevalue("eevee_scene")
        # give the *other* Blender generation's id: the worker maps it
        engine = "BLENDER_EEVEE_NEXT" if bpy_major() >= 5 else "BLENDER_EEVEE"
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, scene, [[2]], engine=engine, threads=0)
    proc = run_worker(worker_env(spec_uri, 0))
    assert proc.returncode == SUCCESS, proc.stderr[-3000:]
    frames = frames_in_store(spec)
    assert list(frames) == [2]
    assert png_size(frames[2]) == (64, 36)


@pytest.mark.slow
@pytest.mark.parametrize(("image_format", "name", "magic"), [
    ("OPEN_EXR", "frame_000001.exr", b"\x76\x2f\x31\x01"),
    ("JPEG", "frame_000001.jpg", b"\xff\xd8\xff"),
])  # fmt: skip
def test_exr_and_jpeg_output(tmp_path, tiny_scene, image_format, name, magic):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, tiny_scene, [[1]], image_format=image_format)
    proc = run_worker(worker_env(spec_uri, 0))
    assert proc.returncode == SUCCESS, proc.stderr[-3000:]
    assert spec.frame_uri(1).endswith(name)
    assert open_store(root).get_bytes(spec.frame_uri(1)).startswith(magic)


@pytest.mark.slow
def test_markers_bind_cameras(tmp_path, marker_scene):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, marker_scene, [[1, 3]])
    proc = run_worker(worker_env(spec_uri, 0))
    assert proc.returncode == SUCCESS, proc.stderr[-3000:]
    frames = frames_in_store(spec)
    assert gray_stddev(frames[1]) > 5  # 'Camera' sees the ground and the cube
    assert gray_stddev(frames[3]) < 1  # 'SkyCam' sees only the world colour


@pytest.mark.slow
def test_unknown_scene_is_a_content_error(tmp_path, tiny_scene):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, tiny_scene, [[1]])
    spec.render.scene = "Shot 42"
    open_store(root).put_bytes(spec.to_json().encode(), spec_uri)
    proc = run_worker(worker_env(spec_uri, 0))
    assert proc.returncode == CONTENT_ERROR, proc.stderr[-3000:]
    assert "no scene named 'Shot 42' (it has: Demo)" in proc.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_python_without_bpy_is_refused_clearly(tmp_path, tiny_scene):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    _, spec_uri = pack_job(root, tiny_scene, [[1]])
    venv = tmp_path / "plain-venv"  # a Python with no bpy, e.g. Blender's bundled interpreter
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    proc = run_worker(worker_env(spec_uri, 0, BLENDER_PYTHON=str(venv / "bin" / "python")))
    assert proc.returncode == CONTENT_ERROR, proc.stderr[-3000:]
    assert "has no bpy module: set BLENDER_BIN" in proc.stderr.strip().splitlines()[-1]


def test_blender_argv_from_env_precedence():
    from worker.blender_process import blender_argv_from_env

    assert blender_argv_from_env({"BLENDER_BIN": "/b/blender", "BLENDER_PYTHON": "/p/python"})[0] == "/b/blender"
    assert blender_argv_from_env({"BLENDER_PYTHON": "/p/python"})[0] == "/p/python"
    assert blender_argv_from_env({"PATH": ""})[0] == sys.executable  # this Python has bpy


FAKE_BLENDER = """#!{python}
# Stands in for Blender's process only, to drive the outer process's protocol handling:
# it writes every asked frame, reports it, then {ending}.
import json, os, signal, sys
job = json.loads(sys.stdin.readline())
for i, frame in enumerate(job["frames"]):
    if "skip-last" == "{ending}" and i == len(job["frames"]) - 1:
        break
    path = os.path.join(job["out_dir"], "frame_%06d.png" % frame)
    with open(path, "wb") as fh:
        fh.write(bytes.fromhex("{png_hex}"))  # a valid 64x36 PNG: the worker checks what it uploads
    print("ABR_FRAME " + json.dumps({{"frame": frame, "path": path, "seconds": 0.5}}), flush=True)
if "{ending}" == "segfault":
    os.kill(os.getpid(), signal.SIGSEGV)
"""


@pytest.mark.parametrize(("ending", "code"), [("segfault", SUCCESS), ("skip-last", RETRYABLE)])
def test_outcome_depends_on_frames_written_not_on_how_blender_exits(tmp_path, ending, code):
    fake = tmp_path / "fake-blender"
    fake.write_text(FAKE_BLENDER.format(python=sys.executable, ending=ending, png_hex=png_bytes(64, 36).hex()))
    fake.chmod(0o755)
    blend = tmp_path / "scene.blend"
    blend.write_bytes(b"not opened by the stand-in")
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, blend, [[1, 2, 3]])
    proc = run_worker(worker_env(spec_uri, 0, BLENDER_BIN=str(fake)))
    assert proc.returncode == code, proc.stderr[-3000:]
    if ending == "segfault":  # crashed on the way out, after every frame: keep them
        assert sorted(frames_in_store(spec)) == [1, 2, 3]
        assert "(SIGSEGV) after writing every frame" in proc.stderr
        assert progress_record(spec, 0).seconds_per_frame == pytest.approx(0.5)
    else:
        assert sorted(frames_in_store(spec)) == [1, 2]
        assert "finished without writing frame(s) 3" in proc.stderr.strip().splitlines()[-1]


def rgb_pixels(png: bytes) -> list[tuple[int, int, int]]:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", "-", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         input=png, capture_output=True, check=True).stdout  # fmt: skip
    return [tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)]


@pytest.mark.slow
def test_relative_texture_resolves_from_the_restored_pack(tmp_path):
    """A .blend with '//textures/green.png' renders the texture, not Blender's missing-image magenta."""
    project = tmp_path / "project"
    (project / "textures").mkdir(parents=True)
    texture = project / "textures" / "green.png"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=0x10e010:s=16x16", "-frames:v", "1",
                    str(texture)], check=True)  # fmt: skip
    blend = make_scene(project / "shot.blend", "--frames", "2", "--texture", str(texture))
    script = (
        "import bpy, sys\n"
        "bpy.ops.wm.open_mainfile(filepath=sys.argv[1])\n"
        "bpy.ops.file.make_paths_relative()\n"
        "assert bpy.data.images['green.png'].filepath == '//textures/green.png', bpy.data.images[0].filepath\n"
        "bpy.ops.wm.save_mainfile()\n"
    )
    subprocess.run([sys.executable, "-c", script, str(blend)], check=True, capture_output=True, timeout=120)
    root = path_to_uri(tmp_path / "bucket", directory=True)
    store = open_store(root)
    files = {"shot.blend": blend, "textures/green.png": texture}
    digests = {rel: hashlib.sha256(p.read_bytes()).hexdigest() for rel, p in files.items()}
    for rel, path in files.items():
        store.put_file(path, join_uri(root, f"inputs/{digests[rel]}"))
    spec = make_spec(root)
    spec.inputs = InputManifest(uri=join_uri(root, "inputs/"), files=digests, main_blend="shot.blend")
    spec.slices = [[1]]
    spec_uri = join_uri(root, "spec.json")
    store.put_bytes(spec.to_json().encode(), spec_uri)
    import shutil

    shutil.rmtree(project)  # only the pack in the store remains
    proc = run_worker(worker_env(spec_uri, 0))
    assert proc.returncode == SUCCESS, proc.stderr[-3000:]
    pixels = rgb_pixels(frames_in_store(spec)[1])
    green = sum(1 for r, g, b in pixels if g > r + 40 and g > b + 40)
    magenta = sum(1 for r, g, b in pixels if r > 150 and b > 150 and g < 90)
    assert green > 10 and magenta == 0, (green, magenta)


def test_missing_blender_binary_is_refused_clearly(tmp_path):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    blend = tmp_path / "scene.blend"
    blend.write_bytes(b"never opened")
    _, spec_uri = pack_job(root, blend, [[1]])
    proc = run_worker(worker_env(spec_uri, 0, BLENDER_BIN=str(tmp_path / "no-such-blender")))
    assert proc.returncode == CONTENT_ERROR, proc.stderr[-3000:]
    assert "Cannot start Blender" in proc.stderr and "BLENDER_BIN" in proc.stderr.strip().splitlines()[-1]


def test_array_index_outside_the_slices_is_a_content_error():
    from worker.job import slice_frames

    spec = make_spec()
    assert slice_frames(spec, 2) == [7, 8]
    with pytest.raises(Exception, match="outside this job's 3 slice") as err:
        slice_frames(spec, 3)
    assert err.value.exit_code == CONTENT_ERROR


def test_cameras_from_markers_alone_are_enough(tmp_path, marker_scene):
    """No active camera, but markers bind cameras: Blender's animation render switches to
    them, so the worker must not refuse the scene (the add-on accepts it)."""
    blend = tmp_path / "markers-only.blend"
    script = (
        "import bpy, sys\n"
        "bpy.ops.wm.open_mainfile(filepath=sys.argv[1])\n"
        "bpy.context.scene.camera = None\n"
        "bpy.ops.wm.save_as_mainfile(filepath=sys.argv[2])\n"
    )
    subprocess.run([sys.executable, "-c", script, str(marker_scene), str(blend)], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, blend, [[1, 3]])
    proc = run_worker(worker_env(spec_uri, 0))
    assert proc.returncode == SUCCESS, proc.stderr[-3000:]
    frames = frames_in_store(spec)
    assert gray_stddev(frames[1]) > 5 and gray_stddev(frames[3]) < 1


def test_a_retry_child_writes_the_progress_record_of_its_original_slice(tmp_path, tiny_scene):
    """Retry jobs carry only the failed slices: child 0 of a retry of slice 2 must not
    overwrite slice 0's record."""
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, tiny_scene, [[5, 6]])
    spec.extra["retry_of_slices"] = "2"
    open_store(root).put_bytes(spec.to_json().encode(), spec_uri)
    proc = run_worker(worker_env(spec_uri, 0))
    assert proc.returncode == SUCCESS, proc.stderr[-3000:]
    store = open_store(root)
    assert not store.exists(spec.progress_record_uri(0))
    record = SliceProgress.from_json(store.get_bytes(spec.progress_record_uri(2)))
    assert (record.index, record.frames_done, record.state) == (2, 2, "SUCCEEDED")


def test_an_older_worker_blender_warns_but_renders(tmp_path, tiny_scene):
    from worker.inner_render import version_warning

    assert version_warning("5.2.3", (5, 2, 3)) == ""
    assert version_warning("4.5.15", (5, 2, 3)) == ""  # newer worker: fine
    assert "publish-image" in version_warning("5.3.0", (5, 2, 3))
    assert version_warning("garbage", (5, 2, 3)) == ""
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, tiny_scene, [[1]])
    spec.blender_version = "9.9.0"
    open_store(root).put_bytes(spec.to_json().encode(), spec_uri)
    proc = run_worker(worker_env(spec_uri, 0))
    assert proc.returncode == SUCCESS, proc.stderr[-3000:]
    assert "The scene was saved by Blender 9.9.0 but this worker runs Blender" in proc.stderr
