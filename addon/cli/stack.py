"""deploy, destroy, publish-image: set up and tear down the AWS side.

    aws-batch-render deploy --stack render [--param SpotMaxVcpus=512] [--gpu]
    aws-batch-render publish-image --stack render --blender 5.2
    aws-batch-render destroy --stack render [--force [--yes]]

CLI output (progress, outputs) is printed here; the work is in :mod:`addon.core.stack`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..core.aws import deploy, destroy, images, stack, stack_events
from ..core.aws.session import AwsSettings

DEFAULT_STACK = "aws-batch-render"

#: output key, StackOutputs field, in the order they are printed
_OUTPUT_ROWS = [
    ("BucketName", "bucket"),
    ("JobQueue", "job_queue"),
    ("GpuJobQueue", "gpu_job_queue"),
    ("RenderJobDefinition", "render_job_definition"),
    ("StitchJobDefinition", "stitch_job_definition"),
    ("RepositoryUri", "repository_uri"),
    ("LogGroupName", "log_group"),
    ("Region", "region"),
    ("SubmitterPolicyArn", "submitter_policy"),
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy",
        help="create or update the AWS stack (bucket, ECR repository, Batch queues, roles)",
        description="Create the CloudFormation stack, or update it through a change set. "
        "An unchanged stack is left alone. Prints the stack's outputs.",
    )
    _aws_args(p)
    p.add_argument("--template", type=Path, help="CloudFormation template (default: infra/stack.yaml)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a template parameter, repeatable (e.g. SpotMaxVcpus=512); unset ones keep their current value",
    )
    p.add_argument("--gpu", action="store_true", help="also create the GPU queue (EnableGpu=true)")
    p.add_argument("--vpc", metavar="VPC_ID", help="use this existing VPC instead of creating one")
    p.add_argument("--subnets", metavar="ID,ID", help="subnets of --vpc, comma separated")
    p.add_argument("--blender", metavar="X.Y", help="image tag the job definitions use (BlenderVersion)")
    p.add_argument("--poll", type=float, default=5.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser(
        "destroy",
        help="delete the AWS stack (keeps a non-empty bucket unless --force)",
        description="Delete the stack. If its bucket still holds renders, nothing is deleted unless "
        "--force is given and confirmed (by typing the stack name, or --yes in scripts).",
    )
    _aws_args(p)
    p.add_argument("--force", action="store_true", help="also delete every object in the stack's bucket")
    p.add_argument("--yes", action="store_true", help="confirm --force without asking (for scripts)")
    p.add_argument("--poll", type=float, default=5.0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_destroy)

    p = sub.add_parser(
        "publish-image",
        help="build the worker image (Docker or buildah) and push it to the stack's ECR repository",
        description="Log in to ECR, build the worker image for one Blender version, tag it "
        "blender-X.Y, blender-X.Y.Z and blender-X.Y.Z-<content hash>, and push the tags. Needs a running Docker, "
        "or buildah (no engine needed).",
    )
    _aws_args(p)
    p.add_argument(
        "--blender",
        default="5.2",
        help="Blender version X.Y.Z with a bpy wheel (4.2 or newer), or X.Y for its newest pinned patch "
        "(default 5.2); tags blender-X.Y, blender-X.Y.Z and blender-X.Y.Z-<content hash>",
    )
    p.add_argument("--repository", metavar="URI", help="ECR repository URI (default: the stack's RepositoryUri)")
    p.add_argument("--context", type=Path, help="docker build context (default: the checkout's root)")
    p.add_argument("--dockerfile", type=Path, help="Dockerfile (default: <context>/Dockerfile)")
    p.add_argument("--platform", default="linux/amd64", help="image platform (default linux/amd64)")
    p.add_argument(
        "--tool",
        choices=("auto", "docker", "buildah"),
        default="auto",
        help="build and push with docker or buildah (no engine needed); auto: docker when its engine answers",
    )
    p.add_argument("--dry-run", action="store_true", help="print the build and push commands, run nothing")
    p.set_defaults(func=cmd_publish_image)


def _aws_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stack", default=DEFAULT_STACK, help=f"stack name (default {DEFAULT_STACK})")
    p.add_argument("--profile", default="", help="AWS profile (default: AWS_PROFILE or the default chain)")
    p.add_argument("--region", default="", help="AWS region (default: AWS_REGION or the profile's)")
    p.add_argument("--endpoint-url", default="", help=argparse.SUPPRESS)


def _settings(args: argparse.Namespace) -> AwsSettings:
    return stack.env_settings(args.profile, args.region, args.endpoint_url)


def _print_event(event: stack_events.StackEvent) -> None:
    reason = f"  {event.reason}" if event.reason else ""
    print(f"  {event.timestamp}  {event.status:<28} {event.resource_type:<36} {event.logical_id}{reason}", flush=True)


def print_outputs(outputs: stack.StackOutputs) -> None:
    width = max(len(key) for key, _ in _OUTPUT_ROWS)
    for key, name in _OUTPUT_ROWS:
        value = getattr(outputs, name) or "-"
        print(f"  {key:<{width}}  {value}")
    print(f"  {'ImageTags':<{width}}  {', '.join(outputs.image_tags) or '- (run publish-image)'}")


def cmd_deploy(args: argparse.Namespace) -> int:
    settings = _settings(args)
    params = deploy.parse_parameters(args.param)
    if args.gpu:
        params["EnableGpu"] = "true"
    if bool(args.vpc) != bool(args.subnets):
        raise stack.StackError("--vpc and --subnets go together: the subnets must be in that VPC.")
    if args.vpc:
        params["VpcId"] = args.vpc
    if args.subnets:
        params["SubnetIds"] = args.subnets
    if args.blender:
        params["BlenderVersion"] = args.blender
    body = deploy.load_template(args.template)
    print(f"Deploying stack {args.stack} …", flush=True)
    result = deploy.deploy_stack(args.stack, settings, body, params, on_event=_print_event, poll_seconds=args.poll)
    for change in result.changes:
        print(f"  change: {change}")
    if result.action == "unchanged":
        print(f"Stack {args.stack} is up to date: nothing to change.")
    else:
        print(f"Stack {args.stack} {result.action}.")
    print("Outputs:")
    print_outputs(result.outputs)
    if not any(t.startswith("blender-") for t in result.outputs.image_tags):
        print(f"Next: aws-batch-render publish-image --stack {args.stack} --blender 5.2")
    return 0


def _confirm(stack_name: str, assume_yes: bool):
    def confirm(contents: destroy.BucketContents) -> bool:
        amount = f"{contents.objects}{'+' if contents.more else ''}"
        print(f"Bucket {contents.bucket} holds {amount} objects (inputs, frames, videos).")
        if assume_yes:
            print("--yes given: deleting them.")
            return True
        if not sys.stdin or not sys.stdin.isatty():
            print("Not asking on a non-interactive input: add --yes to confirm.", file=sys.stderr)
            return False
        try:
            typed = input(f"Type the stack name ({stack_name}) to delete them and the stack: ")
        except EOFError:
            return False
        return typed.strip() == stack_name

    return confirm


def cmd_destroy(args: argparse.Namespace) -> int:
    settings = _settings(args)
    print(f"Deleting stack {args.stack} …", flush=True)
    result = destroy.destroy_stack(
        args.stack,
        settings,
        force=args.force,
        confirm=_confirm(args.stack, args.yes),
        on_event=_print_event,
        poll_seconds=args.poll,
    )
    if result.objects_deleted:
        print(f"Deleted {result.objects_deleted} objects from {result.bucket}.")
    print(f"Stack {args.stack} deleted.")
    return 0


def cmd_publish_image(args: argparse.Namespace) -> int:
    settings = _settings(args)
    repository = args.repository or stack.read_stack_outputs(args.stack, settings).repository_uri
    plan = images.plan_publish(repository, args.blender, args.context, args.dockerfile, args.platform, args.tool)
    if args.dry_run:
        print("Would run:")
        print("  " + " ".join(plan.login) + "   (password from ecr:GetAuthorizationToken)")
        print("  " + " ".join(plan.build))
        for argv in plan.pushes:
            print("  " + " ".join(argv))
        return 0
    digests = images.publish_image(plan, settings, on_step=lambda msg: print(f"• {msg}", flush=True))
    print("Pushed:")
    for ref in plan.tags:
        print(f"  {ref}")
    for digest in digests:
        print(f"  digest {digest}")
    return 0
