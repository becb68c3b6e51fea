"""The submission pipeline shared by the add-on, the CLI and both backends.

From a saved copy of the scene and its snapshot: pack (blender-asset-tracer), upload
what the store lacks (content-addressed), build the job spec, write it under the
submission's own prefix. Backends then start the jobs from the written spec.

Runs in a background thread in the add-on: it never touches bpy; progress goes through
a callback and a cancel event. The progress callback may be called from upload threads
too: it receives plain :class:`Progress` values and must only queue them.

Layout under the root URI::

    inputs/<sha256>                          packed files, shared by all submissions
    submissions/<submission_id>/spec.json    this submission's job spec
    frames/<submission_id>/                  rendered frames (expire with the bucket's lifecycle)
    submissions/<submission_id>/progress/    per-slice progress records
    submissions/<submission_id>/video/       the stitched video
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .aws import AwsSettings
from .errors import AwsBatchRenderError
from .jobspec import JobSpec, utc_now_iso
from .scene import SceneSnapshot

if TYPE_CHECKING:
    from .packing import PackResult

log = logging.getLogger(__name__)


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
    write the spec; returns (spec, spec_uri, report).

    ``blend_copy`` is a saved copy of the scene (or the user's file itself, for the CLI);
    ``snapshot.blend_path`` says where the user's file lives, so the pack mirrors the
    real project. Raises :class:`MissingFilesError` (unless ``options.allow_missing``),
    :class:`SubmissionCancelled` when ``cancel`` is set, and the storage, spec and
    packing errors of the core.
    """
    from . import __version__
    from .packing import pack_blend
    from .specbuild import build_spec, new_submission_id, submission_paths
    from .storage import open_store, parse_uri
    from .upload import upload_inputs

    cancel = cancel or threading.Event()
    report_progress = _safe(progress)
    if not root_uri.endswith("/"):
        root_uri += "/"
    parse_uri(root_uri)  # a bad URI fails before any work
    if snapshot.missing_files and not options.allow_missing:
        from .packing import missing_files_message

        raise MissingFilesError(
            missing_files_message(snapshot.missing_files, Path(snapshot.blend_path or blend_copy).parent),
            snapshot.missing_files,
        )

    report = PackReport()
    source_name = Path(snapshot.blend_path or blend_copy).name
    started = time.monotonic()
    report_progress(Progress("pack", 0, 0, f"Packing {source_name} and the files it uses"))
    with tempfile.TemporaryDirectory(prefix="abr-pack-") as tmp:
        packed = pack_blend(
            blend_copy,
            Path(tmp) / "pack",
            source_blend=snapshot.blend_path,
            allow_missing=options.allow_missing,
            progress=lambda done, total, name: report_progress(Progress("pack", done, total, name)),
            cancel=cancel,
        )
        report.files = dict(packed.files)
        report.missing = sorted(set(packed.missing) | set(snapshot.missing_files))
        report.outside_project = packed.outside_project
        report.bytes_total = packed.bytes_total
        report.main_blend = packed.main_blend
        report.project_root = packed.project_root
        report.seconds["pack"] = time.monotonic() - started

        audio_path = _add_soundtrack(blend_copy, snapshot, options, packed, report, cancel)

        submission_id = new_submission_id(source_name)
        paths = submission_paths(root_uri, submission_id)
        # Build the spec before uploading: a spec that cannot be valid fails in seconds,
        # not after minutes of upload.
        spec = build_spec(
            snapshot,
            options,
            packed.files,
            packed.main_blend,
            root_uri,
            submission_id,
            utc_now_iso(),
            __version__,
            audio_path=audio_path,
        )
        store = open_store(root_uri, settings, max_concurrency=options.upload_concurrency)

        started = time.monotonic()
        report.bytes_uploaded, report.files_uploaded = upload_inputs(
            packed.pack_dir,
            packed.files,
            paths["inputs"],
            store,
            progress=lambda p: report_progress(
                Progress("upload", p.bytes_done, p.bytes_total, f"{p.files_done}/{p.files_total} files")
            ),
            cancel=cancel,
            concurrency=options.upload_concurrency,
            refresh_after_days=options.refresh_inputs_after_days if root_uri.startswith("s3://") else None,
        )
        report.seconds["upload"] = time.monotonic() - started

    if cancel.is_set():
        raise SubmissionCancelled("Submission cancelled after the upload; no job spec was written.")
    started = time.monotonic()
    report_progress(Progress("spec", 0, 1, "Writing the job spec"))
    store.put_bytes(spec.to_json().encode("utf-8"), paths["spec"])
    report_progress(Progress("spec", 1, 1, paths["spec"]))
    report.seconds["spec"] = time.monotonic() - started
    log.info(
        "prepared %s: %d files (%d bytes), uploaded %d files (%d bytes), spec %s",
        submission_id, len(report.files), report.bytes_total, report.files_uploaded,
        report.bytes_uploaded, paths["spec"],
    )  # fmt: skip
    return spec, paths["spec"], report


SOUNDTRACK = "_audio/soundtrack.wav"


def _add_soundtrack(
    blend_copy: Path,
    snapshot: SceneSnapshot,
    options: SubmitOptions,
    packed: PackResult,
    report: PackReport,
    cancel: threading.Event,
) -> str | None:
    """Mix the scene's sound down into the pack (it rides along like any packed file) and
    return its relative path for the spec; None when there is no video or no sound. A
    failed mixdown leaves the video silent, with a warning, rather than stopping the render."""
    from .packing import sha256_file
    from .scene_reader import SceneReadError, mixdown_audio
    from .specbuild import scene_frames

    if not (options.video and options.audio and snapshot.has_audio) or cancel.is_set():
        return None
    frames = scene_frames(snapshot, options.frames)
    if frames != list(range(frames[0], frames[-1] + 1)):
        # Every rendered frame plays for 1/fps: with a step or gaps the video runs faster
        # than the scene, and its sound would drift. Better silent than out of sync.
        report.warnings.append(
            "The video will be silent: its frames skip some of the scene's (a frame step or gaps), "
            "so the scene's sound would not line up. Render every frame to keep the sound."
        )
        return None
    dest = packed.pack_dir / SOUNDTRACK
    try:
        mixdown_audio(blend_copy, dest, frames[0], frames[-1], snapshot.scene, options.blender_bin)
    except SceneReadError as exc:
        warning = f"The video will be silent: mixing down the scene's sound failed ({exc})."
        log.warning("%s", warning)
        report.warnings.append(warning)
        return None
    packed.files[SOUNDTRACK] = sha256_file(dest)
    packed.sizes[SOUNDTRACK] = dest.stat().st_size
    report.files[SOUNDTRACK] = packed.files[SOUNDTRACK]
    report.bytes_total = packed.bytes_total
    return SOUNDTRACK


def _safe(progress: Callable[[Progress], None] | None) -> Callable[[Progress], None]:
    """A progress callback that never breaks the pipeline when the caller's one fails."""

    def call(message: Progress) -> None:
        if progress is None:
            return
        try:
            progress(message)
        except Exception:
            log.exception("progress callback failed (ignored)")

    return call
