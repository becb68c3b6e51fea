"""Build the job spec from a scene snapshot, the user's options and the packed manifest.

Pure and deterministic: the same snapshot, options and manifest give the same spec,
whether the snapshot came from the add-on (in-process) or the CLI (a child Blender).
Only :func:`new_submission_id` draws randomness, and it is kept apart on purpose.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import PurePosixPath

from ..errors import JobSpecError
from ..frames import chunk_frames, frame_range, parse_frames
from ..jobspec import (
    AudioTrack,
    InputManifest,
    JobSpec,
    OutputSpec,
    RenderSettings,
    VideoSettings,
)
from ..still_split import StillSplit, check_request, split_slices
from ..storage import join_uri
from .options import SubmitOptions
from .scene import SceneSnapshot

#: Blender's FFmpeg codec enum -> the spec's codec
CODECS = {"H264": "h264", "H265": "h265", "HEVC": "h265", "PRORES": "prores", "WEBM": "vp9", "AV1": "av1"}
#: Blender's FFmpeg container enum -> the spec's container
CONTAINERS = {"MPEG4": "mp4", "QUICKTIME": "mov", "MKV": "mkv", "WEBM": "webm"}
#: Blender's constant_rate_factor enum -> the CRF value Blender itself uses
CRF = {"LOSSLESS": 0, "PERC_LOSSLESS": 17, "HIGH": 20, "MEDIUM": 23, "LOW": 26, "VERYLOW": 29, "LOWEST": 32}
#: which containers can hold which codec (the first one is the fallback)
_CODEC_CONTAINERS = {
    "h264": ("mp4", "mov", "mkv"),
    "h265": ("mp4", "mov", "mkv"),
    "prores": ("mov", "mkv"),
    "vp9": ("webm", "mkv", "mp4"),
    "av1": ("mp4", "webm", "mkv"),
}

DEFAULT_CODEC, DEFAULT_CONTAINER, DEFAULT_QUALITY = "h264", "mp4", 20


def submission_paths(root_uri: str, submission_id: str) -> dict[str, str]:
    """Where a submission's objects live under the root (every URI ends in '/').

    Frames sit under the top-level ``frames/`` prefix, not beside the video, so the
    bucket's lifecycle rule (which can only match a leading prefix) expires them while
    videos are kept.
    """
    base = join_uri(root_uri, f"submissions/{submission_id}/")
    return {
        "inputs": join_uri(root_uri, "inputs/"),
        "base": base,
        "spec": base + "spec.json",
        "frames": join_uri(root_uri, f"frames/{submission_id}/"),
        "progress": base + "progress/",
        "video": base + "video/",
    }


def sanitize_name(name: str, limit: int = 100) -> str:
    """Letters, digits, '-' and '_' only (job names, ids, tags); never empty."""
    clean = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-_")[:limit].strip("-_")
    return clean or "untitled"


def new_submission_id(blend_name: str, now: datetime | None = None) -> str:
    """``<blend stem>-<UTC yyyymmdd-hhmmss>-<6 hex>``: new for every submission."""
    stem = PurePosixPath(blend_name.replace("\\", "/")).stem if blend_name else ""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{sanitize_name(stem)}-{stamp}-{secrets.token_hex(3)}"


def scene_frames(snapshot: SceneSnapshot, frames: str = "") -> list[int]:
    """The frames to render: the override list (the scene's step applies to its ranges
    that carry no ``xN`` of their own, as the add-on's field says), else the scene's range."""
    if frames.strip():
        return parse_frames(frames, snapshot.frame_step)
    return frame_range(snapshot.frame_start, snapshot.frame_end, snapshot.frame_step)


def frame_rate(snapshot: SceneSnapshot) -> Fraction:
    """``fps / fps_base`` exactly: 30/1.001 is 30000/1001. Blender keeps fps_base as a
    float32 (1.001 reads 1.00100004...), so the base is snapped to a fraction first."""
    return Fraction(snapshot.fps) / Fraction(snapshot.fps_base).limit_denominator(1000)


def video_settings(snapshot: SceneSnapshot, options: SubmitOptions, name: str) -> VideoSettings:
    """Codec, container and quality from the options, else from the scene's FFmpeg settings
    when it outputs a movie, else H.264 in MP4 at CRF 20."""
    codec, container, quality = DEFAULT_CODEC, DEFAULT_CONTAINER, DEFAULT_QUALITY
    if snapshot.is_movie:
        codec = CODECS.get(snapshot.ffmpeg_codec, DEFAULT_CODEC)
        container = CONTAINERS.get(snapshot.ffmpeg_format, DEFAULT_CONTAINER)
        quality = CRF.get(snapshot.ffmpeg_crf, DEFAULT_QUALITY)
    codec = options.video_codec or codec
    if options.video_container:
        container = options.video_container
    elif codec in _CODEC_CONTAINERS and container not in _CODEC_CONTAINERS[codec]:
        container = _CODEC_CONTAINERS[codec][0]  # e.g. ProRes from an MPEG-4 scene: .mov
    if options.video_quality is not None:
        quality = options.video_quality
    fps = frame_rate(snapshot)
    return VideoSettings(
        fps_num=fps.numerator,
        fps_den=fps.denominator,
        width=snapshot.width,
        height=snapshot.height,
        codec=codec,
        container=container,
        quality=quality,
        name=name,
        allow_partial=options.allow_partial_video,
    )


def check_render_size(snapshot: SceneSnapshot) -> None:
    """The scene renders at least one pixel each way (a low Resolution % can round to 0)."""
    if snapshot.width >= 1 and snapshot.height >= 1:
        return
    raise JobSpecError(
        f"Scene {snapshot.scene!r} renders at {snapshot.width}x{snapshot.height} pixels "
        f"({snapshot.resolution_x}x{snapshot.resolution_y} at {snapshot.resolution_percentage}%): raise "
        "Output Properties > Format > Resolution % (or the resolution) so both sides are at least 1 pixel."
    )


def build_spec(
    snapshot: SceneSnapshot,
    options: SubmitOptions,
    manifest_files: dict[str, str],
    main_blend: str,
    root_uri: str,
    submission_id: str,
    created_at: str,
    tool_version: str,
    audio_path: str | None = None,
) -> JobSpec:
    """The validated job spec; raises JobSpecError / FrameRangeError naming the problem."""
    source = snapshot.blend_path.replace("\\", "/") or main_blend
    source_name = PurePosixPath(source).name
    stem = PurePosixPath(source_name).stem or "video"
    check_render_size(snapshot)
    paths = submission_paths(root_uri, submission_id)
    frames = scene_frames(snapshot, options.frames)
    check_request(options.split_samples or 1, snapshot.engine, frames, int(snapshot.facts.get("cycles_samples", 0)))
    split = StillSplit(options.split_samples, frames) if options.split_samples > 1 else None
    slices = split_slices(frames, split.parts) if split else chunk_frames(frames, chunk_size=options.chunk_size)
    image_format = options.image_format
    if split and image_format == "PNG" and snapshot.file_format in ("OPEN_EXR", "JPEG"):
        image_format = snapshot.file_format  # a split still keeps the scene's own image format
    video = None
    if options.video and not split:  # a split still is merged into images, not stitched
        video = video_settings(snapshot, options, stem)
        if audio_path:
            video.audio = AudioTrack(path=audio_path)
    extra = {"scene_output_path": snapshot.output_path} if snapshot.output_path else {}
    spec = JobSpec(
        submission_id=submission_id,
        created_at=created_at,
        blender_version=snapshot.blender_version,
        tool_version=tool_version,
        inputs=InputManifest(uri=paths["inputs"], files=dict(sorted(manifest_files.items())), main_blend=main_blend),
        slices=slices,
        output=OutputSpec(
            frames_uri=paths["frames"],
            progress_uri=paths["progress"],
            video_uri=paths["video"],
            image_format=image_format,
            video=video,
        ),
        render=RenderSettings(
            engine=snapshot.engine,
            device=options.device or snapshot.device,
            threads=options.threads,
            scene=snapshot.scene,
            # 0 x 0 = any size: a render cropped to its border is smaller than the resolution
            # (the stitch still checks that every frame has the same size)
            width=0 if snapshot.facts.get("crop_to_border") else snapshot.width,
            height=0 if snapshot.facts.get("crop_to_border") else snapshot.height,
            persistent_data=options.persistent_data and snapshot.engine == "CYCLES" and max(map(len, slices)) > 1,
        ),
        source_name=source_name,
        still_split=split,
    )
    spec.extra.update(extra)
    spec.validate()
    return spec
