"""The submission pipeline shared by the add-on, the CLI and both backends.

From a saved copy of the scene and its snapshot: pack (blender-asset-tracer), upload
what the store lacks (content-addressed), build the job spec, write it under the
submission's own prefix. Backends then start the jobs from the written spec.

Runs in a background thread in the add-on: it never touches bpy; progress goes through
a callback and a cancel event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .aws import AwsSettings
from .jobspec import JobSpec
from .scene import SceneSnapshot


@dataclass
class SubmitOptions:
    frames: str = ""  # frame-list override ("1-10,20"); "" = the scene's range and step
    chunk_size: int = 10
    image_format: str = "PNG"  # PNG, OPEN_EXR or JPEG
    video: bool = True
    video_codec: str = ""  # "" = from the scene's FFmpeg settings when it outputs a movie, else h264
    video_container: str = ""
    video_quality: int | None = None
    device: str = ""  # "" = the scene's Cycles device
    threads: int = 0
    allow_missing: bool = False  # continue when referenced files are missing
    allow_partial_video: bool = False
    upload_concurrency: int = 10


@dataclass
class PackReport:
    files: dict[str, str] = field(default_factory=dict)  # relpath -> sha256
    missing: list[str] = field(default_factory=list)
    outside_project: list[str] = field(default_factory=list)
    bytes_total: int = 0
    bytes_uploaded: int = 0
    files_uploaded: int = 0


@dataclass
class Progress:
    """One progress message (plain data: safe to pass to the main thread)."""

    phase: str  # "pack", "upload", "spec"
    done: int
    total: int
    message: str = ""


def prepare_submission(
    blend_copy: Path,
    snapshot: SceneSnapshot,
    options: SubmitOptions,
    root_uri: str,
    settings: AwsSettings | None = None,
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
) -> tuple[JobSpec, str, PackReport]:
    """Pack ``blend_copy``, upload to ``root_uri`` (``s3://bucket/`` or ``file:///dir/``),
    write the spec; returns (spec, spec_uri, report)."""
    raise NotImplementedError("implemented by the submission core (issue 4)")
