"""The CloudFormation stack as the tool reads it: its outputs (what Connect and --stack
read), the image tags its repository holds, and what deploying, destroying and image
publishing share (names, the template's place, stack errors). Deploy is in :mod:`.deploy`,
destroy in :mod:`.destroy`, image publishing in :mod:`.images`.

The template lives in ``infra/stack.yaml``. boto3 is imported lazily by
:mod:`.session`; this module never imports bpy.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AwsBatchRenderError
from .errors import aws_errors, error_code
from .session import AwsSettings, client, session

log = logging.getLogger(__name__)

#: the repository checkout this package sits in (editable install)
REPO_ROOT = Path(__file__).resolve().parents[3]
TEMPLATE_PATH = REPO_ROOT / "infra" / "stack.yaml"
#: CloudFormation accepts a TemplateBody up to this many bytes
MAX_TEMPLATE_BODY = 51_200
#: the ECR repository is named "<stack>-worker" and ECR names are lowercase
STACK_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,119}$")


class StackError(AwsBatchRenderError):
    """Deploying, reading or deleting the CloudFormation stack failed."""

    exit_code = 4


class StackNotFoundError(StackError):
    """No stack of that name exists in the region."""


class BucketNotEmptyError(StackError):
    """destroy was asked to delete a stack whose bucket still holds objects."""




@dataclass
class StackOutputs:
    """The stack's Outputs, by their CloudFormation output keys."""

    bucket: str  # BucketName
    job_queue: str  # JobQueue (ARN)
    render_job_definition: str  # RenderJobDefinition (ARN)
    stitch_job_definition: str  # StitchJobDefinition (ARN)
    repository_uri: str  # RepositoryUri
    log_group: str  # LogGroupName
    region: str  # Region
    gpu_job_queue: str = ""  # GpuJobQueue, "" when the stack has no GPU queue
    image_tags: tuple[str, ...] = ()  # tags present in the repository (e.g. blender-5.2)
    submitter_policy: str = ""  # SubmitterPolicyArn: attach to the artists' IAM users or groups


#: StackOutputs field -> CloudFormation output key, for the outputs every stack has
REQUIRED_OUTPUTS = {
    "bucket": "BucketName",
    "job_queue": "JobQueue",
    "render_job_definition": "RenderJobDefinition",
    "stitch_job_definition": "StitchJobDefinition",
    "repository_uri": "RepositoryUri",
    "log_group": "LogGroupName",
    "region": "Region",
}
OPTIONAL_OUTPUTS = {"gpu_job_queue": "GpuJobQueue", "submitter_policy": "SubmitterPolicyArn"}


def outputs_from_stack(stack_name: str, stack: Mapping[str, Any]) -> StackOutputs:
    """Map one ``describe_stacks`` stack to :class:`StackOutputs` (image_tags left empty)."""
    raw = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}
    missing = [key for key in REQUIRED_OUTPUTS.values() if not raw.get(key)]
    if missing:
        raise StackError(
            f"Stack {stack_name!r} has no output {', '.join(missing)} (status {stack.get('StackStatus')}): "
            f"is it an AWS Batch Render stack? Deploy it with `aws-batch-render deploy --stack {stack_name}`."
        )
    values = {name: raw[key] for name, key in REQUIRED_OUTPUTS.items()}
    values.update({name: raw.get(key, "") for name, key in OPTIONAL_OUTPUTS.items()})
    return StackOutputs(**values)


def read_stack_outputs(stack_name: str, settings: AwsSettings) -> StackOutputs:
    """The outputs of a deployed stack, with the image tags its repository holds."""
    stack = describe_stack(stack_name, settings)
    if stack is None:
        raise StackNotFoundError(not_found_message(stack_name, settings))
    status = stack["StackStatus"]
    if status.endswith("_IN_PROGRESS") and "UPDATE" not in status:
        raise StackError(f"Stack {stack_name!r} is {status}: wait until it finishes, then try again.")
    outputs = outputs_from_stack(stack_name, stack)
    outputs.image_tags = repository_image_tags(outputs.repository_uri, with_region(settings, outputs.region))
    return outputs


def repository_image_tags(repository_uri: str, settings: AwsSettings) -> tuple[str, ...]:
    """Tags in the stack's repository (one paginated ``list_images``); () when unreadable."""
    name = repository_uri.split("/", 1)[1] if "/" in repository_uri else repository_uri
    tags: set[str] = set()
    try:
        ecr = client("ecr", settings)
        for page in ecr.get_paginator("list_images").paginate(repositoryName=name, filter={"tagStatus": "TAGGED"}):
            tags.update(i["imageTag"] for i in page.get("imageIds", []) if i.get("imageTag"))
    except Exception as exc:  # the tags are a convenience: never fail Connect over them
        log.info("could not list the images of %s: %s", name, exc)
        return ()
    return tuple(sorted(tags))




def validate_stack_name(name: str) -> str:
    if not STACK_NAME_RE.match(name or ""):
        raise StackError(
            f"Stack name {name!r} is not usable: use lowercase letters, digits and '-', starting "
            "with a letter, at most 120 characters (it also names the ECR repository)."
        )
    return name








def describe_stack(stack_name: str, settings: AwsSettings, cfn: Any = None) -> dict[str, Any] | None:
    """The stack as ``describe_stacks`` returns it, or None when there is none (or it is deleted)."""
    cfn = cfn or client("cloudformation", settings)
    with aws_step(f"read stack {stack_name}", profile=settings.profile, region=settings.region):
        try:
            stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
        except Exception as exc:
            if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
                return None
            raise
    live = [s for s in stacks if s.get("StackStatus") != "DELETE_COMPLETE"]
    return live[0] if live else None


def with_region(settings: AwsSettings, region: str) -> AwsSettings:
    if settings.region or not region:
        return settings
    return AwsSettings(
        profile=settings.profile,
        region=region,
        endpoint_url=settings.endpoint_url,
        retry_mode=settings.retry_mode,
        max_attempts=settings.max_attempts,
        max_pool_connections=settings.max_pool_connections,
    )


def not_found_message(stack_name: str, settings: AwsSettings) -> str:
    region = settings.region
    if not region:
        try:
            region = session(settings).region_name or ""
        except Exception:  # only for the message
            region = ""
    where = f" in region {region}" if region else ""
    return (
        f"No stack named {stack_name!r}{where}: deploy it with `aws-batch-render deploy --stack {stack_name}` "
        "or pick the region it is in (--region or AWS_REGION)."
    )


@contextmanager
def aws_step(action: str, **context: str) -> Iterator[None]:
    """Translate AWS failures (see :mod:`.errors`); any other botocore failure, such
    as a response it cannot parse, still becomes a one-line :class:`StackError`."""
    try:
        with aws_errors(action, **context):
            yield
    except AwsBatchRenderError:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith("botocore"):
            raise StackError(f"Cannot {action}: {exc}") from exc
        raise


def env_settings(profile: str = "", region: str = "", endpoint_url: str = "") -> AwsSettings:
    """Settings from the command line, falling back to the environment."""
    base = AwsSettings.from_env()
    return AwsSettings(
        profile=profile or base.profile,
        region=region or base.region,
        endpoint_url=endpoint_url or base.endpoint_url,
    )
