"""The CloudFormation stack: its outputs (what Connect and --stack read), deploy,
destroy and publishing the worker image."""

from __future__ import annotations

from dataclasses import dataclass

from .aws import AwsSettings


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


def read_stack_outputs(stack_name: str, settings: AwsSettings) -> StackOutputs:
    raise NotImplementedError("implemented with the infrastructure (issue 6)")
