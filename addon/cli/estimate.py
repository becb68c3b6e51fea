"""``estimate``: what a render of a .blend will cost and how long it will take, before
anything is uploaded: a scout render of its first, middle and last frame on this
computer, Spot prices of the stack's instance types (AWS) or time only (local)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

from ..core.aws.session import AwsSettings
from .follow import err


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "estimate",
        help="quote time and cost of a render before submitting it",
        description="Scout-render the first, middle and last frame on this computer, then quote the whole "
        "render: time, chunks, and on AWS the cost at the stack's Spot prices, with a range and its assumptions.",
    )
    p.add_argument("blend", type=Path, metavar="FILE.blend", help="the scene to quote")
    p.add_argument("--frames", default="", help="frames to render (default: the scene's range and step)")
    p.add_argument("--chunk", type=_positive, metavar="N", help="frames per chunk (default: from the measurements)")
    p.add_argument("--backend", choices=("aws", "local"), default="aws", help="where it would render (default aws)")
    p.add_argument("--scene", default="", help="scene to quote (default: the file's active scene)")
    p.add_argument("--stack", metavar="NAME", help="read instance types, vCPU ceiling and job size from this stack")
    p.add_argument("--instance-types", default="", help="instance families or types, comma separated (no --stack)")
    p.add_argument("--max-vcpus", type=_positive, help="most vCPUs at once (default: the stack's SpotMaxVcpus)")
    p.add_argument("--vcpus", type=_positive, help="vCPUs per chunk (default: the stack's RenderVcpus)")
    p.add_argument("--concurrency", type=_positive, help="local backend: chunks at once (default 1)")
    p.add_argument(
        "--memory", type=_positive, metavar="MiB",
        help="AWS: memory of one chunk, checked against the scout's peak (default: the stack's RenderMemoryMiB)",
    )  # fmt: skip
    p.add_argument(
        "--split-samples", type=_positive, default=0, metavar="N",
        help="quote a still split in N sample ranges (as submit --split-samples N): N parts and the merge",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the quote as JSON")
    p.add_argument("--profile", default="", help="AWS profile (default: the environment's)")
    p.add_argument("--region", default="", help="AWS region (default: the profile's, or the stack's)")
    p.add_argument("--endpoint-url", default="", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_estimate)


def cmd_estimate(args: argparse.Namespace) -> int:
    from ..core.quote.quoting import aws_quote, local_quote, read_prices, scene_frames
    from ..core.quote.scout import scout_frames, scout_render

    blend = args.blend.expanduser().resolve()
    settings = AwsSettings(profile=args.profile, region=args.region, endpoint_url=args.endpoint_url)
    capacity = _capacity(args, settings) if args.backend == "aws" else None
    err(f"Reading the scene settings of {blend.name} with Blender…")
    snapshot, frames = scene_frames(blend, args.scene, args.frames)
    if args.split_samples > 1:  # the same refusals as submit --split-samples, before the scout
        from ..core.still_split import check_request

        check_request(args.split_samples, snapshot.engine, frames, int(snapshot.facts.get("cycles_samples", 0)))
    picks = scout_frames(frames[0], frames[-1]) if frames else []
    picks = [f for f in picks if f in set(frames)] or frames[:1]
    err(f"Scout render of frame(s) {', '.join(map(str, picks))} on this computer…")
    measured = scout_render(
        blend, picks, scene=snapshot.scene, engine=snapshot.engine, saved_by=snapshot.blender_version
    )
    if capacity is None:
        quote = local_quote(
            measured, len(frames), args.concurrency or 1, measured.threads // (args.concurrency or 1), args.chunk,
            engine=snapshot.engine, split_samples=args.split_samples,
        )  # fmt: skip
    else:
        if capacity.region and capacity.region != settings.region:
            settings = AwsSettings(profile=settings.profile, region=capacity.region, endpoint_url=settings.endpoint_url)
        spot, demand = read_prices(capacity, settings)
        quote = aws_quote(
            measured, len(frames), capacity, spot, demand, args.chunk, engine=snapshot.engine,
            memory_mib=args.memory or 0, split_samples=args.split_samples,
        )  # fmt: skip
    if args.json:
        print(json.dumps({**dataclasses.asdict(quote), "line": quote.line(), "measured": dataclasses.asdict(measured)}))
    else:
        print(quote.line())
        for line in quote.assumptions:
            print(f"  {line}")
    return _memory_check(measured.peak_rss_mib, args.memory or (capacity.job_memory_mib if capacity else 0))


def _memory_check(peak_mib: float, memory_mib: int) -> int:
    """The preflight check's memory finding, from the scout's peak: a chunk that would run out
    of memory is an error before anything is paid for."""
    from ..core.exitcodes import CHECK_ERRORS, SUCCESS
    from ..core.submit.preflight import CheckReport, memory_findings

    findings = memory_findings(peak_mib, memory_mib or None)
    for line in CheckReport(findings).lines():
        err(line)
    return CHECK_ERRORS if findings else SUCCESS


def _capacity(args: argparse.Namespace, settings: AwsSettings):
    from ..core.quote.quoting import DEFAULT_JOB_VCPUS, DEFAULT_MAX_VCPUS, AwsCapacity, QuoteError, capacity_from_stack

    region = settings.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "")
    if args.stack:
        from ..core.aws.stack import describe_stack, not_found_message

        stack = describe_stack(args.stack, settings)
        if stack is None:
            raise QuoteError(not_found_message(args.stack, settings))
        cap = capacity_from_stack(stack, region)
        raw = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}
        cap.region = raw.get("Region") or region
        if not (args.max_vcpus and args.vcpus):  # what the compute environment holds now
            from ..core.quote.quoting import live_aws_capacity

            live = AwsSettings(profile=settings.profile, region=cap.region, endpoint_url=settings.endpoint_url)
            live_aws_capacity(live, raw.get("JobQueue", ""), raw.get("RenderJobDefinition", ""), cap,
                              "the stack's parameters")  # fmt: skip
    elif args.instance_types:
        cap = AwsCapacity(args.instance_types.split(","), DEFAULT_MAX_VCPUS, DEFAULT_JOB_VCPUS, region)
    else:
        raise QuoteError("To price an AWS render, name the stack (--stack NAME) or the --instance-types; "
                         "--backend local quotes time only.")  # fmt: skip
    if not cap.region:
        raise QuoteError("No AWS region: pass --region (or set AWS_REGION).")
    cap.max_vcpus = args.max_vcpus or cap.max_vcpus
    cap.job_vcpus = args.vcpus or cap.job_vcpus
    given = [f"--{n} {v}" for n, v in (("max-vcpus", args.max_vcpus), ("vcpus", args.vcpus)) if v]
    if given:
        cap.source = f"{cap.source}; {', '.join(given)} given" if cap.source else f"{', '.join(given)} given"
    return cap


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value
