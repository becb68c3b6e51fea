"""``submit``: read the scene with Blender, pack and upload it, start the render on the
chosen backend (AWS Batch or this computer) and, with ``--watch``, follow it.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from ..core.aws.session import AwsSettings
from ..core.backends.aws_batch.job_requests import MIN_TIMEOUT_SECONDS
from ..core.backends.factory import BackendConfigError, make_backend
from .follow import err, record_store, size_text, term_width, watch


def cmd_submit(args: argparse.Namespace) -> int:
    from ..core.submit.options import SubmitOptions
    from ..core.submit.pipeline import prepare_submission
    from ..core.submit.scene_reader import read_scene

    blend = args.blend.expanduser().resolve()
    settings = AwsSettings(profile=args.profile, region=args.region, endpoint_url=args.endpoint_url)
    backend, root_uri, settings = _backend_for_submit(args, settings)
    records = record_store(args)
    records.check_writable()  # before anything starts: a render whose record cannot be saved is lost

    budget = _budget(args, settings)  # a bad cap fails before the upload
    err(f"Reading the scene settings of {blend.name} with Blender…")
    snapshot = read_scene(blend, args.scene)
    peak = None
    if args.chunk == "auto":  # the scout's peak memory feeds the check's memory finding
        args.chunk, peak = _measured_chunk(args, blend, snapshot, backend, settings)
    _check_first(args, snapshot, settings, peak)
    persistent = peak is not None and _persistent_data(args, settings, snapshot, peak)
    options = SubmitOptions(
        split_samples=args.split_samples,
        frames=args.frames,
        chunk_size=args.chunk,
        image_format=args.image_format,
        video=not args.no_video,
        device=args.device,
        threads=args.threads,
        allow_missing=args.allow_missing,
        persistent_data=persistent,
    )
    if options.split_samples > 1:  # refused before packing: engine, frame count
        from ..core.still_split import check_request
        from ..core.submit.specbuild import scene_frames

        samples = int(snapshot.facts.get("cycles_samples", 0))
        check_request(options.split_samples, snapshot.engine, scene_frames(snapshot, options.frames), samples)
    progress = _SubmitProgress(sys.stderr)
    spec, spec_uri, report = prepare_submission(
        blend, snapshot, options, root_uri, settings if args.backend == "aws" else None, progress
    )
    progress.close()
    if report.missing:
        err(f"warning: {len(report.missing)} missing file(s) were left out: " + ", ".join(report.missing[:5]))
    if report.outside_project:
        err(f"note: {len(report.outside_project)} file(s) outside the project folder were packed too")
    for warning in report.warnings:
        err(f"warning: {warning}")
    record = backend.submit(spec, spec_uri, source_blend=str(blend))
    if budget is not None:
        budget.save_to(record)
    # The id first: whatever happens next, the user knows which render is running.
    print(
        f"Submitted {record.submission_id} ({args.backend}): {record.frames_total} frame(s) in "
        f"{record.slice_count} {'part' if spec.still_split else 'chunk'}(s); uploaded {report.files_uploaded} file(s), "
        f"{size_text(report.bytes_uploaded)} of {size_text(report.bytes_total)}.",
        flush=True,
    )
    records.save(record)
    print(f"Follow it with: aws-batch-render status {record.submission_id} --watch")
    if args.watch:
        return watch(backend, record, records, interval=max(0.05, args.interval), out=sys.stdout)
    return 0


def _check_first(args: argparse.Namespace, snapshot: Any, settings: AwsSettings, peak: float | None = None) -> None:
    """The preflight check: its findings on stderr; errors stop here, before any packing."""
    from ..core.submit.preflight import PreflightError
    from .check import preflight, print_report

    memory = _job_memory(args, settings) if peak is not None else None
    report = preflight(args, snapshot, settings, peak, memory)
    print_report(report)
    blocking = report.blocking(args.ignore or ())
    if blocking:
        raise PreflightError(report, blocking)


def _persistent_data(args: argparse.Namespace, settings: AwsSettings, snapshot: Any, peak: float) -> bool:
    """``--chunk auto``: Cycles Persistent Data when the scout's peak memory fits a chunk's."""
    from ..core.backends.local.state import default_concurrency
    from ..core.quote.model import persistent_data
    from ..core.quote.quoting import local_memory_mib

    if args.backend == "local":
        memory = local_memory_mib(args.concurrency or default_concurrency(args.threads))
    else:
        memory = _job_memory(args, settings) or 0
    on, why = persistent_data(snapshot.engine, int(args.chunk), peak, memory)
    err(why)
    return on


def _job_memory(args: argparse.Namespace, settings: AwsSettings) -> int | None:
    """A render job's memory in MiB: --memory, else the stack's RenderMemoryMiB (AWS only)."""
    if args.backend != "aws":
        return None
    if args.memory:
        return int(args.memory)
    if not args.stack:
        return None
    from ..core.aws.stack import describe_stack
    from ..core.quote.quoting import capacity_from_stack

    stack = describe_stack(args.stack, settings)
    return (capacity_from_stack(stack, settings.region or "").job_memory_mib or None) if stack else None


def _budget(args: argparse.Namespace, settings: AwsSettings) -> Any:
    """``--max-cost``: the cap and the price it counts in (addon.core.quote.budget)."""
    from ..core.quote.budget import new_budget
    from ..core.quote.quoting import DEFAULT_JOB_VCPUS

    if args.max_cost is None:
        return None
    local = args.backend == "local"
    vcpus = (args.threads or os.cpu_count() or 1) if local else (args.vcpus or DEFAULT_JOB_VCPUS)
    price, source = args.price_per_vcpu_hour, "given"
    if not price and not local and (args.max_cost or 0) > 0:
        price, source = _spot_price(args, settings, vcpus)
    return new_budget(args.max_cost, price, vcpus, source)


def _spot_price(args: argparse.Namespace, settings: AwsSettings, vcpus: int) -> tuple[float, str]:
    from ..core.quote.request import spot_price

    return spot_price(settings, args.stack or "", vcpus)


def _measured_chunk(
    args: argparse.Namespace, blend: Any, snapshot: Any, backend: Any = None, settings: AwsSettings | None = None
) -> tuple[int, float]:
    """``--chunk auto``: the chunk size from a scout render (addon.core.quote), and the
    scout's peak memory in MiB."""
    from ..core.quote.quoting import measured_chunk
    from ..core.submit.specbuild import scene_frames

    frames = scene_frames(snapshot, args.frames)
    err(f"Scout render of {blend.name} to size the chunks…")
    size, why, measured = measured_chunk(
        args.backend, blend, snapshot, frames, threads=args.threads or 0, concurrency=args.concurrency or 0,
        vcpus=args.vcpus or 0, settings=settings, job_queue=getattr(backend, "job_queue", ""),
        job_definition=getattr(backend, "render_job_definition", ""),
    )  # fmt: skip
    err(f"Chunk size {size}: {why}")
    return size, measured.peak_rss_mib


