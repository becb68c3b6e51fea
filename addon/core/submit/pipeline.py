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
from pathlib import Path

from ..aws.session import AwsSettings
from ..jobspec import JobSpec, utc_now_iso
from .options import MissingFilesError, PackReport, Progress, SubmissionCancelled, SubmitOptions
from .scene import SceneSnapshot

log = logging.getLogger(__name__)


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
    from .. import __version__
    from ..storage import open_store, parse_uri
    from .packing import missing_files_message, pack_blend
    from .soundtrack import add_soundtrack
    from .specbuild import build_spec, new_submission_id, submission_paths
    from .upload import upload_inputs

    cancel = cancel or threading.Event()
    report_progress = _safe(progress)
    if not root_uri.endswith("/"):
        root_uri += "/"
    parse_uri(root_uri)  # a bad URI fails before any work
    if snapshot.missing_files and not options.allow_missing:
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
            blender_missing=snapshot.missing_files,
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

        audio_path = add_soundtrack(blend_copy, snapshot, options, packed, report, cancel)

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
