"""``submit``: read the scene with Blender, pack and upload it, start the render on the
chosen backend (AWS Batch or this computer) and, with ``--watch``, follow it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from ..core.aws.session import AwsSettings
from ..core.backends.factory import BackendConfigError, make_backend
from .follow import err, record_store, size_text, term_width, watch


def cmd_submit(args: argparse.Namespace) -> int:
    from ..core.submit.options import SubmitOptions
    from ..core.submit.pipeline import prepare_submission
    from ..core.submit.scene_reader import read_scene

    blend = args.blend.expanduser().resolve()
    settings = AwsSettings(profile=args.profile, region=args.region, endpoint_url=args.endpoint_url)
    backend, root_uri, settings = _backend_for_submit(args, settings)

    err(f"Reading the scene settings of {blend.name} with Blender…")
    snapshot = read_scene(blend, args.scene)
    options = SubmitOptions(
        split_samples=args.split_samples,
        frames=args.frames,
        chunk_size=args.chunk,
        image_format=args.image_format,
        video=not args.no_video,
        device=args.device,
        threads=args.threads,
        allow_missing=args.allow_missing,
    )
    if options.split_samples > 1:  # refused before packing: engine, frame count
        from ..core.still_split import check_request
        from ..core.submit.specbuild import scene_frames

        check_request(options.split_samples, snapshot.engine, scene_frames(snapshot, options.frames))
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
    record_store(args).save(record)
    print(
        f"Submitted {record.submission_id} ({args.backend}): {record.frames_total} frame(s) in "
        f"{record.slice_count} {'part' if spec.still_split else 'chunk'}(s); uploaded {report.files_uploaded} file(s), "
        f"{size_text(report.bytes_uploaded)} of {size_text(report.bytes_total)}."
    )
    print(f"Follow it with: aws-batch-render status {record.submission_id} --watch")
    if args.watch:
        return watch(backend, record, record_store(args), interval=max(0.05, args.interval), out=sys.stdout)
    return 0


def _backend_for_submit(args: argparse.Namespace, settings: AwsSettings) -> tuple[Any, str, AwsSettings]:
    if args.backend == "local":
        from ..core.backends.local.state import default_store_uri

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
