"""ffmpeg argv for stitching frames into a video and a poster: pure functions, plus one runner.

One ffmpeg run makes both outputs: the frames go through one filter graph (EXR tone
mapping when needed, padding to even width and height), then split into the video
(``yuv420p`` by default, BT.709) and the poster JPEG (the middle frame).

Argv is always a list; no user text reaches a shell.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass

from .failures import EncodeFailed, VideoSettingsError

log = logging.getLogger(__name__)

#: which containers can carry which video codecs (what ffmpeg's muxers accept and players read)
CONTAINER_CODECS = {
    "mp4": ("h264", "h265", "vp9", "av1"),
    "mov": ("h264", "h265", "prores"),
    "mkv": ("h264", "h265", "prores", "vp9", "av1"),
    "webm": ("vp9", "av1"),
}
#: audio codec names the spec may use -> ffmpeg encoder
AUDIO_ENCODERS = {
    "aac": "aac",
    "mp3": "libmp3lame",
    "opus": "libopus",
    "vorbis": "libvorbis",
    "flac": "flac",
    "pcm": "pcm_s16le",
}
CONTAINER_AUDIO = {
    "mp4": ("aac", "mp3", "opus", "flac"),
    "mov": ("aac", "mp3", "pcm"),
    "mkv": tuple(AUDIO_ENCODERS),
    "webm": ("opus", "vorbis"),
}

#: linear scene-referred EXR (Blender's Linear Rec.709) -> display-referred BT.709, via a
#: filmic (Hable) curve; EXR never reaches an 8-bit encoder raw
EXR_TONEMAP = (
    "zscale=tin=linear:t=linear:npl=100:pin=bt709:p=bt709,format=gbrpf32le,"
    "tonemap=tonemap=hable:desat=0,"
    "zscale=tin=linear:t=bt709:pin=bt709:p=bt709,format=gbrp"
)
PAD_EVEN = "pad=ceil(iw/2)*2:ceil(ih/2)*2"


@dataclass(frozen=True)
class EncodeRequest:
    """Everything one ffmpeg run needs, as plain values."""

    pattern: str  # image2 input pattern, e.g. /tmp/x/frame_%06d.png
    start_number: int
    frame_count: int
    fps_num: int
    fps_den: int
    output: str
    codec: str = "h264"
    container: str = "mp4"
    quality: int = 20  # CRF-like, lower is better
    exr: bool = False
    width: int = 0  # the video's size from the spec (chooses an AV1 encoder); 0 = unknown
    height: int = 0
    poster: str = ""  # "" = no poster
    audio: str = ""  # path of an audio file to mux in; "" = none
    audio_codec: str = "aac"
    audio_bitrate_kbps: int = 192


def check_settings(codec: str, container: str, audio_codec: str | None = None) -> None:
    """Refuse codec/container/audio combinations ffmpeg would reject or players cannot read."""
    allowed = CONTAINER_CODECS.get(container)
    if allowed is None:
        raise VideoSettingsError(
            f"Video container {container!r} is not supported; use one of {list(CONTAINER_CODECS)}."
        )
    if codec not in allowed:
        fits = [c for c, codecs in CONTAINER_CODECS.items() if codec in codecs]
        raise VideoSettingsError(
            f"A {container} file cannot hold {codec} video: choose container {' or '.join(fits)} for "
            f"{codec}, or codec {' / '.join(allowed)} for {container}."
        )
    if audio_codec is not None:
        if audio_codec not in AUDIO_ENCODERS:
            raise VideoSettingsError(
                f"Audio codec {audio_codec!r} is not supported; use one of {list(AUDIO_ENCODERS)}."
            )
        if audio_codec not in CONTAINER_AUDIO[container]:
            raise VideoSettingsError(
                f"A {container} file cannot hold {audio_codec} audio: use "
                f"{' or '.join(CONTAINER_AUDIO[container])}."
            )


def pixel_format(codec: str) -> str:
    # ProRes has no 4:2:0 profile; everything else plays everywhere as yuv420p.
    return "yuv422p10le" if codec == "prores" else "yuv420p"


def video_encoder_args(codec: str, quality: int, width: int = 0, height: int = 0) -> list[str]:
    """Encoder and rate control for a spec codec, from Debian's ffmpeg build."""
    q = str(quality)
    if codec == "h264":
        return ["-c:v", "libx264", "-preset", "medium", "-crf", q]
    if codec == "h265":
        return ["-c:v", "libx265", "-preset", "medium", "-crf", q, "-tag:v", "hvc1",
                "-x265-params", "log-level=error"]  # fmt: skip
    if codec == "vp9":
        return ["-c:v", "libvpx-vp9", "-crf", q, "-b:v", "0", "-row-mt", "1", "-deadline", "good",
                "-cpu-used", "4"]  # fmt: skip
    if codec == "av1":
        if width >= 64 and height >= 64:  # SVT-AV1 refuses frames under 64 pixels
            return ["-c:v", "libsvtav1", "-crf", q, "-preset", "8"]
        return ["-c:v", "libaom-av1", "-crf", q, "-b:v", "0", "-cpu-used", "6", "-row-mt", "1"]
    if codec == "prores":
        # ProRes has profiles, not CRF: 422 HQ; quality does not apply.
        return ["-c:v", "prores_ks", "-profile:v", "3", "-vendor", "apl0"]
    raise VideoSettingsError(f"Video codec {codec!r} is not supported; use h264, h265, prores, vp9 or av1.")


