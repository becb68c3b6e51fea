"""Fault injection, frames: a truncated, corrupt or linked frame at upload time and at stitch
time, a short video, the one definition of a done frame, ``retry`` re-checking frames, and a
content error's reason reaching the status. Real files, real ffmpeg/ffprobe, real moto S3."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from frame_images import png_bytes
from helpers import make_spec, stage_submission

from addon.core.backends.local.backend import LocalBackend, wait
from addon.core.backends.status import failure_note
from addon.core.exitcodes import CONTENT_ERROR, RETRYABLE, SUCCESS
from addon.core.framecheck import FrameInvalid, check_frame_bytes, check_frame_file
from addon.core.jobspec import JobSpec
from addon.core.progress import SliceProgress, frames_done_from_listing
from addon.core.storage import S3Store, join_uri, open_store, path_to_uri
from tests.test_aws_batch_states import FIVE, moto_job, set_states, submit
from tests.test_aws_batch_support import BUCKET, CallCounter, clients_of, create_batch_env, put_frames
from worker.failures import EncodeFailed
from worker.ffmpeg import EncodeRequest, build_encode_argv
from worker.job import WorkerEnv
from worker.render import ProgressRecorder, SliceRender
from worker.stitch import list_present
from worker.videocheck import VideoProbe, check_video, find_ffprobe

ROOT = Path(__file__).resolve().parent.parent
FRAMES = [1, 2, 3, 4, 5]


def one_line_error(stderr: str) -> str:
    """The worker's failure must be one ERROR line and no traceback."""
    assert "Traceback" not in stderr, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if " ERROR worker: " in line]
    assert len(errors) == 1, stderr[-2000:]
    return errors[0]


def stage_frames(root: str, frames: list[int] = FRAMES) -> tuple:
    """A spec (64x36 PNG, video on) and valid frames in the store at ``root``."""
    spec = make_spec(root)
    spec.slices = [frames]
    spec.validate()
    store = open_store(root)
    store.put_bytes(spec.to_json().encode(), join_uri(root, "spec.json"))
    for f in frames:
        store.put_bytes(png_bytes(64, 36, shade=f * 20), spec.frame_uri(f))
    return spec, store


def run_stitch(root: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JOB_SPEC_URI": join_uri(root, "spec.json")}
    return subprocess.run([sys.executable, "-m", "worker", "stitch"], env=env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)  # fmt: skip


def outputs(spec, store) -> list[str]:
    return [o.uri for o in store.list(spec.output.video_uri)]


def frame_path(spec, frame: int) -> Path:
    return Path(spec.frame_uri(frame)[len("file://") :])


def garbage_idat_png() -> bytes:
    """Right signature, chunks and CRCs, but pixel data that does not inflate: only a decoder sees it."""
    good = png_bytes(64, 36)
    junk = os.urandom(200)
    idat = b"IDAT" + junk
    body = good[:33] + struct.pack(">I", len(junk)) + idat + struct.pack(">I", zlib.crc32(idat))
    return body + good[-12:]


# --- stitch time ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        ("truncated", "truncated"),
        ("random", "not a PNG image"),
        ("symlink", "symbolic link"),
        ("link_to_valid", "symbolic link"),
        ("wrong_size", "32x18 pixels, not the 64x36"),
    ],
)
def test_stitch_refuses_a_bad_frame_names_it_and_uploads_nothing(tmp_path, fault, why):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, store = stage_frames(root)
    bad = frame_path(spec, 5)
    if fault == "truncated":
        bad.write_bytes(bad.read_bytes()[:-40])
    elif fault == "random":
        bad.write_bytes(os.urandom(5000))
    elif fault == "symlink":
        bad.unlink()
        bad.symlink_to("/etc/passwd")
    elif fault == "link_to_valid":  # even a valid image behind a link is not followed
        elsewhere = tmp_path / "elsewhere.png"
        elsewhere.write_bytes(png_bytes(64, 36))
        bad.unlink()
        bad.symlink_to(elsewhere)
    else:
        bad.write_bytes(png_bytes(32, 18))
    proc = run_stitch(root)
    assert proc.returncode == CONTENT_ERROR, proc.stderr[-2000:]
    line = one_line_error(proc.stderr)
    assert "frame 5 " in line and why in line and "retry" in line
    assert outputs(spec, store) == [], "a failed check uploads nothing"


