"""``python -m worker stitch``: check every frame exists, encode the video and a poster.

Runs once after every render slice succeeded (the stitch job depends on the array). It
lists the frames once, fails naming the missing ones (unless the spec allows a partial
video), fetches the frames concurrently into a temp folder under sequential names (so
frame steps and gaps stitch in order), checks each frame's structure and size in place
(:mod:`addon.core.framecheck`; a link is refused, never followed), runs one ffmpeg with
``-xerror`` (it decodes every frame: a frame that does not decode fails the run), and
checks the video with ffprobe (frame count and duration against the spec) before
anything is uploaded. Uploads are atomic, so re-running stitch is safe.

Threading: a small pool downloads frames; it touches only the store and the temp folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

from addon.core.errors import StorageError
from addon.core.exitcodes import SUCCESS
from addon.core.framecheck import FrameInvalid, check_frame_file
from addon.core.frames import describe_frames
from addon.core.jobspec import JobSpec
from addon.core.progress import frames_done_from_listing
from addon.core.storage import Store, parse_uri

from .failures import (
    FramesInvalidError,
    FramesMissingError,
    InterruptedBySignal,
    VideoSettingsError,
    WorkerRetryableError,
)
from .ffmpeg import EncodeRequest, build_encode_argv, check_settings, find_ffmpeg, has_filters, run_ffmpeg
from .job import StoreCache, WorkerEnv, load_spec
from .videocheck import VideoProbe, check_video, find_ffprobe

log = logging.getLogger(__name__)

DOWNLOAD_THREADS = 8


def missing_frames(expected: list[int], present: set[int]) -> list[int]:
    return sorted(set(expected) - present)


def local_layout(frames: list[int]) -> tuple[int, list[int]]:
    """Start number and the local number of each frame for ffmpeg's image2 sequence.

    Contiguous frames from 0 up keep their numbers (``-start_number`` = the first frame);
    frames with steps or gaps, or negative numbers, are renumbered 0..n-1 in order.
    """
    if frames and frames[0] >= 0 and frames == list(range(frames[0], frames[0] + len(frames))):
        return frames[0], list(frames)
    return 0, list(range(len(frames)))


def list_present(spec: JobSpec, store: Store) -> dict[int, str]:
    """Frames done by the listing (the shared definition: addon.core.framecheck)."""
    try:
        listing = [(o.uri, o.size) for o in store.list(spec.output.frames_uri)]
    except StorageError as exc:
        raise WorkerRetryableError(f"Cannot list the rendered frames: {exc}") from None
    found, _, _ = frames_done_from_listing(listing, spec.frames, spec.output.image_format)
    return found


def check_frames(spec: JobSpec, paths: dict[int, str]) -> None:
    """Every frame a valid image of one size (the spec's when it says): headers and chunk
    structure only, read in place; ffmpeg decodes the pixels once, with ``-xerror``."""
    fmt, bad, sizes = spec.output.image_format, {}, {}
    for frame, path in sorted(paths.items()):
        try:
            sizes[frame] = check_frame_file(path, fmt, spec.render.width, spec.render.height)
        except FrameInvalid as exc:
            bad[frame] = str(exc)
    if not bad and len(set(sizes.values())) > 1:
        first = sizes[min(sizes)]
        bad = {f: f"is {w}x{h} pixels, not {first[0]}x{first[1]} like frame {min(sizes)}"
               for f, (w, h) in sizes.items() if (w, h) != first}  # fmt: skip
    if bad:
        details = "; ".join(f"frame {f} {why}" for f, why in list(bad.items())[:5])
        raise FramesInvalidError(
            f"{len(bad)} frame(s) in {spec.output.frames_uri} are not valid images ({describe_frames(sorted(bad))}): "
            f"{details}. Nothing was uploaded; run 'retry', which re-checks the frames and renders these again."
        )


def fetch_frames(store: Store, uris: list[str], dests: list[Path]) -> None:
    """Download frames concurrently; a file:// store's frames are linked, not copied."""
    if uris and parse_uri(uris[0]).scheme == "file":
        for uri, dest in zip(uris, dests):
            os.symlink(parse_uri(uri).path, dest)
        return

    def fetch(pair: tuple[str, Path]) -> None:
        uri, dest = pair
        try:
            store.get_file(uri, dest)
        except StorageError as exc:
            raise WorkerRetryableError(f"Cannot download frame {uri}: {exc}") from None

    from concurrent.futures import ThreadPoolExecutor  # only S3 needs the pool

    with ThreadPoolExecutor(max_workers=DOWNLOAD_THREADS, thread_name_prefix="frames") as pool:
        list(pool.map(fetch, zip(uris, dests)))


def stitch(spec: JobSpec, scratch: Path, stores: StoreCache | None = None) -> str:
    """Encode and upload; returns the video's URI."""
    stores = stores or StoreCache()
    video = spec.output.video
    assert video is not None
    check_settings(video.codec, video.container, video.audio.codec if video.audio else None)
    store = stores(spec.output.frames_uri)
    present = list_present(spec, store)
    expected = spec.frames
    missing = missing_frames(expected, set(present))
    if missing:
        text = f"{len(missing)} of {len(expected)} frame(s) are missing from {spec.output.frames_uri}: " + (
            describe_frames(missing)
        )
        if not present:
            raise FramesMissingError(f"No frames to stitch: {text}.")
        if not video.allow_partial:
            raise FramesMissingError(
                f"{text}. Retry the failed slices, or allow a partial video to stitch what exists."
            )
        log.warning("Partial video (allowed by the spec): %s", text)
    ffmpeg = find_ffmpeg()
    exr = spec.output.image_format == "OPEN_EXR"
    if exr and not has_filters(("zscale", "tonemap"), ffmpeg):
        raise VideoSettingsError(
            "EXR frames need tone mapping before video encoding, and this worker's ffmpeg has no "
            "zscale/tonemap filters: render PNG frames for the video, or use an ffmpeg built with zimg."
        )
    frames = sorted(present)
    start, numbers = local_layout(frames)
    ext = spec.output.extension
    source = parse_uri(spec.output.frames_uri)
    if source.scheme == "file":
        # The store's own files are checked (a link there is refused, never followed) ...
        check_frames(spec, {f: str(parse_uri(present[f]).path) for f in frames})
    if source.scheme == "file" and numbers == frames:
        # ... and contiguous frames in a folder are read in place by ffmpeg, nothing to stage.
        pattern = str(source.path / f"frame_%06d.{ext}")
    else:
        frame_dir = scratch / "frames"
        frame_dir.mkdir()
        dests = [frame_dir / f"f{n:06d}.{ext}" for n in numbers]
        fetch_frames(store, [present[f] for f in frames], dests)
        if source.scheme != "file":
            check_frames(spec, {f: str(d) for f, d in zip(frames, dests)})
        pattern = str(frame_dir / f"f%06d.{ext}")
    audio_path = ""
    if video.audio is not None:
        audio_path = str(scratch / "audio" / Path(video.audio.path).name)
        try:
            stores(spec.inputs.uri).get_file(spec.input_uri(video.audio.path), audio_path)
        except StorageError as exc:
            raise WorkerRetryableError(f"Cannot download the audio track {video.audio.path!r}: {exc}") from None
    out_dir = scratch / "out"
    out_dir.mkdir()
    request = EncodeRequest(
        pattern=pattern,
        start_number=start,
        frame_count=len(frames),
        fps_num=video.fps_num,
        fps_den=video.fps_den,
        output=str(out_dir / f"video.{video.container}"),
        codec=video.codec,
        container=video.container,
        quality=video.quality,
        exr=exr,
        width=video.width,
        height=video.height,
        poster=str(out_dir / "poster.jpg"),
        audio=audio_path,
        audio_codec=video.audio.codec if video.audio else "aac",
        audio_bitrate_kbps=video.audio.bitrate_kbps if video.audio else 192,
    )
    probe = VideoProbe(find_ffprobe(ffmpeg))  # starts now: its start-up overlaps the encode
    try:
        run_ffmpeg(build_encode_argv(request, ffmpeg))
        check_video(request, probe)  # before any upload: a short or broken video never leaves
    finally:
        probe.close()
    out_store = stores(spec.output.video_uri)
    try:
        out_store.put_file(request.output, spec.video_file_uri())
        out_store.put_file(request.poster, spec.poster_uri())
    except StorageError as exc:
        raise WorkerRetryableError(f"Uploading the video failed: {exc}") from None
    size = os.path.getsize(request.output)
    log.info(
        "Stitched %d frame(s) at %d/%d fps into %s (%.1f MB), poster %s",
        len(frames), video.fps_num, video.fps_den, spec.video_file_uri(), size / 1e6, spec.poster_uri(),
    )  # fmt: skip
    return spec.video_file_uri()


def _on_signal(signum: int, _frame: Any) -> None:
    # Raised in the main thread: run_ffmpeg's cleanup stops ffmpeg; nothing half-uploaded stays.
    raise InterruptedBySignal(f"Stitch interrupted by {signal.Signals(signum).name}; run it again.")


def run_stitch(env: WorkerEnv | None = None) -> int:
    """Entry point of ``worker stitch``: returns the exit code (see worker/README.md)."""
    env = env or WorkerEnv.from_env()
    log.info("worker stitch: spec %s, attempt %d", env.spec_uri, env.attempt)
    spec, spec_store = load_spec(env.spec_uri)
    stores = StoreCache()
    stores.seed(env.spec_uri, spec_store)
    if spec.output.video is None:
        log.info("The spec asks for no video: nothing to stitch.")
        return SUCCESS
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    scratch = Path(tempfile.mkdtemp(prefix="abr-stitch-", dir=env.scratch or None))
    try:
        stitch(spec, scratch, stores)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        shutil.rmtree(scratch, ignore_errors=True)
    return SUCCESS
