"""A video counts only when ffprobe shows every frame the spec asked for: checked after
ffmpeg and before any upload, so a short or broken video never reaches the store.

``-count_packets`` reads the container, not the pictures (one packet per video frame).
ffprobe is started *before* the encode and reads the finished video from a pipe, so its
start-up (loading its libraries, ~0.3 s) overlaps ffmpeg's run instead of adding to it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading

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


class VideoProbe:
    """An ffprobe started ahead of the encode, waiting on its stdin for the finished video."""

    def __init__(self, ffprobe: str) -> None:
        argv = [ffprobe, "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
                "stream=nb_read_packets,duration:format=duration", "-of", "json", "-i", "pipe:0"]  # fmt: skip
        self.errors = tempfile.TemporaryFile()  # a file, not a pipe: stdout is read to its end first
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.errors.close()

    def probe(self, path: str) -> tuple[int, float | None]:
        """(video frames, video duration in seconds or None when the container does not say)."""

        def feed() -> None:
            assert self.proc.stdin is not None
            try:
                with open(path, "rb") as fh:
                    shutil.copyfileobj(fh, self.proc.stdin, 1 << 20)
            except OSError:  # ffprobe stopped reading (it has what it needs, or failed: see its exit)
                pass
            finally:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass

        writer = threading.Thread(target=feed, name="probe-feed", daemon=True)
        writer.start()
        try:
            assert self.proc.stdout is not None
            out = self.proc.stdout.read()
            self.proc.wait(timeout=300)
            self.errors.seek(0)
            err = self.errors.read()
        finally:
            self.close()
            writer.join(5)
        if self.proc.returncode != 0:
            text = err.decode(errors="replace").strip().splitlines()
            last = text[-1] if text else f"exit status {self.proc.returncode}"
            raise EncodeFailed(f"The encoded video cannot be read back (ffprobe: {last}); nothing was uploaded.")
        return _parse(out)


def _parse(out: bytes) -> tuple[int, float | None]:
    info = json.loads(out or b"{}")
    streams = info.get("streams") or [{}]
    try:
        frames = int(streams[0].get("nb_read_packets", 0))
    except (TypeError, ValueError):
        frames = 0
    duration = _seconds(streams[0].get("duration")) or _seconds((info.get("format") or {}).get("duration"))
    return frames, duration


def check_video(req: EncodeRequest, probe: VideoProbe) -> None:
    """Raise (retryable) unless the video has exactly the frames and length the spec asks for."""
    frames, duration = probe.probe(req.output)
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