def filter_graph(req: EncodeRequest) -> str:
    """``[0:v]`` -> ``[vout]`` (and ``[poster]`` when asked)."""
    chain = [EXR_TONEMAP] if req.exr else []
    chain.append(PAD_EVEN)
    to_video = f"scale=out_color_matrix=bt709:out_range=tv,format={pixel_format(req.codec)}"
    if not req.poster:
        return "[0:v]" + ",".join([*chain, to_video]) + "[vout]"
    middle = req.frame_count // 2
    return (
        "[0:v]" + ",".join([*chain, "split=2[v][p]"])
        + f";[v]{to_video}[vout]"
        + f";[p]select='eq(n,{middle})'[poster]"
    )  # fmt: skip


def build_encode_argv(req: EncodeRequest, ffmpeg: str = "ffmpeg") -> list[str]:
    """The full ffmpeg command line for one stitch."""
    check_settings(req.codec, req.container, req.audio_codec if req.audio else None)
    if req.frame_count < 1:
        raise VideoSettingsError("There are no frames to encode.")
    # -xerror: a frame that does not decode stops ffmpeg (without it, it is skipped: a short video)
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-xerror", "-y",
            "-framerate", f"{req.fps_num}/{req.fps_den}", "-start_number", str(req.start_number),
            "-i", req.pattern]  # fmt: skip
    if req.audio:
        argv += ["-i", req.audio]
    argv += ["-filter_complex", filter_graph(req), "-map", "[vout]"]
    argv += video_encoder_args(req.codec, req.quality, req.width, req.height)
    argv += ["-pix_fmt", pixel_format(req.codec)]
    argv += ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"]
    argv += ["-frames:v", str(req.frame_count)]
    if req.audio:
        argv += ["-map", "1:a:0", "-c:a", AUDIO_ENCODERS[req.audio_codec]]
        if req.audio_codec not in ("flac", "pcm"):
            argv += ["-b:a", f"{req.audio_bitrate_kbps}k"]
        # pad short audio with silence; -shortest then ends it with the last video frame
        argv += ["-af", "apad", "-shortest"]
    if req.container in ("mp4", "mov"):
        argv += ["-movflags", "+faststart"]
    argv.append(req.output)
    if req.poster:
        argv += ["-map", "[poster]", "-frames:v", "1", "-update", "1", "-q:v", "3", req.poster]
    return argv


def find_ffmpeg() -> str:
    found = os.environ.get("FFMPEG_BIN") or shutil.which("ffmpeg")
    if not found:
        raise VideoSettingsError(
            "ffmpeg is not installed in this worker image (not on PATH, FFMPEG_BIN unset); "
            "rebuild the image from the project's Dockerfile."
        )
    return found


def run_ffmpeg(argv: list[str]) -> None:
    """Run ffmpeg; translate its failures into errors that say what to change."""
    log.info("Running %s", " ".join(argv))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace")  # fmt: skip
    try:
        _, err = proc.communicate()
    finally:
        if proc.poll() is None:  # interrupted (SIGTERM): do not leave ffmpeg running
            proc.kill()
            proc.wait()
    if proc.returncode == 0:
        return
    lines = [line for line in err.strip().splitlines() if line.strip()]
    text = " / ".join(lines[-5:]) or f"exit status {proc.returncode}"
    if "Unknown encoder" in err or "No such filter" in err:
        raise VideoSettingsError(
            f"This worker's ffmpeg lacks what the video settings need ({text}); choose another "
            "codec or rebuild the image with an ffmpeg that has it."
        )
    raise EncodeFailed(f"ffmpeg failed: {text}")


def has_filters(names: tuple[str, ...], ffmpeg: str) -> bool:
    """Whether this ffmpeg build has every named filter (EXR tone mapping needs zscale + tonemap)."""
    out = subprocess.run([ffmpeg, "-hide_banner", "-filters"], capture_output=True, text=True, check=False)
    available = {parts[1] for parts in (line.split() for line in out.stdout.splitlines()) if len(parts) > 2}
    return all(n in available for n in names)
