"""The work the add-on does off the main thread: submit, poll, cancel, retry, logs,
download, preview, stack connect and connection test.

Threading rule: **these functions run in background threads and never touch bpy.**
They get plain data (a :class:`Target` read from the preferences on the main thread,
paths, records as JSON), call the core, and report through ``background.post``. Each is
started with ``background.start(...)``, which also turns exceptions into messages.
boto3 and the heavier core modules are imported here, inside the functions, so enabling
the add-on imports none of them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..core.aws.session import AwsSettings
from ..core.backends.base import SubmissionRecord
from ..core.errors import AwsBatchRenderError
from . import background as bg

log = logging.getLogger(__name__)

#: Serialises writes of submission records between threads (a poll saving the last
#: status must not undo a cancel or retry saved meanwhile).
RECORDS_LOCK = threading.Lock()


class TargetIncompleteError(AwsBatchRenderError):
    """The preferences lack what the chosen backend needs."""

    exit_code = 2


@dataclass(frozen=True)
class Target:
    """Where to render, as read from the preferences (no secrets: credentials come from
    the AWS profile or the default chain)."""

    backend: str  # "aws" or "local"
    settings: AwsSettings
    bucket: str = ""
    job_queue: str = ""
    render_job_definition: str = ""
    stitch_job_definition: str = ""
    gpu_job_queue: str = ""
    log_group: str = ""
    stack_name: str = ""
    blender_bin: str = ""  # bpy.app.binary_path: "" when running as the bpy module

    def missing(self) -> list[str]:
        """Preference fields the backend needs but that are empty."""
        if self.backend != "aws":
            return []
        need = {
            "Bucket": self.bucket,
            "Job queue": self.job_queue,
            "Render job definition": self.render_job_definition,
            "Stitch job definition": self.stitch_job_definition,
        }
        return [k for k, v in need.items() if not v]

    def require_complete(self) -> None:
        missing = self.missing()
        if missing:
            raise TargetIncompleteError(
                f"AWS Batch is not set up: {', '.join(missing)} missing. Open Preferences › Add-ons › "
                "AWS Batch Render and Connect to your stack (or fill the fields by hand)."
            )

    def root_uri(self) -> str:
        if self.backend == "local":
            from ..core.backends.local.state import default_store_uri

            return default_store_uri()
        return f"s3://{self.bucket}/"

    def make_backend(self) -> Any:
        from ..core.backends.factory import make_backend

        if self.backend == "local":
            # Inside a Blender binary sys.executable is Blender's Python, without a bpy
            # module: the local workers render with this Blender instead.
            extra = {"worker_env": {"BLENDER_BIN": self.blender_bin}} if self.blender_bin else {}
            return make_backend("local", **extra)
        extra = {"log_group": self.log_group} if self.log_group else {}
        return make_backend(
            "aws",
            settings=self.settings,
            job_queue=self.job_queue,
            gpu_job_queue=self.gpu_job_queue,  # the backend picks it for GPU specs
            render_job_definition=self.render_job_definition,
            stitch_job_definition=self.stitch_job_definition,
            **extra,
        )


# --- submit ------------------------------------------------------------------------------


def submit(
    blend_copy: str,
    snapshot: Any,
    options: Any,
    target: Target,
    records_dir: str,
    temp_dir: str,
    *,
    cancel: threading.Event,
    budget: Any = None,
    measure_chunk: bool = False,
) -> None:
    """Pack, upload, write the spec, submit, record. ``temp_dir`` (holding the saved copy)
    is removed at the end whatever happens. ``budget``: the panel's cap (a
    ``core.quote.request.BudgetRequest``), priced before anything is uploaded and kept in
    the record, where every poll counts the spend against it. ``measure_chunk``: size the
    chunks from a scout render first (``quote_tasks.measure_for_submit``)."""
    from ..core.quote.request import resolve_budget
    from ..core.records import RecordStore
    from ..core.submit.pipeline import prepare_submission

    try:
        target.require_complete()
        cap = resolve_budget(budget, target.settings, target.stack_name)
        note = ""
        if measure_chunk:
            from .quote_tasks import measure_for_submit

            options, note = measure_for_submit(
                blend_copy, snapshot, options, target.backend, cancel=cancel, target=target
            )

        def progress(p: Any) -> None:
            bg.post(bg.SubmitProgress(p.phase, int(p.done), int(p.total), p.message))

        spec, spec_uri, report = prepare_submission(
            Path(blend_copy),
            snapshot,
            options,
            target.root_uri(),
            settings=target.settings if target.backend == "aws" else None,
            progress=progress,
            cancel=cancel,
        )
        if cancel.is_set():
            from ..core.submit.options import SubmissionCancelled

            raise SubmissionCancelled("Submission cancelled before the jobs were started; nothing runs.")
        bg.post(bg.SubmitProgress("submit", 0, 1, "Starting the jobs"))
        backend = target.make_backend()
        record = backend.submit(spec, spec_uri, snapshot.blend_path)
        if cap is not None:
            cap.save_to(record)
        with RECORDS_LOCK:
            RecordStore(records_dir).save(record)
        bg.post(bg.SubmitProgress("submit", 1, 1, "Submitted"))
        bg.post(bg.SubmitDone(record.to_json(), _summary(record, report) + (f" ({note})" if note else "")))
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def _summary(record: SubmissionRecord, report: Any) -> str:
    files = len(getattr(report, "files", {}) or {})
    uploaded = getattr(report, "files_uploaded", 0)
    mb = getattr(report, "bytes_uploaded", 0) / 1e6
    text = (
        f"Submitted {record.submission_id}: {record.frames_total} frames in {record.slice_count} chunks; "
        f"{files} files packed, {uploaded} uploaded ({mb:.1f} MB)"
    )
    outside = getattr(report, "outside_project", []) or []
    if outside:
        text += f"; {len(outside)} files outside the project folder"
    for warning in getattr(report, "warnings", []) or []:
        text += f". Warning: {warning}"
    return text


# --- following submissions ---------------------------------------------------------------


_BACKENDS: dict[tuple[str, str, str], Any] = {}
_BACKENDS_LOCK = threading.Lock()


def _backend_for_polling(record: SubmissionRecord) -> Any:
    """One backend per submission across polls: it keeps its clients, the spec it read and
    its caches (failed chunks, progress records), so a refresh costs what the backend's
    docstring promises instead of a new boto3 session and a spec read every time."""
    from ..core.backends.factory import backend_for_record

    key = (record.submission_id, record.backend, json.dumps(record.settings, sort_keys=True))
    with _BACKENDS_LOCK:
        backend = _BACKENDS.get(key)
        if backend is None:
            backend = _BACKENDS[key] = backend_for_record(record)
        return backend


def poll(submission_ids: list[str], records_dir: str, *, cancel: threading.Event) -> None:
    """One status read per submission; each answer is posted and kept in its record."""
    from ..core.quote.budget import enforce_budget
    from ..core.records import RecordStore

    store = RecordStore(records_dir)
    for submission_id in submission_ids:
        if cancel.is_set():
            return
        try:
            record = store.load(submission_id)
            before = json.dumps(record.jobs, sort_keys=True)
            backend = _backend_for_polling(record)
            # the budget cap, counted as the CLI's refresh counts it (core.quote.budget)
            status = enforce_budget(backend, record, backend.status(record))
        except AwsBatchRenderError as exc:
            bg.post(bg.TaskFailed("poll", str(exc), submission_id))
            continue
        except Exception as exc:
            message = bg.translate(exc, "poll")
            if message is None:
                raise
            bg.post(bg.TaskFailed("poll", message, submission_id))
            continue
        data = status.to_dict()
        bg.post(bg.StatusUpdate(record.submission_id, data))
        try:
            with RECORDS_LOCK:  # re-read: a cancel or retry may have changed it meanwhile
                fresh = store.load(submission_id)
                fresh.last_status = data
                if json.dumps(record.jobs, sort_keys=True) != before:  # stopped by budget: keep the stop
                    fresh.jobs = record.jobs
                store.save(fresh)
        except (OSError, AwsBatchRenderError) as exc:
            log.warning("could not keep the status of %s: %s", submission_id, exc)


def cancel_jobs(record_json: str, records_dir: str, *, cancel: threading.Event) -> None:
    from ..core.backends.factory import backend_for_record
    from ..core.records import RecordStore

    record = SubmissionRecord.from_json(record_json)
    backend_for_record(record).cancel(record)
    with RECORDS_LOCK:
        RecordStore(records_dir).save(record)  # the backend notes the cancel in the record
    bg.post(bg.RecordUpdated(record.to_json(), f"Cancelled {record.submission_id}"))


def retry_failed(record_json: str, records_dir: str, *, cancel: threading.Event) -> None:
    from ..core.backends.factory import backend_for_record
    from ..core.records import RecordStore

    record = SubmissionRecord.from_json(record_json)
    new = backend_for_record(record).retry_failed(record)
    with RECORDS_LOCK:
        RecordStore(records_dir).save(new)
    bg.post(bg.RecordUpdated(new.to_json(), f"Retrying the failed chunks of {record.submission_id}"))


def fetch_logs(record_json: str, slice_index: int | None, lines: int, *, cancel: threading.Event) -> None:
    from ..core.backends.factory import backend_for_record

    record = SubmissionRecord.from_json(record_json)
    text = backend_for_record(record).logs(record, slice_index, lines)
    bg.post(bg.LogText(record.submission_id, -1 if slice_index is None else slice_index, text))


def _store_for(record: SubmissionRecord, uri: str) -> Any:
    from ..core.storage import open_store

    return open_store(uri, settings_of(record) if uri.startswith("s3://") else None)


def settings_of(record: SubmissionRecord) -> AwsSettings:
    s = record.settings or {}
    return AwsSettings(
        profile=s.get("profile", ""),
        region=s.get("region", ""),
        endpoint_url=s.get("endpoint_url", s.get("endpoint", "")),
    )


def download(record_json: str, what: str, folder: str, *, cancel: threading.Event) -> None:
    """Fetch the video (``what == "VIDEO"``) or every frame (into ``folder/frames``)."""
    from ..core.download import download_submission
    from ..core.jobspec import JobSpec

    record = SubmissionRecord.from_json(record_json)
    spec = JobSpec.from_json(_store_for(record, record.spec_uri).get_bytes(record.spec_uri))
    report = download_submission(
        spec,
        folder,
        frames=(what == "FRAMES"),
        video=(what == "VIDEO"),
        settings=settings_of(record) if record.spec_uri.startswith("s3://") else None,
    )
    if what == "VIDEO" and report.video is not None:
        paths = [str(report.video)]
        shown = str(report.video.parent)
    else:
        paths = [str(p) for p in sorted({*report.downloaded, *report.skipped})]
        shown = str(Path(folder) / "frames")
    bg.post(bg.Downloaded(record.submission_id, paths, shown))


def fetch_preview(record_json: str, frame: int, uri: str, cache_dir: str, *, cancel: threading.Event) -> None:
    """Copy the latest frame into the preview cache (the main thread loads it as an icon)."""
    record = SubmissionRecord.from_json(record_json)
    dest = Path(cache_dir) / f"{record.submission_id}-{frame:06d}{os.path.splitext(uri)[1] or '.png'}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.is_file():
        _store_for(record, uri).get_file(uri, dest)
    bg.post(bg.PreviewReady(record.submission_id, frame, str(dest)))


# --- preferences: stack and connection ---------------------------------------------------------


def connect_stack(stack_name: str, settings: AwsSettings, *, cancel: threading.Event) -> None:
    from ..core.aws.stack import read_stack_outputs

    outputs = read_stack_outputs(stack_name, settings)
    bg.post(bg.StackConnected(asdict(outputs)))


def test_connection(target: Target, *, cancel: threading.Event) -> None:
    """Credentials, bucket, queue and job definitions, each with what is wrong."""
    from ..core.aws.errors import translate_aws_error
    from ..core.aws.session import client, session

    lines: list[str] = []
    ok = True
    settings = target.settings
    profile = settings.profile

    def fail(exc: BaseException, action: str, resource: str = "") -> None:
        nonlocal ok
        ok = False
        lines.append("✗ " + str(translate_aws_error(exc, action, resource=resource, profile=profile)))

    try:
        sess = session(settings)
        who = client("sts", settings, sess).get_caller_identity()
        lines.append(f"✓ Credentials: {who.get('Arn', '?')}")
    except Exception as exc:
        fail(exc, "sign in to AWS")
        bg.post(bg.ConnectionChecked(False, lines))
        return
    missing = target.missing()
    if missing:
        ok = False
        lines.append(f"✗ Not set: {', '.join(missing)} (Connect to the stack, or fill them by hand)")
    if target.bucket:
        try:
            client("s3", settings, sess).head_bucket(Bucket=target.bucket)
            lines.append(f"✓ Bucket s3://{target.bucket} is reachable")
        except Exception as exc:
            fail(exc, "reach the bucket", f"s3://{target.bucket}")
    batch = client("batch", settings, sess)
    for label, queue in (("Job queue", target.job_queue), ("GPU job queue", target.gpu_job_queue)):
        if not queue:
            continue
        try:
            found = batch.describe_job_queues(jobQueues=[queue]).get("jobQueues", [])
            if not found:
                ok = False
                lines.append(f"✗ {label} {queue} does not exist in {settings.region or 'this region'}")
            elif found[0].get("state") != "ENABLED" or found[0].get("status") not in ("VALID", "UPDATING"):
                ok = False
                lines.append(
                    f"✗ {label} {queue} is {found[0].get('state')}/{found[0].get('status')}: enable it "
                    "(or fix its compute environment) in the AWS Batch console"
                )
            else:
                lines.append(f"✓ {label} {found[0].get('jobQueueName', queue)} is enabled")
        except Exception as exc:
            fail(exc, "read the job queue", queue)
    for label, definition in (
        ("Render job definition", target.render_job_definition),
        ("Stitch job definition", target.stitch_job_definition),
    ):
        if not definition:
            continue
        try:
            defs = batch.describe_job_definitions(jobDefinitions=[definition]).get("jobDefinitions", [])
            active = [d for d in defs if d.get("status") == "ACTIVE"]
            if not active:
                ok = False
                lines.append(f"✗ {label} {definition} is missing or inactive: redeploy the stack")
            else:
                lines.append(f"✓ {label} {active[0].get('jobDefinitionName')}:{active[0].get('revision')}")
        except Exception as exc:
            fail(exc, "read the job definition", definition)
    bg.post(bg.ConnectionChecked(ok, lines))
