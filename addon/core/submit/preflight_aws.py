"""What the preflight checks read from AWS: whether the stack's repository holds the worker
image for the scene's Blender line (one ``ecr:DescribeImages``), and whether it has a
GPU queue (from the stack's outputs, already read for the submit)."""

from __future__ import annotations

import logging

from ..aws.errors import error_code
from ..aws.session import AwsSettings, client

log = logging.getLogger(__name__)


def image_tag(blender_version: str) -> str:
    """The tag the job definitions pull: ``blender-X.Y``."""
    return "blender-" + ".".join(blender_version.split(".")[:2])


def image_missing_command(
    repository_uri: str, blender_version: str, stack: str, settings: AwsSettings
) -> str:
    """"" when the repository holds ``blender-X.Y`` (or cannot be read: the submit's own
    calls then say why); else the exact ``publish-image`` command that fixes it."""
    name = repository_uri.split("/", 1)[1] if "/" in repository_uri else repository_uri
    tag = image_tag(blender_version)
    try:
        client("ecr", settings).describe_images(repositoryName=name, imageIds=[{"imageTag": tag}])
        return ""
    except Exception as exc:
        if error_code(exc) not in ("ImageNotFoundException", "RepositoryNotFoundException"):
            log.info("could not read the images of %s: %s", name, exc)
            return ""
    region = f" --region {settings.region}" if settings.region else ""
    return f"aws-batch-render publish-image --stack {stack} --blender {tag.split('-', 1)[1]}{region}"