def test_stitch_of_a_frame_that_does_not_decode_fails_retryable_with_xerror(tmp_path):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, store = stage_frames(root)
    frame_path(spec, 3).write_bytes(garbage_idat_png())  # passes the structure check; ffmpeg must refuse it
    proc = run_stitch(root)
    assert proc.returncode == RETRYABLE, proc.stderr[-2000:]
    assert "ffmpeg failed" in one_line_error(proc.stderr)
    assert outputs(spec, store) == []
    argv = build_encode_argv(EncodeRequest(pattern="f_%06d.png", start_number=1, frame_count=5, fps_num=24,
                                           fps_den=1, output="o.mp4"))  # fmt: skip
    assert "-xerror" in argv


def test_stitch_from_s3_refuses_a_truncated_frame(s3_bucket, tmp_path):
    root = f"s3://{s3_bucket}/"
    spec, store = stage_frames(root)
    store.put_bytes(png_bytes(64, 36)[:-40], spec.frame_uri(2))
    proc = run_stitch(root)
    assert proc.returncode == CONTENT_ERROR, proc.stderr[-2000:]
    assert "frame 2 is truncated" in one_line_error(proc.stderr)
    assert outputs(spec, store) == []


def test_stitch_of_valid_frames_checks_the_video_and_succeeds(tmp_path):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, store = stage_frames(root)
    proc = run_stitch(root)
    assert proc.returncode == SUCCESS, proc.stderr[-2000:]
    assert sorted(u.rsplit("/", 1)[-1] for u in outputs(spec, store)) == ["video-poster.jpg", "video.mp4"]


