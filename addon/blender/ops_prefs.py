"""Preferences operators: Connect (fill the fields from the stack's outputs) and Test
Connection (credentials, bucket, queue, job definitions). Both run in a thread."""

from __future__ import annotations

import dataclasses
from typing import Any

import bpy

from . import background as bg
from . import config, status_timer, tasks
from .ops_submit import OFFLINE_MESSAGE


def _start(op: Any, context: Any, task: str, fn: Any, *args: Any) -> set[str]:
    p = config.prefs(context)
    if p is None:
        op.report({"ERROR"}, "The add-on's preferences are not available (is it enabled?)")
        return {"CANCELLED"}
    if not bpy.app.online_access:
        p.connection_ok = False
        p.connection_report = OFFLINE_MESSAGE
        op.report({"ERROR"}, OFFLINE_MESSAGE)
        return {"CANCELLED"}
    if not bg.start(task, task, fn, *args):
        op.report({"WARNING"}, "Still checking; wait for the answer")
        return {"CANCELLED"}
    p.checking = True
    p.connection_report = ""
    status_timer.ensure_running()
    return {"FINISHED"}


class AWSBATCH_OT_connect_stack(bpy.types.Operator):
    """Read the bucket, queue, job definitions and worker images from the CloudFormation stack"""

    bl_idname = "awsbatch.connect_stack"
    bl_label = "Connect"
    bl_options = {"REGISTER", "INTERNAL"}  # noqa: RUF012 (Blender reads a set)

    def execute(self, context: Any) -> set[str]:
        p = config.prefs(context)
        if p is not None and not p.stack_name.strip():
            self.report({"ERROR"}, "Enter the stack name first (the one given to 'aws-batch-render deploy')")
            return {"CANCELLED"}
        settings = config.aws_settings(p) if p is not None else None
        return _start(self, context, "connect", tasks.connect_stack, p.stack_name.strip() if p else "", settings)


class AWSBATCH_OT_test_connection(bpy.types.Operator):
    """Check the credentials, the bucket, the job queue and the job definitions"""

    bl_idname = "awsbatch.test_connection"
    bl_label = "Test Connection"
    bl_options = {"REGISTER", "INTERNAL"}  # noqa: RUF012 (Blender reads a set)

    def execute(self, context: Any) -> set[str]:
        # the check is about AWS, whichever backend is the default
        target = dataclasses.replace(config.target(None, context), backend="aws")
        return _start(self, context, "test", tasks.test_connection, target)


CLASSES = (AWSBATCH_OT_connect_stack, AWSBATCH_OT_test_connection)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
