"""What the preferences and the scene say, read on the main thread into plain data.

Background threads get a :class:`~.tasks.Target` built here, never the preferences
themselves (bpy data must not cross into a thread).
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

import bpy

from ..core.aws.session import AwsSettings
from .tasks import Target

log = logging.getLogger(__name__)

#: The add-on's top package: ``bl_ext.<repo>.aws_batch_render`` once installed.
ADDON_PACKAGE = __package__.rpartition(".")[0]


def prefs(context: Any = None) -> Any:
    """The add-on's preferences, or None when it is not enabled under its package name."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon else None


def user_dir(*parts: str) -> str:
    """A folder in the extension's user data (survives updates), created on demand."""
    try:
        base = bpy.utils.extension_path_user(ADDON_PACKAGE, path="", create=True)
    except ValueError:
        # Not running as an installed extension (a development checkout imported as a
        # plain package): keep the data where the CLI keeps its own.
        from ..core.records import default_records_dir

        base = str(default_records_dir().parent / "addon")
    path = os.path.join(base, *parts)
    os.makedirs(path, exist_ok=True)
    return path


def records_dir() -> str:
    return user_dir("submissions")


def preview_dir() -> str:
    return user_dir("previews")


def aws_settings(p: Any) -> AwsSettings:
    return AwsSettings(profile=p.profile.strip(), region=p.region.strip(), endpoint_url=p.endpoint_url.strip())


def backend_name(scene: Any, p: Any) -> str:
    choice = scene.awsbatch.backend if scene is not None else "DEFAULT"
    if choice == "DEFAULT":
        choice = p.default_backend if p is not None else "AWS"
    return "local" if choice == "LOCAL" else "aws"


def target(scene: Any = None, context: Any = None) -> Target:
    p = prefs(context)
    if p is None:
        return Target(backend=backend_name(scene, None), settings=AwsSettings(), blender_bin=bpy.app.binary_path)
    return Target(
        backend=backend_name(scene, p),
        settings=aws_settings(p),
        bucket=p.bucket.strip(),
        job_queue=p.job_queue.strip(),
        render_job_definition=p.render_job_definition.strip(),
        stitch_job_definition=p.stitch_job_definition.strip(),
        gpu_job_queue=p.gpu_job_queue.strip(),
        log_group=p.log_group.strip(),
        stack_name=p.stack_name.strip(),
        blender_bin=bpy.app.binary_path,
    )


def image_tag() -> str:
    """The worker image tag for the Blender running now, e.g. ``blender-5.2``."""
    major, minor = bpy.app.version[:2]
    return f"blender-{major}.{minor}"


def image_warning(p: Any) -> str:
    """Why the stack may not be able to render this Blender version ("" when it can)."""
    if p is None or not p.repository_uri:
        return ""
    tags = [t.strip() for t in p.image_tags.split(",") if t.strip()]
    if not tags:
        return "The stack lists no worker images yet: publish one for this Blender version"
    if image_tag() not in tags:
        return f"The stack has no {image_tag()} image (has {', '.join(tags)}): publish one first"
    return ""


def submit_temp_dir() -> str:
    return tempfile.mkdtemp(prefix="awsbatch-submit-")
