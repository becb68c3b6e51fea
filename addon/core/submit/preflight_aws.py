"""What the preflight checks read from AWS: whether the stack's repository holds the worker
image for the scene's exact Blender version (``ecr:DescribeImages``), and whether it has a
GPU queue (from the stack's outputs, already read for the submit).

The job definitions pull ``blender-X.Y``; publish-image moves that tag to the version it
builds and tags it ``blender-X.Y.Z`` too. So the image is the artist's exact version when
the ``blender-X.Y`` image also carries ``blender-X.Y.Z``; when it carries another patch, or
only other lines are there, the finding names the exact ``publish-image`` command."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from ..aws.errors import error_code
from ..aws.session import AwsSettings, client

log = logging.getLogger(__name__)


def image_tag(blender_version: str) -> str:
    """The tag the job definitions pull: ``blender-X.Y``."""
    return "blender-" + ".".join(blender_version.split(".")[:2])


@dataclass(frozen=True)
class ImageCheck:
    missing_command: str = ""  # no blender-X.Y image: the submit would fail to pull
    mismatch_command: str = ""  # blender-X.Y is another patch (or version) than the artist's
    has: str = ""  # the Blender versions the repository's blender-X.Y image was built for


def publish_command(blender_version: str, stack: str, region: str = "") -> str:
    where = f" --region {region}" if region else ""
    return f"aws-batch-render publish-image --stack {stack or 'NAME'} --blender {blender_version}{where}"


def check_image_tags(images: Iterable[Iterable[str]], blender_version: str, stack: str, region: str = "") -> ImageCheck:
    """Decide from the tags of each image in the repository (one set per image)."""
    images = [set(tags) for tags in images]
    command = publish_command(blender_version, stack, region)
    line_image = next((tags for tags in images if image_tag(blender_version) in tags), None)
    if line_image is None:
        return ImageCheck(missing_command=command)
    exact = f"blender-{blender_version}"
    if exact in line_image or blender_version.count(".") < 2:
        return ImageCheck()
    line = image_tag(blender_version) + "."
    built_for = sorted(t.split("-", 1)[1] for t in line_image if t.startswith(line) and t.count("-") == 1)
    return ImageCheck(mismatch_command=command, has=", ".join(built_for) or "an unknown patch")


def check_repository_image(repository_uri: str, blender_version: str, stack: str, settings: AwsSettings) -> ImageCheck:
    """:func:`check_image_tags` on what ECR holds; no finding when the repository cannot be
    read (the submit's own calls then say why)."""
    name = repository_uri.split("/", 1)[1] if "/" in repository_uri else repository_uri
    try:
        pages = (
            client("ecr", settings)
            .get_paginator("describe_images")
            .paginate(repositoryName=name, filter={"tagStatus": "TAGGED"})
        )
        images = [d.get("imageTags") or [] for page in pages for d in page.get("imageDetails", [])]
    except Exception as exc:
        if error_code(exc) != "RepositoryNotFoundException":
            log.info("could not read the images of %s: %s", name, exc)
            return ImageCheck()
        images = []
    return check_image_tags(images, blender_version, stack, settings.region)


def image_missing_command(repository_uri: str, blender_version: str, stack: str, settings: AwsSettings) -> str:
    """ "" when the repository holds ``blender-X.Y``; else the exact ``publish-image`` command."""
    return check_repository_image(repository_uri, blender_version, stack, settings).missing_command