def _backend_for_submit(args: argparse.Namespace, settings: AwsSettings) -> tuple[Any, str, AwsSettings]:
    if args.backend == "local":
        from ..core.backends.local.state import default_store_uri

        if args.store and not args.store.startswith("file://"):
            raise BackendConfigError(
                f"The local backend renders from a folder on this computer, so --store must be a "
                f"file:/// URI, not {args.store!r}; leave --store out for the default folder, or use "
                "--backend aws for an s3:// bucket."
            )
        cfg = {"concurrency": args.concurrency, "max_attempts": args.attempts}
        return make_backend("local", **{k: v for k, v in cfg.items() if v}), args.store or default_store_uri(), settings
    bucket, queue, gpu_queue = args.bucket, args.queue, args.gpu_queue
    render_def, stitch_def, log_group = args.job_definition, args.stitch_job_definition, args.log_group
    if args.stack:
        from ..core.aws.stack import read_stack_outputs

        outputs = read_stack_outputs(args.stack, settings)
        if not settings.region and outputs.region:
            settings = AwsSettings(profile=settings.profile, region=outputs.region, endpoint_url=settings.endpoint_url)
        bucket = bucket or outputs.bucket
        queue = queue or outputs.job_queue
        gpu_queue = gpu_queue or outputs.gpu_job_queue
        render_def = render_def or outputs.render_job_definition
        stitch_def = stitch_def or outputs.stitch_job_definition
        log_group = log_group or outputs.log_group
    if not bucket:
        raise BackendConfigError("The AWS backend needs --bucket (or --stack NAME to read it from the stack).")
    if args.timeout is not None and args.timeout < MIN_TIMEOUT_SECONDS:
        err(
            f"note: AWS Batch's shortest time limit is {MIN_TIMEOUT_SECONDS} s, so --timeout {args.timeout} "
            f"is sent as {MIN_TIMEOUT_SECONDS} s."
        )
    backend = make_backend(
        "aws",
        settings=settings,
        job_queue=queue,
        render_job_definition=render_def,
        stitch_job_definition=stitch_def,
        gpu_job_queue=gpu_queue,
        log_group=log_group or "/aws/batch/job",
        vcpus=args.vcpus,
        memory_mib=args.memory,
        timeout_seconds=args.timeout,
        attempts=args.attempts,
    )
    # A disabled queue or a missing job definition fails now, not after the upload.
    backend.check_resources(gpu_queue if args.device == "GPU" and gpu_queue else queue)
    backend.preflight = False
    return backend, f"s3://{bucket}/", settings


class _SubmitProgress:
    """Packing/upload progress on stderr: one rewritten line on a terminal, phases otherwise."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.phase = ""
        self.dirty = False

    def __call__(self, p: Any) -> None:
        if self.tty:
            pct = f" {100 * p.done // p.total}%" if p.total else ""
            text = f"{p.phase}{pct} {p.message}"[: term_width() - 1]
            self.out.write("\r" + text.ljust(term_width() - 1))
            self.out.flush()
            self.dirty = True
        elif p.phase != self.phase:
            self.out.write(f"{p.phase}: {p.message}\n")
            self.out.flush()
        self.phase = p.phase

    def close(self) -> None:
        if self.dirty:
            self.out.write("\n")
            self.out.flush()
