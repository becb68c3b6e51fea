"""The add-on's preferences: AWS profile and region, the stack (Connect) or manual
resource fields, an advanced endpoint, and defaults.

No secrets are stored: credentials come from the AWS profile or the default chain
(environment, SSO, instance role). Profiles are read from the AWS config files (local
files only; no network).
"""

from __future__ import annotations

import configparser
import os
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from .config import ADDON_PACKAGE, image_tag, image_warning


def aws_profiles() -> list[str]:
    """Profile names from ~/.aws/config and ~/.aws/credentials (or their env overrides)."""
    names: set[str] = set()
    config = os.environ.get("AWS_CONFIG_FILE") or os.path.expanduser("~/.aws/config")
    creds = os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.expanduser("~/.aws/credentials")
    for path, prefixed in ((config, True), (creds, False)):
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        for section in parser.sections():
            if prefixed and section.startswith("profile "):
                names.add(section[len("profile ") :].strip())
            elif section == "default" or not prefixed:
                names.add(section.strip())
    return sorted(names)


def _profile_search(self: Any, context: Any, edit_text: str) -> list[str]:
    return [p for p in aws_profiles() if edit_text.lower() in p.lower()]


class AWSBATCH_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    profile: StringProperty(
        name="AWS Profile",
        description="Profile from your AWS config; empty uses the default chain "
        "(environment, SSO, instance role). No keys are stored here",
        default="",
        search=_profile_search,
    )
    region: StringProperty(name="Region", description="e.g. us-east-1; empty: the profile's region")
    stack_name: StringProperty(
        name="Stack", description="The CloudFormation stack deployed with 'aws-batch-render deploy'",
        default="aws-batch-render",
    )
    bucket: StringProperty(name="Bucket", description="S3 bucket for inputs and renders")
    job_queue: StringProperty(name="Job Queue", description="AWS Batch job queue (name or ARN)")
    gpu_job_queue: StringProperty(name="GPU Job Queue", description="Queue with GPU instances (optional)")
    render_job_definition: StringProperty(name="Render Job Definition")
    stitch_job_definition: StringProperty(name="Stitch Job Definition")
    repository_uri: StringProperty(name="Worker Image Repository")
    image_tags: StringProperty(name="Image Tags", description="Worker image tags in the repository")
    log_group: StringProperty(name="Log Group")
    endpoint_url: StringProperty(
        name="Endpoint URL", description="Advanced: a private or test AWS endpoint; empty for AWS itself"
    )
    show_manual: BoolProperty(name="Manual Settings", default=False)
    default_chunk_size: IntProperty(name="Default Chunk Size", default=10, min=1, max=10000)
    default_backend: EnumProperty(
        name="Default Backend",
        items=(
            ("AWS", "AWS Batch", "Render on AWS Batch"),
            ("LOCAL", "This Computer", "Render on this computer, in the background"),
        ),
        default="AWS",
    )
    # results of Connect / Test Connection (shown, not secrets)
    connection_report: StringProperty(name="Connection")
    connection_ok: BoolProperty()
    checking: BoolProperty()

    def draw(self, context: Any) -> None:
        layout = self.layout
        col = layout.column()
        col.use_property_split = True
        col.prop(self, "profile")
        col.prop(self, "region")
        row = col.row(align=True)
        row.prop(self, "stack_name")
        row.operator("awsbatch.connect_stack", text="Connect", icon="LINKED")
        col.prop(self, "show_manual")
        if self.show_manual:
            box = col.box()
            for name in (
                "bucket",
                "job_queue",
                "gpu_job_queue",
                "render_job_definition",
                "stitch_job_definition",
                "repository_uri",
                "image_tags",
                "log_group",
                "endpoint_url",
            ):
                box.prop(self, name)
        else:
            col.label(text=f"Bucket: {self.bucket or '—'}   Queue: {self.job_queue.rsplit('/', 1)[-1] or '—'}")
        col.label(text=f"Worker image for this Blender: {image_tag()}")
        warning = image_warning(self)
        if warning:
            col.label(text=warning, icon="ERROR")
        col.separator()
        col.prop(self, "default_backend")
        col.prop(self, "default_chunk_size")
        col.separator()
        col.operator("awsbatch.test_connection", icon="CHECKMARK")
        if self.checking:
            col.label(text="Checking…", icon="SORTTIME")
        for line in self.connection_report.splitlines():
            ok = line.startswith("✓") or (self.connection_ok and not line.startswith(("✗", "✕")))
            # the icon says it: no "✓"/"✗" characters beside it
            col.label(text=line.lstrip("✓✗✕ "), icon="CHECKMARK" if ok else "ERROR")
        if not bpy.app.online_access:
            col.label(text="Online access is off (Preferences › System › Network)", icon="INTERNET_OFFLINE")


CLASSES = (AWSBATCH_AP_preferences,)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
