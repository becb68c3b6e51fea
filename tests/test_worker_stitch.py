"""``python -m worker stitch``: real ffmpeg/ffprobe, frames in moto S3 or a file:// store."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from helpers import make_spec
from hypothesis import given
from hypothesis import strategies as st

from addon.core.exitcodes import CONTENT_ERROR, SUCCESS
from addon.core.jobspec import AudioTrack, JobSpec
from addon.core.storage import join_uri, open_store, path_to_uri
from worker.failures import VideoSettingsError
from worker.ffmpeg import EncodeRequest, build_encode_argv, check_settings, filter_graph
from worker.job import WorkerEnv
from worker.stitch import local_layout, run_stitch

ROOT = Path(__file__).resolve().parent.parent


def make_frames(folder: Path, frames: list[int], ext: str = "png", size: str = "63x35") -> dict[int, Path]:
    """Test-pattern frames named as the worker names them (odd size: stitch must pad)."""
    folder.mkdir(parents=True, exist_ok=True)
    pix = ["-pix_fmt", "gbrpf32le"] if ext == "exr" else []
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"testsrc=size={size}:rate=24", "-frames:v", str(len(frames)), *pix,
         str(folder / f"seq_%03d.{ext}")],
        check=True, timeout=60,
    )  # fmt: skip
    out = {}
    for i, frame in enumerate(frames):
        dest = folder / f"frame_{frame:06d}.{ext}"
        (folder / f"seq_{i + 1:03d}.{ext}").rename(dest)
        out[frame] = dest
    return out


def stitch_spec(root: str, frames: list[int], tmp_path: Path, *, image_format: str = "PNG", upload: bool = True,
                **video: object) -> JobSpec:  # fmt: skip
    spec = make_spec(root)
    spec.slices = [frames[i : i + 3] for i in range(0, len(frames), 3)]
    spec.output.image_format = image_format
    spec.render.width, spec.render.height = 63, 35  # the size make_frames draws (odd: stitch must pad)
    for key, value in video.items():
        setattr(spec.output.video, key, value)
    spec.validate()
    store = open_store(root)
    store.put_bytes(spec.to_json().encode(), join_uri(root, "spec.json"))
    if upload:
        files = make_frames(tmp_path / "made", frames, spec.output.extension)
        for frame, path in files.items():
            store.put_file(path, spec.frame_uri(frame))
    return spec


def run_stitch_process(root: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "JOB_SPEC_URI": join_uri(root, "spec.json")}
    return subprocess.run([sys.executable, "-m", "worker", "stitch"], env=env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)  # fmt: skip


def probe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-count_frames", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def fetch_outputs(spec: JobSpec, tmp_path: Path) -> tuple[Path, Path]:
    store = open_store(spec.output.video_uri)
    video = tmp_path / "got" / spec.video_file_uri().rsplit("/", 1)[-1]
    poster = tmp_path / "got" / "poster.jpg"
    store.get_file(spec.video_file_uri(), video)
    store.get_file(spec.poster_uri(), poster)
    return video, poster


def stitch_in_process(spec_root: str) -> int:
    return run_stitch(WorkerEnv(join_uri(spec_root, "spec.json"), 0, 1, ""))


# --- pure parts -----------------------------------------------------------------------------


def test_local_layout_keeps_contiguous_numbers_and_renumbers_gaps():
    assert local_layout([5, 6, 7]) == (5, [5, 6, 7])
    assert local_layout([1, 3, 5]) == (0, [0, 1, 2])
    assert local_layout([-2, -1, 0]) == (0, [0, 1, 2])


@given(st.sets(st.integers(-500, 500), min_size=1, max_size=50))
def test_local_layout_property_is_a_gapless_sequence_in_frame_order(frame_set):
    frames = sorted(frame_set)
    start, numbers = local_layout(frames)
    # image2 reads start, start+1, ... : the local numbers must be exactly that run
    assert numbers == list(range(start, start + len(frames)))
    assert start >= 0


def test_encode_argv_is_a_list_with_the_required_options():
    req = EncodeRequest(pattern="/t/f%06d.png", start_number=10, frame_count=48, fps_num=30000, fps_den=1001,
                        output="/t/video.mp4", poster="/t/poster.jpg")  # fmt: skip
    argv = build_encode_argv(req, "ffmpeg")
    assert argv[argv.index("-framerate") + 1] == "30000/1001"
    assert argv[argv.index("-start_number") + 1] == "10"
    assert argv[argv.index("-c:v") + 1] == "libx264"
    assert argv[argv.index("-pix_fmt") + 1] == "yuv420p"
    assert argv[argv.index("-movflags") + 1] == "+faststart"
    graph = argv[argv.index("-filter_complex") + 1]
    assert "pad=ceil(iw/2)*2:ceil(ih/2)*2" in graph and "tonemap" not in graph
    assert "eq(n,24)" in graph  # the poster is the middle frame
    assert argv[-1] == "/t/poster.jpg"
    exr = filter_graph(EncodeRequest("/t/f%06d.exr", 0, 3, 24, 1, "/t/v.mp4", exr=True))
    assert exr.index("tonemap") < exr.index("format=yuv420p")  # never raw EXR into the encoder


def test_codec_container_combinations_are_checked():
    check_settings("h264", "mp4")
    check_settings("prores", "mov", "pcm")
    with pytest.raises(VideoSettingsError, match=r"mp4 file cannot hold prores.*mov or mkv"):
        check_settings("prores", "mp4")
    with pytest.raises(VideoSettingsError, match="webm file cannot hold aac audio"):
        check_settings("vp9", "webm", "aac")


# --- encoding for real ----------------------------------------------------------------------


@pytest.mark.slow
def test_stitch_h264_from_s3(s3_bucket, tmp_path):
    root = f"s3://{s3_bucket}/"
    spec = stitch_spec(root, list(range(1, 13)), tmp_path, fps_num=24, fps_den=1)
    proc = run_stitch_process(root)
    assert proc.returncode == SUCCESS, proc.stderr[-3000:]
    video, poster = fetch_outputs(spec, tmp_path)
    info = probe(video)
    stream = info["streams"][0]
    assert stream["codec_name"] == "h264" and stream["pix_fmt"] == "yuv420p"
    assert int(stream["nb_read_frames"]) == 12
    assert Fraction(stream["r_frame_rate"]) == 24
    assert float(info["format"]["duration"]) == pytest.approx(0.5, abs=0.03)
    assert (stream["width"], stream["height"]) == (64, 36)  # 63x35 padded to even
    data = video.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart
    assert probe(poster)["streams"][0]["codec_name"] == "mjpeg"
    # re-running is safe and gives the same kind of output
    again = run_stitch_process(root)
    assert again.returncode == SUCCESS, again.stderr[-3000:]


@pytest.mark.slow
def test_missing_frame_is_named(tmp_path):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec = stitch_spec(root, [1, 2, 3, 4, 5, 6], tmp_path)
    Path(spec.frame_uri(4)[len("file://") :]).unlink()
    proc = run_stitch_process(root)
    assert proc.returncode == CONTENT_ERROR
    last = proc.stderr.strip().splitlines()[-1]
    assert "1 of 6 frame(s) are missing" in last and ": 4." in last
    assert not open_store(root).exists(spec.video_file_uri())


@pytest.mark.slow
def test_partial_video_with_frame_steps_stitches_what_exists_in_order(tmp_path):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec = stitch_spec(root, [1, 3, 5, 7, 9], tmp_path, allow_partial=True, fps_num=30000, fps_den=1001)
    Path(spec.frame_uri(7)[len("file://") :]).unlink()
    assert stitch_in_process(root) == SUCCESS
    video, _ = fetch_outputs(spec, tmp_path)
    stream = probe(video)["streams"][0]
    assert int(stream["nb_read_frames"]) == 4
    assert Fraction(stream["r_frame_rate"]) == Fraction(30000, 1001)


@pytest.mark.slow
def test_exr_frames_are_tone_mapped(tmp_path):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec = stitch_spec(root, [1, 2, 3], tmp_path, image_format="OPEN_EXR")
    assert stitch_in_process(root) == SUCCESS
    video, poster = fetch_outputs(spec, tmp_path)
    stream = probe(video)["streams"][0]
    assert (stream["codec_name"], stream["pix_fmt"], int(stream["nb_read_frames"])) == ("h264", "yuv420p", 3)
    gray = subprocess.run(["ffmpeg", "-v", "error", "-i", str(poster), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                          capture_output=True, check=True).stdout  # fmt: skip
    mean = sum(gray) / len(gray)
    assert 20 < mean < 235  # an image, neither clipped white nor black


@pytest.mark.slow
def test_audio_track_is_muxed(tmp_path):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    wav = tmp_path / "mix.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2", str(wav)],
                   check=True)  # fmt: skip
    import hashlib

    digest = hashlib.sha256(wav.read_bytes()).hexdigest()
    spec = make_spec(root)
    spec.inputs.files["sound/mix.wav"] = digest
    spec.output.video.audio = AudioTrack(path="sound/mix.wav", bitrate_kbps=96)
    spec.slices = [[1, 2, 3, 4, 5, 6]]
    spec.render.width, spec.render.height = 63, 35  # make_frames' size
    store = open_store(root)
    store.put_file(wav, spec.input_uri("sound/mix.wav"))
    store.put_bytes(spec.to_json().encode(), join_uri(root, "spec.json"))
    for frame, path in make_frames(tmp_path / "made", spec.frames).items():
        store.put_file(path, spec.frame_uri(frame))
    assert stitch_in_process(root) == SUCCESS
    video, _ = fetch_outputs(spec, tmp_path)
    info = probe(video)
    kinds = {s["codec_type"]: s for s in info["streams"]}
    assert kinds["audio"]["codec_name"] == "aac"
    assert float(info["format"]["duration"]) == pytest.approx(0.25, abs=0.06)  # cut to the video


@pytest.mark.slow
@pytest.mark.parametrize(
    ("codec", "container", "probed"),
    [("h265", "mp4", "hevc"), ("vp9", "webm", "vp9"), ("prores", "mov", "prores"), ("av1", "mkv", "av1")],
)
def test_other_codecs(tmp_path, codec, container, probed):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec = stitch_spec(root, [1, 2, 3], tmp_path, codec=codec, container=container, quality=30)
    assert stitch_in_process(root) == SUCCESS
    video, _ = fetch_outputs(spec, tmp_path)
    assert video.suffix == f".{container}"
    stream = probe(video)["streams"][0]
    assert stream["codec_name"] == probed and int(stream["nb_read_frames"]) == 3


@pytest.mark.slow
def test_incompatible_container_is_a_content_error(tmp_path):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    stitch_spec(root, [1, 2], tmp_path, codec="prores", container="mp4")
    with pytest.raises(VideoSettingsError) as err:
        stitch_in_process(root)
    assert err.value.exit_code == CONTENT_ERROR


@pytest.mark.slow
def test_exr_is_refused_clearly_by_an_ffmpeg_without_tone_mapping(tmp_path, monkeypatch):
    # an ffmpeg build without zimg: the real ffmpeg, with zscale missing from its filter list
    wrapper = tmp_path / "ffmpeg-without-zimg"
    wrapper.write_text('#!/bin/sh\nif [ "$2" = "-filters" ]; then ffmpeg "$@" | grep -v zscale; exit 0; fi\n'
                       'exec ffmpeg "$@"\n')  # fmt: skip
    wrapper.chmod(0o755)
    monkeypatch.setenv("FFMPEG_BIN", str(wrapper))
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec = stitch_spec(root, [1, 2], tmp_path, image_format="OPEN_EXR")
    with pytest.raises(VideoSettingsError, match="EXR frames need tone mapping") as err:
        stitch_in_process(root)
    assert err.value.exit_code == CONTENT_ERROR
    assert not open_store(root).exists(spec.video_file_uri())


def test_spec_without_video_has_nothing_to_stitch(tmp_path):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec = make_spec(root)
    spec.output.video = None
    open_store(root).put_bytes(spec.to_json().encode(), join_uri(root, "spec.json"))
    assert stitch_in_process(root) == SUCCESS
    assert not open_store(root).exists(spec.video_file_uri())
