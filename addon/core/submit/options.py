"""What every step of the submission pipeline shares: the user's options, the report and
progress messages it produces, and the two ways it stops early (cancelled, files
missing). The steps (packing, upload, spec building) import these from here, below the
pipeline that ties them together, so no step imports the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import AwsBatchRenderError


class SubmissionCancelled(AwsBatchRenderError):
    """The user cancelled the submission while it was packing or uploading."""

    exit_code = 130


class MissingFilesError(AwsBatchRenderError):
    """Files the scene uses do not exist (and the user did not allow that)."""

    exit_code = 40

    def __init__(self, message: str, missing: list[str] | None = None) -> None:
        super().__init__(message)
        self.missing = list(missing or [])


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
    audio: bool = True  # mix the scene's sound into the video when it has any
    # On S3, inputs uploaded longer ago than this go up again: the stack's lifecycle expires
    # inputs/ by age (InputRetentionDays, 30 by default), and a render must not outlive them.
    refresh_inputs_after_days: float | None = 7.0
    persistent_data: bool = False  # Cycles Persistent Data in multi-frame chunks (quote.model.persistent_data)
    split_samples: int = 0  # 2+: split each frame in this many sample ranges (a still); 0/1: no split
    blender_bin: str = ""  # a Blender binary for child processes ("" = BLENDER_BIN, or this Python's bpy)


@dataclass
class PackReport:
    files: dict[str, str] = field(default_factory=dict)  # relpath -> sha256
    missing: list[str] = field(default_factory=list)
    outside_project: list[str] = field(default_factory=list)
    bytes_total: int = 0
    bytes_uploaded: int = 0
    files_uploaded: int = 0
    main_blend: str = ""  # relpath of the main .blend in the pack
    project_root: str = ""  # the folder the pack mirrors
    seconds: dict[str, float] = field(default_factory=dict)  # time per phase: pack, upload, spec
    warnings: list[str] = field(default_factory=list)  # what was left out, for the user to see


@dataclass
class Progress:
    """One progress message (plain data: safe to pass to the main thread)."""

    phase: str  # "pack", "upload", "spec"
    done: int
    total: int
    message: str = ""
