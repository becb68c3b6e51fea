"""Deploying the CloudFormation stack (``infra/stack.yaml``): create or update it through
a change set, with the template's parameters checked and filled in first.

CLI work: it blocks while it polls CloudFormation and reports each new stack event
through a callback (:mod:`.stack_events`), so the caller decides how to show progress.
Destroying is :mod:`.destroy`. boto3 is imported lazily by :mod:`.session`; no bpy here.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AwsBatchRenderError
from .session import AwsSettings, client
from .stack import (
    MAX_TEMPLATE_BODY,
    TEMPLATE_PATH,
    StackError,
    StackOutputs,
    aws_step,
    describe_stack,
    read_stack_outputs,
    validate_stack_name,
)
from .stack_events import StackEvent, event_ids, failure_message, wait_stack

log = logging.getLogger(__name__)


@dataclass
class DeployResult:
    stack_name: str
    action: str  # "created", "updated" or "unchanged"
    outputs: StackOutputs
    parameters: dict[str, str] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)  # "Modify JobQueue (Replacement: False)"


def load_template(path: Path | str | None = None) -> str:
    """The template text; ``infra/stack.yaml`` of this checkout by default."""
    path = Path(path) if path else TEMPLATE_PATH
    if not path.is_file():
        raise StackError(
            f"CloudFormation template {path} not found: run from a checkout of aws-batch-render "
            "or pass --template PATH."
        )
    body = path.read_text(encoding="utf-8")
    if len(body.encode()) > MAX_TEMPLATE_BODY:
        raise StackError(f"Template {path} is over {MAX_TEMPLATE_BODY} bytes, CloudFormation's inline limit.")
    return body


def parse_parameters(pairs: Iterable[str]) -> dict[str, str]:
    """``["Key=Value", ...]`` from the command line into a dict."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.match(r"^[A-Za-z0-9]+$", key):
            raise StackError(f"Parameter {pair!r} is not KEY=VALUE (for example SpotMaxVcpus=512).")
        params[key] = value
    return params