def test_video_check_refuses_a_short_video(tmp_path):
    """ffmpeg made 4 frames where 5 were asked: ffprobe's count says so before any upload."""
    folder = tmp_path / "f"
    folder.mkdir()
    for f in range(1, 5):
        (folder / f"frame_{f:06d}.png").write_bytes(png_bytes(64, 36, shade=f * 30))
    req = EncodeRequest(pattern=str(folder / "frame_%06d.png"), start_number=1, frame_count=4, fps_num=24,
                        fps_den=1, output=str(tmp_path / "v.mp4"), poster=str(tmp_path / "p.jpg"))  # fmt: skip
    subprocess.run(build_encode_argv(req), check=True, capture_output=True, timeout=60)
    ffprobe = find_ffprobe("ffmpeg")
    check_video(req, VideoProbe(ffprobe))  # the honest request passes
    short = EncodeRequest(**{**req.__dict__, "frame_count": 5})
    with pytest.raises(EncodeFailed, match="has 4 frame"):
        check_video(short, VideoProbe(ffprobe))
    (tmp_path / "p.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * 200)
    with pytest.raises(EncodeFailed, match="poster"):
        check_video(req, VideoProbe(ffprobe))
    (tmp_path / "v.mp4").write_bytes(b"\0" * 4000)  # not a video at all
    with pytest.raises(EncodeFailed, match="cannot be read back"):
        check_video(req, VideoProbe(ffprobe))


# --- upload time --------------------------------------------------------------------------------


def _slice_for_upload(tmp_path):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec = make_spec(root)
    spec.slices = [[1, 2]]
    store = open_store(root)
    job = SliceRender(WorkerEnv(spec_uri=join_uri(root, "spec.json"), array_index=0, attempt=1, scratch=""))
    job.progress = ProgressRecorder(spec, 0, [1, 2], 1, store)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return spec, store, job, scratch


@pytest.mark.parametrize(
    ("fault", "why"),
    [("truncated", "truncated"), ("corrupt", "corrupt"), ("symlink", "symbolic link"), ("empty", "empty")],
)
def test_upload_refuses_an_invalid_frame_blender_reported(tmp_path, fault, why):
    spec, store, job, scratch = _slice_for_upload(tmp_path)
    written = scratch / "frame_000001.png"
    if fault == "truncated":
        written.write_bytes(png_bytes(64, 36)[:-40])
    elif fault == "corrupt":
        data = bytearray(png_bytes(64, 36))
        data[60] ^= 0xFF
        written.write_bytes(bytes(data))
    elif fault == "symlink":
        written.symlink_to("/etc/passwd")
    else:
        written.write_bytes(b"")
    job.upload_frame(spec, store, scratch, 1, str(written), 0.5)
    assert job.upload_error is not None and job.upload_error.exit_code == RETRYABLE
    assert "Frame 1 " in str(job.upload_error) and why in str(job.upload_error)
    assert "not uploaded" in str(job.upload_error)
    assert list(store.list(spec.output.frames_uri)) == [], "an invalid frame is never uploaded"
    assert job.progress.done == set()
    # the next frame, valid, is not uploaded either: the slice stops at the first bad one
    good = scratch / "frame_000002.png"
    good.write_bytes(png_bytes(64, 36))
    job.upload_frame(spec, store, scratch, 2, str(good), 0.5)
    assert list(store.list(spec.output.frames_uri)) == []


def test_upload_of_a_valid_frame_sends_the_bytes_it_checked(tmp_path):
    spec, store, job, scratch = _slice_for_upload(tmp_path)
    written = scratch / "frame_000001.png"
    written.write_bytes(png_bytes(64, 36, shade=7))
    job.upload_frame(spec, store, scratch, 1, str(written), 0.5)
    assert job.upload_error is None
    assert store.get_bytes(spec.frame_uri(1)) == png_bytes(64, 36, shade=7)
    assert not written.exists() and job.progress.done == {1}


# --- one definition of a done frame ------------------------------------------------------------------


def test_one_definition_of_a_done_frame_for_listing_resume_stitch_and_status(tmp_path):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, store = stage_frames(root)
    frame_path(spec, 2).write_bytes(b"")  # what a full disk left behind
    frame_path(spec, 4).write_bytes(b"\x89PNG")  # a stub
    (frame_path(spec, 5).parent / "frame_000005.exr").write_bytes(png_bytes())  # another format's name
    listing = [(o.uri, o.size) for o in store.list(spec.output.frames_uri)]
    done, latest, _ = frames_done_from_listing(listing, spec.frames, "PNG")
    assert set(done) == {1, 3, 5} and latest == 5
    assert set(list_present(spec, store)) == {1, 3, 5}  # the stitch agrees
    with pytest.raises(FrameInvalid, match="empty"):
        check_frame_file(frame_path(spec, 2), "PNG")
    with pytest.raises(FrameInvalid, match="bad CRC"):
        data = bytearray(png_bytes())
        data[40] ^= 1
        check_frame_bytes(bytes(data), "PNG")


def test_local_status_does_not_count_empty_frames_and_retry_rerenders_invalid_ones(tiny_scene, tmp_path):
    spec, spec_uri = stage_submission(tmp_path / "store", tiny_scene, [[1, 2], [3, 4]], video=False)
    backend = LocalBackend(concurrency=2)
    record = backend.submit(spec, spec_uri)
    assert wait(backend, record, timeout=300).state == "SUCCEEDED"
    good = frame_path(spec, 3).read_bytes()
    frame_path(spec, 2).write_bytes(b"")  # emptied (a full disk)
    frame_path(spec, 3).write_bytes(good[: len(good) // 2])  # truncated, still big enough to be listed
    status = backend.status(record)
    assert status.frames_done == 3, "an empty frame is not done"
    record = backend.retry_failed(record)  # both slices SUCCEEDED: retry re-checks their frames
    assert record.jobs["history"][-1]["retried_slices"] == [0, 1]
    assert (frame_path(spec, 3).parent / "frame_000003.png.invalid").exists(), "kept, never deleted"
    status = wait(backend, record, timeout=300)
    assert status.state == "SUCCEEDED" and status.frames_done == 4
    for f in (1, 2, 3, 4):
        assert check_frame_bytes(frame_path(spec, f).read_bytes(), "PNG", 64, 36) == (64, 36)


# --- content errors reach the status ---------------------------------------------------------------


def test_failure_note_says_why_and_whether_retrying_helps():
    content = SliceProgress(index=2, frames_total=3, frames_done=0, state="FAILED", exit_code=CONTENT_ERROR,
                            message="The scene 'Shot' has no camera: add one.")  # fmt: skip
    note = failure_note([2, 4], [content])
    assert note.startswith("Slice 2 failed: The scene 'Shot' has no camera: add one")
    assert "1 more slice(s)" in note and "Retrying will not help" in note
    retryable = SliceProgress(index=4, frames_total=3, frames_done=1, state="FAILED", message="Blender crashed.")
    assert "'retry' renders it again" in failure_note([4], [retryable], {4: RETRYABLE})
    assert failure_note([1], [content]) == ""  # no record for that slice: the caller's generic text


def test_local_status_shows_the_workers_content_error_reason(tmp_path):
    broken = tmp_path / "broken.blend"
    broken.write_bytes(b"BLENDER-v502 this is not a blend file")
    spec, spec_uri = stage_submission(tmp_path / "store", broken, [[1, 2]], submission_id="sub-broken")
    backend = LocalBackend(max_attempts=2)
    status = wait(backend, backend.submit(spec, spec_uri), timeout=120)
    assert status.state == "FAILED"
    assert status.message.startswith("Slice 0 failed: "), status.message
    assert "Retrying will not help" in status.message and "\n" not in status.message


# --- AWS Batch (moto in this process): the same definition, retry re-check, the worker's reason ----------


@pytest.fixture
def batch(inproc_aws):
    from addon.core.aws.session import AwsSettings, client

    settings = AwsSettings(region="us-east-1", endpoint_url=inproc_aws)
    client("s3", settings).create_bucket(Bucket=BUCKET)
    return create_batch_env(settings)


def test_aws_status_and_retry_use_the_same_done_frames(batch):
    spec, backend, record = submit(batch, FIVE)
    set_states(record.jobs["render_job_id"], ["SUCCEEDED"] * 5, parent_state="SUCCEEDED")
    moto_job(record.jobs["stitch_job_id"]).status = "FAILED"
    put_frames(batch.settings, spec, [f for f in spec.frames if f != 4])
    S3Store(batch.settings).put_bytes(b"", spec.frame_uri(4))  # a 0-byte frame from a full disk
    assert backend.status(record).frames_done == 9, "an empty frame is not done"
    counter = CallCounter(*clients_of(backend))
    backend.retry_failed(record)  # every chunk SUCCEEDED, but slice 1 lacks a done frame: render it again
    render_req = counter.params["SubmitJob"][0]
    retry_uri = render_req["containerOverrides"]["environment"][0]["value"]
    assert JobSpec.from_json(S3Store(batch.settings).get_bytes(retry_uri)).slices == [FIVE[1]]
    assert record.jobs["history"][-1]["kind"] == "retry"


def test_aws_status_shows_the_workers_content_error_reason(batch):
    spec, backend, record = submit(batch, FIVE[:3])
    set_states(record.jobs["render_job_id"], ["SUCCEEDED", "FAILED", "SUCCEEDED"], parent_state="FAILED")
    moto_job(record.jobs["stitch_job_id"]).status = "FAILED"
    reason = SliceProgress(index=1, frames_total=2, frames_done=0, state="FAILED", exit_code=CONTENT_ERROR,
                           message="Scene 'Scene' has no camera: add a camera, or render the sequencer.")  # fmt: skip
    S3Store(batch.settings).put_bytes(reason.to_json(), spec.progress_record_uri(1))
    status = backend.status(record)
    assert status.state == "FAILED" and status.failed_slices == [1]
    assert status.message.startswith("Slice 1 failed: Scene 'Scene' has no camera"), status.message
    assert "Retrying will not help" in status.message
    counter = CallCounter(*clients_of(backend))
    assert backend.status(record).message == status.message
    assert "GetObject" not in counter.calls, "the reason is read once, not on every refresh"
