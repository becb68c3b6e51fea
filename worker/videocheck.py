"""A video counts only when ffprobe shows every frame the spec asked for: checked after
ffmpeg and before any upload, so a short or broken video never reaches the store.

``-count_packets`` reads the container's index, not the pictures (one packet per video
frame), so the check costs a fraction of the encode.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from addon.core.framecheck import FrameInvalid, check_frame_file

from .failures import EncodeFailed, VideoSettingsError
from .ffmpeg import EncodeRequest


def find_ffprobe(ffmpeg: str) -> str:
    beside = os.path.join(os.path.dirname(ffmpeg), "ffprobe")
    found = os.environ.get("FFPROBE_BIN") or (beside if os.path.isfile(beside) else shutil.which("ffprobe"))
    if not found:
        raise VideoSettingsError(
            "ffprobe is not installed in this worker image (not beside ffmpeg, not on PATH, FFPROBE_BIN unset); "
            "rebuild the image from the project's Dockerfile."
        )
    return found


def probe_video(path: str, ffprobe: str) -> tuple[int, float | None]:
    """(video frames, video duration in seconds or None when the container does not say)."""
    argv = [ffprobe, "-v", "error", "-select_streams", "v:0", "-count_packets",
            "-show_entries", "stream=nb_read_packets,duration:format=duration", "-of", "json", path]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", check=False, timeout=300)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise EncodeFailed(f"The encoded video cannot be read back (ffprobe: {last}); nothing was uploaded.")
    info = json.loads(proc.stdout or "{}")
    streams = info.get("streams") or [{}]
    try:
        frames = int(streams[0].get("nb_read_packets", 0))
    except (TypeError, ValueError):
        frames = 0
    duration = _seconds(streams[0].get("duration")) or _seconds((info.get("format") or {}).get("duration"))
    return frames, duration


def check_video(req: EncodeRequest, ffmpeg: str) -> None:
    """Raise (retryable) unless the video has exactly the frames and length the spec asks for."""
    frames, duration = probe_video(req.output, find_ffprobe(ffmpeg))
    if frames != req.frame_count:
        raise EncodeFailed(
            f"The encoded video has {frames} frame(s), not the {req.frame_count} stitched; nothing was uploaded "
            "(another attempt encodes it again)."
        )
    frame_s = req.fps_den / req.fps_num
    expected = req.frame_count * frame_s
    if duration is not None and not req.audio and abs(duration - expected) > max(frame_s / 2, 0.025):
        raise EncodeFailed(
            f"The encoded video lasts {duration:.3f} s, not the {expected:.3f} s of {req.frame_count} frame(s) at "
            f"{req.fps_num}/{req.fps_den} fps; nothing was uploaded (another attempt encodes it again)."
        )
    if req.poster:
        try:
            check_frame_file(req.poster, "JPEG")
        except FrameInvalid as exc:
            raise EncodeFailed(f"The poster ffmpeg wrote {exc}; nothing was uploaded.") from None


def _seconds(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
