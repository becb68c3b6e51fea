"""``check``: the preflight report for a .blend, before anything is packed or uploaded.

    aws-batch-render check shot.blend [--backend aws|local] [--stack NAME]

Exit codes: 0 nothing to fix (notes only), ``CHECK_WARNINGS`` warnings only,
``CHECK_ERRORS`` errors (``submit`` would stop). ``submit`` runs the same check through
:func:`preflight` first.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..core.aws.session import AwsSettings
from ..core.exitcodes import CHECK_ERRORS, CHECK_WARNINGS, SUCCESS
from .follow import err


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="check a .blend for what would make its render fail or come back wrong",
        description="Read the scene with Blender and report, before anything is uploaded: camera, "
        f"render size, missing files, unbaked simulations, Python drivers, add-on nodes and settings, engine and "
        f"device, and (AWS) the worker image. Exit {SUCCESS}: fine; {CHECK_WARNINGS}: warnings; "
        f"{CHECK_ERRORS}: errors (submit would stop).",
    )
    p.add_argument("blend", type=Path, metavar="FILE.blend")
    p.add_argument("--backend", choices=("aws", "local"), default="aws", help="where it would render (default aws)")
    p.add_argument("--stack", default="", metavar="NAME", help="AWS: the stack to check against (image, GPU queue)")
    p.add_argument("--gpu-queue", default="", help=argparse.SUPPRESS)
    p.add_argument("--scene", default="", help="scene to check (default: the file's active scene)")
    p.add_argument("--device", choices=("CPU", "GPU"), default="", help="Cycles device (default: the scene's)")
    p.add_argument("--allow-missing", action="store_true", help="report missing files as a warning")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.add_argument("--profile", default="", help="AWS profile (default: the environment's)")
    p.add_argument("--region", default="", help="AWS region (default: the profile's, or the stack's)")
    p.add_argument("--endpoint-url", default="", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from ..core.submit.preflight import ERROR, WARNING
    from ..core.submit.scene_reader import read_scene

    blend = args.blend.expanduser().resolve()
    snapshot = read_scene(blend, args.scene)
    report = preflight(args, snapshot, AwsSettings(args.profile, args.region, args.endpoint_url))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for line in report.lines() or [f"{blend.name}: nothing to fix."]:
            print(line)
    if report.of(ERROR):
        return CHECK_ERRORS
    return CHECK_WARNINGS if report.of(WARNING) else SUCCESS


def preflight(
    args: argparse.Namespace, snapshot: Any, settings: AwsSettings,
    peak_memory_mib: float | None = None, memory_mib: int | None = None,
) -> Any:
    """The check for the CLI's arguments: AWS facts read only for the AWS backend; the scout
    render's peak memory against the job's, when a scout ran (``submit --chunk auto``)."""
    from ..core.submit.packed_bakes import settle_packed_bakes
    from ..core.submit.preflight import CheckContext, check_scene, local_has_gpu

    settle_packed_bakes(snapshot)  # the file is on disk: read its packed simulation bakes
    ctx = CheckContext(
        backend=args.backend, where="cli", device=args.device, allow_missing=args.allow_missing,
        stack=args.stack or "", peak_memory_mib=peak_memory_mib, memory_mib=memory_mib,
    )  # fmt: skip
    ctx.worker_has_gpu = local_has_gpu() if args.backend == "local" else False  # EEVEE: the CPU queue
    if args.backend == "aws":
        if args.gpu_queue:
            ctx.gpu_queue = True
        if args.stack:
            from ..core.aws.stack import read_stack_outputs, with_region
            from ..core.submit.preflight_aws import check_repository_image

            outputs = read_stack_outputs(args.stack, settings)
            ctx.gpu_queue = bool(args.gpu_queue or outputs.gpu_job_queue)
            image = check_repository_image(
                outputs.repository_uri, snapshot.blender_version, args.stack, with_region(settings, outputs.region)
            )
            ctx.image_missing_command, ctx.image_mismatch_command = image.missing_command, image.mismatch_command
            ctx.image_has = image.has
    return check_scene(snapshot, ctx)


def print_report(report: Any) -> None:
    for line in report.lines():
        err(line)
