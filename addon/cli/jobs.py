"""submit, status, cancel, retry, logs, download, list: render and follow submissions.

    aws-batch-render submit shot.blend --stack render --frames 1-250 --chunk 10
    aws-batch-render submit shot.blend --backend local
    aws-batch-render status ID --watch
    aws-batch-render cancel ID | retry ID | logs ID [--slice N] | download ID [--dest DIR]
    aws-batch-render list

Submission records live in the user's data folder (``RecordStore``); any unique prefix
of an id works. The work is in :mod:`addon.core`; this module parses arguments and
prints (CLI output is the one place ``print`` is right); ``submit`` is in :mod:`.submit`,
the status display and ``--watch`` in :mod:`.follow`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..core.aws.session import AwsSettings
from ..core.backends.factory import backend_for_record
from ..core.errors import AwsBatchRenderError
from ..core.jobspec import IMAGE_FORMATS, JobSpec
from .follow import WATCH_NOT_SUCCEEDED, format_status, record_store, refresh, size_text, watch
from .submit import cmd_submit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "submit",
        help="render a .blend on AWS Batch (or this computer with --backend local)",
        description="Read the scene's settings with Blender, pack the file with everything it uses, "
        "upload what the store lacks, write the job spec and start the render and stitch jobs.",
    )
    p.add_argument("blend", type=Path, metavar="FILE.blend", help="the scene to render")
    p.add_argument(
        "--frames",
        default="",
        help="frames to render, e.g. '1-250' or '1-10,20,30-40x2' (default: the scene's range and step)",
    )
    p.add_argument(
        "--chunk", type=_chunk_arg, default=10, metavar="N|auto",
        help="frames per chunk (default 10); 'auto' sizes them from a scout render (see `estimate`)",
    )  # fmt: skip
    p.add_argument(
        "--split-samples", type=_positive_int, default=1, metavar="N",
        help="Cycles stills: render each frame on N machines, each a range of the samples, merged and "
        "denoised once (default 1: no split)",
    )
    p.add_argument("--backend", choices=("aws", "local"), default="aws", help="where to render (default aws)")
    p.add_argument("--scene", default="", help="scene to render (default: the file's active scene)")
    p.add_argument("--stack", metavar="NAME", help="read bucket, queue and job definitions from this stack")
    p.add_argument("--bucket", help="S3 bucket for inputs and results")
    p.add_argument("--queue", help="AWS Batch job queue (name or ARN)")
    p.add_argument("--gpu-queue", default="", help="job queue for --device GPU (default: the stack's)")
    p.add_argument("--job-definition", help="render job definition (name, name:revision or ARN)")
    p.add_argument("--stitch-job-definition", help="stitch job definition")
    p.add_argument("--log-group", default="", help="CloudWatch log group of the jobs (default /aws/batch/job)")
    p.add_argument("--image-format", choices=sorted(IMAGE_FORMATS), default="PNG", help="frame format")
    p.add_argument("--no-video", action="store_true", help="render frames only, no stitched video")
    p.add_argument("--device", choices=("CPU", "GPU"), default="", help="Cycles device (default: the scene's)")
    p.add_argument("--allow-missing", action="store_true", help="submit even if files the scene uses are missing")
    p.add_argument("--ignore", action="append", metavar="CODE", help="let this check error through (SIM_NOT_BAKED)")
    p.add_argument("--vcpus", type=_positive_int, help="vCPUs per chunk (default: the job definition's)")
    p.add_argument("--memory", type=_positive_int, metavar="MIB", help="memory per chunk in MiB")
    p.add_argument(
        "--timeout",
        type=_positive_int,
        metavar="SECONDS",
        help="time limit of one chunk attempt (default: the job definition's; the stack's is 4 hours)",
    )
    p.add_argument(
        "--attempts", type=_positive_int,
        help="attempts per chunk, 1-10 (default: the job definition's retry strategy; 3 locally)",
    )
    p.add_argument(
        "--threads", type=_positive_int, default=0,
        help="render threads per chunk (default: every core the chunk's machine or container has)",
    )
    p.add_argument(
        "--concurrency", type=_positive_int,
        help="local backend: chunks at once (default: this computer's cores / threads per chunk)",
    )
    p.add_argument("--store", default="", metavar="URI", help="local backend: file:/// store root")
    p.add_argument(
        "--max-cost", type=float, metavar="USD",
        help="budget cap: stop the render (keeping finished frames) before it would cost more",
    )  # fmt: skip
    p.add_argument(
        "--price-per-vcpu-hour", type=float, metavar="USD",
        help="price the cap counts in (default on AWS: the median Spot price of the stack's instance types)",
    )  # fmt: skip
    p.add_argument("--watch", action="store_true", help="follow the render until it ends")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between refreshes with --watch")
    _aws_args(p)
    _records_arg(p)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser(
        "status",
        help="show a submission's progress",
        description="Frames done, chunks per state, ETA and the latest frame.",
    )
    p.add_argument("id", help="submission id (a unique prefix is enough)")
    p.add_argument(
        "--watch",
        action="store_true",
        help="refresh until the render ends (exit 0 when it "
        f"succeeded, {WATCH_NOT_SUCCEEDED} when it failed or was cancelled)",
    )
    p.add_argument("--interval", type=float, default=5.0, help="seconds between refreshes (default 5)")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    _records_arg(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("cancel", help="stop a submission: pending chunks are cancelled, running ones terminated")
    p.add_argument("id")
    _records_arg(p)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("retry", help="render the failed chunks again, then stitch (finished frames stay)")
    p.add_argument("id")
    p.add_argument("--max-cost", type=float, metavar="USD", help="a new budget cap (after a stop by budget)")
    _records_arg(p)
    p.set_defaults(func=cmd_retry)

    p = sub.add_parser("logs", help="show the log of a chunk (the first failed one by default)")
    p.add_argument("id")
    p.add_argument("--slice", type=int, default=None, metavar="N", help="chunk number (0-based)")
    p.add_argument("--lines", type=_positive_int, default=100, help="lines from the end (default 100)")
    _records_arg(p)
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("download", help="fetch the video and frames to a folder (skips files already there)")
    p.add_argument("id")
    p.add_argument("--dest", type=Path, help="folder (default: ./<submission id>)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--frames", action="store_true", help="only the frames")
    what.add_argument("--video", action="store_true", help="only the video")
    _records_arg(p)
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("list", help="list recorded submissions, newest first")
    p.add_argument("--blend", type=Path, help="only those of this .blend")
    _records_arg(p)
    p.set_defaults(func=cmd_list)


# --- argument helpers --------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def _chunk_arg(text: str) -> int | str:
    return "auto" if text == "auto" else _positive_int(text)


def _aws_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="", help="AWS profile (default: the environment's)")
    p.add_argument("--region", default="", help="AWS region (default: the profile's, or the stack's)")
    p.add_argument("--endpoint-url", default="", help=argparse.SUPPRESS)  # tests and private endpoints


def _records_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--records",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of submission records (default: the user's data folder)",
    )



# --- commands ------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    store = record_store(args)
    record = store.load(args.id)
    backend = backend_for_record(record)
    if args.watch:
        return watch(backend, record, store, interval=max(0.05, args.interval), out=sys.stdout, as_json=args.json)
    status = refresh(backend, record, store)
    if args.json:
        print(json.dumps(status.to_dict(), indent=1, sort_keys=True))
    else:
        print(format_status(status))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    store = record_store(args)
    record = store.load(args.id)
    backend = backend_for_record(record)
    try:
        status = refresh(backend, record, store)
    except AwsBatchRenderError:
        status = None  # cancel anyway: stopping what may run matters more than the status
    if status is not None and status.finished:
        how = {"SUCCEEDED": "succeeded", "CANCELLED": "was cancelled", "FAILED": "failed"}.get(status.state, "ended")
        print(
            f"{record.submission_id} had already finished ({how}); nothing to cancel. Finished frames "
            "stay: 'download' fetches them."
        )
        return 0
    backend.cancel(record)
    store.save(record)
    print(
        f"Cancelled {record.submission_id}: pending chunks are cancelled, running ones terminated "
        "(finished frames stay)."
    )
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    store = record_store(args)
    record = store.load(args.id)
    from ..core.quote.budget import raise_cap

    raise_cap(record, args.max_cost)
    record = backend_for_record(record).retry_failed(record)
    store.save(record)
    history = record.jobs.get("history") or []
    slices = history[-1].get("slices") if history and isinstance(history[-1], dict) else None
    what = f"{len(slices)} failed chunk(s)" if slices else "the failed chunks"
    print(
        f"Retrying {what} of {record.submission_id}, then stitching again. "
        f"Follow it with: aws-batch-render status {record.submission_id} --watch"
    )
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    record = record_store(args).load(args.id)
    text = backend_for_record(record).logs(record, slice_index=args.slice, lines=args.lines)
    print(text)
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from ..core.download import download_submission
    from ..core.storage import open_store

    record = record_store(args).load(args.id)
    s = record.settings or {}
    settings = AwsSettings(
        profile=s.get("profile", ""), region=s.get("region", ""), endpoint_url=s.get("endpoint_url", "")
    )
    store = open_store(record.spec_uri, settings)
    spec = JobSpec.from_json(store.get_bytes(record.spec_uri))
    dest = args.dest or Path.cwd() / record.submission_id
    want_frames = not args.video
    want_video = not args.frames
    report = download_submission(spec, dest, frames=want_frames, video=want_video, store=store)
    print(
        f"Downloaded {len(report.downloaded)} file(s) ({size_text(report.bytes_downloaded)}) to {dest}; "
        f"{len(report.skipped)} already there."
    )
    if report.video is not None:
        print(f"Video: {report.video}")
    elif want_video:
        print("No video yet (the stitch job has not finished, or the submission renders frames only).")
    if want_frames and report.frames_missing:
        print(f"{len(report.frames_missing)} frame(s) are not rendered yet.")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    blend = str(args.blend.expanduser().resolve()) if args.blend else None
    rows = record_store(args).list(source_blend=blend)
    if not rows:
        print("No submissions recorded yet ('aws-batch-render submit FILE.blend' starts one).")
        return 0
    header = ("ID", "BACKEND", "CREATED", "FRAMES", "STATE", "BLEND")
    table = [header] + [
        (
            r.submission_id,
            r.backend,
            r.created_at.replace("+00:00", "Z"),
            str(r.frames_total),
            str((r.last_status or {}).get("state", "-")),
            os.path.basename(r.source_blend) or "-",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


