"""Watching a CloudFormation operation: the stack's new events as they come, waiting for
it to settle, and the one line that says why it failed. Shared by :mod:`.deploy` and
:mod:`.destroy`; no bpy here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import is_aws_exception, translate_aws_error
from .stack import StackError

log = logging.getLogger(__name__)


@dataclass
class StackEvent:
    """One CloudFormation stack event (plain data for progress output)."""

    timestamp: str
    logical_id: str
    resource_type: str
    status: str
    reason: str = ""

    @property
    def failed(self) -> bool:
        return self.status.endswith("_FAILED")


def event_ids(cfn: Any, stack_name: str) -> set[str]:
    try:
        return {e["EventId"] for e in cfn.describe_stack_events(StackName=stack_name)["StackEvents"]}
    except Exception as exc:
        log.debug("no events for %s yet: %s", stack_name, exc)
        return set()


def new_events(cfn: Any, stack_name: str, seen: set[str]) -> list[StackEvent]:
    try:
        raw = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
    except Exception as exc:
        log.debug("could not read events of %s: %s", stack_name, exc)
        return []
    fresh = []
    for e in reversed(raw):  # the API lists newest first
        if e["EventId"] in seen:
            continue
        seen.add(e["EventId"])
        stamp = e.get("Timestamp")
        fresh.append(
            StackEvent(
                timestamp=stamp.strftime("%H:%M:%S") if hasattr(stamp, "strftime") else str(stamp or ""),
                logical_id=e.get("LogicalResourceId", ""),
                resource_type=e.get("ResourceType", ""),
                status=e.get("ResourceStatus", ""),
                reason=e.get("ResourceStatusReason") or "",
            )
        )
    return fresh


def wait_stack(
    cfn: Any,
    stack_name: str,
    seen: set[str],
    on_event: Callable[[StackEvent], None] | None,
    poll_seconds: float,
    timeout_seconds: float,
) -> str:
    """Poll until the stack leaves every *_IN_PROGRESS state; returns the final status."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        for event in new_events(cfn, stack_name, seen):
            if on_event:
                on_event(event)
        try:
            status = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"]
        except Exception as exc:
            if "does not exist" in str(exc):
                return "DELETE_COMPLETE"
            if is_aws_exception(exc):
                raise translate_aws_error(exc, f"follow stack {stack_name}") from None
            raise
        if not status.endswith("_IN_PROGRESS"):
            return status
        if time.monotonic() > deadline:
            raise StackError(
                f"Stack {stack_name} is still {status} after {timeout_seconds:.0f} s: follow it in the "
                "CloudFormation console; deploy or destroy again once it has finished."
            )
        time.sleep(poll_seconds)


def failure_message(cfn: Any, stack_name: str, final: str, before: set[str]) -> str:
    """The final status and the first resource failure among the events after ``before``."""
    reasons = []
    try:
        for e in reversed(cfn.describe_stack_events(StackName=stack_name)["StackEvents"]):
            if e["EventId"] in before:
                continue
            if e.get("ResourceStatus", "").endswith("_FAILED") and e.get("ResourceStatusReason"):
                reasons.append(f"{e.get('LogicalResourceId')}: {e['ResourceStatusReason']}")
    except Exception as exc:
        log.debug("no failure events: %s", exc)
    first = reasons[0] if reasons else "no reason recorded"
    text = f"Stack {stack_name} ended {final}. First failure: {first}."
    if final == "ROLLBACK_COMPLETE":
        name = stack_name.split("/")[1] if stack_name.startswith("arn:") else stack_name
        return f"{text} Fix that, run `aws-batch-render destroy --stack {name}`, then deploy again."
    return f"{text} The stack's events in the CloudFormation console tell more."