def resolve_parameters(
    declared: Mapping[str, str], given: Mapping[str, str], previous: Mapping[str, str]
) -> dict[str, str]:
    """Every template parameter pinned explicitly: given, else the stack's current value,
    else the template default. Pinning keeps an update from silently reverting a value set
    by an earlier deploy, and lets an unchanged deploy be recognised as one."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise StackError(
            f"Unknown stack parameter {', '.join(unknown)}: the template has {', '.join(sorted(declared))}."
        )
    resolved = {}
    for key, default in declared.items():
        if key in given:
            resolved[key] = str(given[key])
        elif key in previous:
            resolved[key] = str(previous[key])
        else:
            resolved[key] = str(default)
    return resolved


def deploy_stack(
    stack_name: str,
    settings: AwsSettings,
    template_body: str | None = None,
    parameters: Mapping[str, str] | None = None,
    on_event: Callable[[StackEvent], None] | None = None,
    poll_seconds: float = 5.0,
    timeout_seconds: float = 3600.0,
) -> DeployResult:
    """Create the stack, or update it through a change set; an unchanged stack is a no-op.

    Blocks until CloudFormation finishes, calling ``on_event`` for each new stack event.
    A new stack is created with CreateStack (a CREATE change set does the same work, and
    the moto server used by the tests does not record outputs of a stack created that
    way); updates go through a change set, so an unchanged template and parameters are
    recognised and nothing runs.
    """
    validate_stack_name(stack_name)
    body = template_body if template_body is not None else load_template()
    cfn = client("cloudformation", settings)
    declared = _template_parameters(cfn, body)
    stack = describe_stack(stack_name, settings, cfn)
    status = stack["StackStatus"] if stack else ""
    if status == "ROLLBACK_COMPLETE":
        raise StackError(
            f"Stack {stack_name!r} failed to create earlier (ROLLBACK_COMPLETE) and cannot be updated: "
            f"run `aws-batch-render destroy --stack {stack_name}`, then deploy again."
        )
    if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise StackError(f"Stack {stack_name!r} is busy ({status}): wait until it finishes, then deploy again.")
    previous = {p["ParameterKey"]: p.get("ParameterValue", "") for p in (stack or {}).get("Parameters") or []}
    resolved = resolve_parameters(declared, parameters or {}, previous)
    cfn_params = [{"ParameterKey": k, "ParameterValue": v} for k, v in resolved.items()]
    seen = event_ids(cfn, stack_name) if stack else set()
    common = {
        "StackName": stack_name,
        "TemplateBody": body,
        "Parameters": cfn_params,
        "Capabilities": ["CAPABILITY_IAM"],
        "Tags": [{"Key": "aws-batch-render:stack", "Value": stack_name}],
    }
    changes: list[str] = []
    if not stack:
        log.info("creating stack %s", stack_name)
        with aws_step(f"create stack {stack_name}"):
            cfn.create_stack(**common, OnFailure="ROLLBACK")
        action = "created"
    else:
        change_type = "CREATE" if status == "REVIEW_IN_PROGRESS" else "UPDATE"
        name = "abr-" + time.strftime("%Y%m%d%H%M%S", time.gmtime())
        try:
            with aws_step(f"create a change set for {stack_name}"):
                created = cfn.create_change_set(**common, ChangeSetName=name, ChangeSetType=change_type)
        except AwsBatchRenderError as exc:
            if _no_changes(str(exc)):
                return DeployResult(stack_name, "unchanged", read_stack_outputs(stack_name, settings), resolved)
            raise
        change_set = _wait_change_set(cfn, created["Id"], poll_seconds, timeout_seconds)
        if change_set["Status"] == "FAILED":
            reason = change_set.get("StatusReason", "")
            if _no_changes(reason):
                with aws_step("delete the empty change set"):
                    cfn.delete_change_set(ChangeSetName=created["Id"])
                return DeployResult(stack_name, "unchanged", read_stack_outputs(stack_name, settings), resolved)
            raise StackError(f"CloudFormation could not plan the update of {stack_name!r}: {reason}")
        changes = [_describe_change(c) for c in change_set.get("Changes", [])]
        with aws_step(f"execute the change set for {stack_name}"):
            cfn.execute_change_set(ChangeSetName=created["Id"])
        # Execution is asynchronous: until it starts, the stack still shows its old
        # *_COMPLETE status, which must not be taken for the end of this update.
        _wait_execution_started(cfn, created["Id"], poll_seconds, timeout_seconds)
        action = "updated" if change_type == "UPDATE" else "created"
    before = set(seen)
    final = wait_stack(cfn, stack_name, seen, on_event, poll_seconds, timeout_seconds)
    if final not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        raise StackError(failure_message(cfn, stack_name, final, before))
    return DeployResult(stack_name, action, read_stack_outputs(stack_name, settings), resolved, changes)


def _template_parameters(cfn: Any, body: str) -> dict[str, str]:
    with aws_step("read the template's parameters"):
        summary = cfn.get_template_summary(TemplateBody=body)
    return {p["ParameterKey"]: str(p.get("DefaultValue", "")) for p in summary.get("Parameters", [])}


def _wait_change_set(cfn: Any, change_set_id: str, poll_seconds: float, timeout_seconds: float) -> dict:
    deadline = time.monotonic() + timeout_seconds
    while True:
        with aws_step("read the change set"):
            cs = cfn.describe_change_set(ChangeSetName=change_set_id)
        if cs["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return cs
        if time.monotonic() > deadline:
            raise StackError(f"The change set is still {cs['Status']} after {timeout_seconds:.0f} s.")
        time.sleep(poll_seconds)


def _wait_execution_started(cfn: Any, change_set_id: str, poll_seconds: float, timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    while True:
        with aws_step("follow the change set"):
            execution = cfn.describe_change_set(ChangeSetName=change_set_id).get("ExecutionStatus", "")
        if execution != "AVAILABLE":
            return
        if time.monotonic() > deadline:
            raise StackError("CloudFormation did not start the change set; see the CloudFormation console.")
        time.sleep(poll_seconds or 0.5)


def _describe_change(change: Mapping[str, Any]) -> str:
    rc = change.get("ResourceChange", {})
    text = f"{rc.get('Action', '?')} {rc.get('LogicalResourceId', '?')} ({rc.get('ResourceType', '?')})"
    if rc.get("Replacement") in ("True", "Conditional"):
        text += f" replacement: {rc['Replacement']}"
    return text


def _no_changes(message: str) -> bool:
    return "didn't contain changes" in message or "No updates are to be performed" in message


