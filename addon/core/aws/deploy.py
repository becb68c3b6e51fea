"""Deploying and destroying the CloudFormation stack (``infra/stack.yaml``).

CLI work: both block while they poll CloudFormation and report each new stack event
through a callback, so the caller decides how to show progress. Destroy empties the
bucket only when asked to. boto3 is imported lazily by :mod:`.session`; no bpy here.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AwsBatchRenderError
from .errors import error_code, is_aws_exception, translate_aws_error
from .session import AwsSettings, client
from .stack import (
    MAX_TEMPLATE_BODY,
    TEMPLATE_PATH,
    BucketNotEmptyError,
    StackError,
    StackNotFoundError,
    StackOutputs,
    aws_step,
    describe_stack,
    not_found_message,
    read_stack_outputs,
    validate_stack_name,
)

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
    seen = _event_ids(cfn, stack_name) if stack else set()
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
    final = _wait_stack(cfn, stack_name, seen, on_event, poll_seconds, timeout_seconds)
    if final not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        raise StackError(_failure_message(cfn, stack_name, final, before))
    return DeployResult(stack_name, action, read_stack_outputs(stack_name, settings), resolved, changes)


@dataclass
class BucketContents:
    bucket: str
    objects: int  # counted up to ``limit``
    more: bool  # True when there are more than ``objects``


@dataclass
class DestroyResult:
    stack_name: str
    bucket: str
    objects_deleted: int


def bucket_contents(bucket: str, settings: AwsSettings, limit: int = 1000) -> BucketContents:
    """How many objects (and object versions) the bucket holds, counted up to ``limit``."""
    s3 = client("s3", settings)
    try:
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=limit)
    except Exception as exc:
        if error_code(exc) == "NoSuchBucket":
            return BucketContents(bucket, 0, False)
        if is_aws_exception(exc):
            raise translate_aws_error(exc, f"list bucket {bucket}", resource=f"s3://{bucket}") from None
        raise
    count = len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
    return BucketContents(bucket, count, bool(page.get("IsTruncated")))


def empty_bucket(bucket: str, settings: AwsSettings, on_progress: Callable[[int], None] | None = None) -> int:
    """Delete every object, version and unfinished upload in ``bucket``; returns how many."""
    s3 = client("s3", settings)
    deleted = 0
    with aws_step(f"empty bucket {bucket}"):
        for batch in _chunks(_bucket_versions(s3, bucket), 1000):
            resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            errors = resp.get("Errors") or []
            if errors:
                first = errors[0]
                raise StackError(
                    f"Could not delete s3://{bucket}/{first.get('Key')}: {first.get('Message')} "
                    "(check s3:DeleteObject and s3:DeleteObjectVersion for your user)."
                )
            deleted += len(batch)
            if on_progress:
                on_progress(deleted)
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for upload in page.get("Uploads", []):
                s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    return deleted


def destroy_stack(
    stack_name: str,
    settings: AwsSettings,
    force: bool = False,
    confirm: Callable[[BucketContents], bool] | None = None,
    on_event: Callable[[StackEvent], None] | None = None,
    poll_seconds: float = 5.0,
    timeout_seconds: float = 3600.0,
) -> DestroyResult:
    """Delete the stack. A bucket holding objects is emptied only with ``force`` and a
    ``confirm(contents)`` that returns True; otherwise nothing is deleted at all."""
    cfn = client("cloudformation", settings)
    stack = describe_stack(stack_name, settings, cfn)
    if stack is None:
        raise StackNotFoundError(not_found_message(stack_name, settings))
    raw = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}
    bucket = raw.get("BucketName") or _physical_id(cfn, stack_name, "Bucket")
    deleted = 0
    if bucket:
        contents = bucket_contents(bucket, settings)
        if contents.objects:
            amount = f"{contents.objects}{'+' if contents.more else ''} objects"
            if not force:
                raise BucketNotEmptyError(
                    f"Bucket {bucket} still holds {amount} (inputs, frames, videos). Download what you "
                    f"want to keep, then run `aws-batch-render destroy --stack {stack_name} --force` to "
                    "delete them together with the stack. Nothing was deleted."
                )
            if confirm is None or not confirm(contents):
                raise BucketNotEmptyError(f"Not confirmed: bucket {bucket} and stack {stack_name!r} are kept.")
            deleted = empty_bucket(bucket, settings)
    seen = _event_ids(cfn, stack_name)
    before = set(seen)
    with aws_step(f"delete stack {stack_name}"):
        cfn.delete_stack(StackName=stack["StackId"])
    final = _wait_stack(cfn, stack["StackId"], seen, on_event, poll_seconds, timeout_seconds)
    if final != "DELETE_COMPLETE":
        raise StackError(_failure_message(cfn, stack["StackId"], final, before))
    return DestroyResult(stack_name, bucket, deleted)


def _template_parameters(cfn: Any, body: str) -> dict[str, str]:
    with aws_step("read the template's parameters"):
        summary = cfn.get_template_summary(TemplateBody=body)
    return {p["ParameterKey"]: str(p.get("DefaultValue", "")) for p in summary.get("Parameters", [])}


def _event_ids(cfn: Any, stack_name: str) -> set[str]:
    try:
        return {e["EventId"] for e in cfn.describe_stack_events(StackName=stack_name)["StackEvents"]}
    except Exception as exc:
        log.debug("no events for %s yet: %s", stack_name, exc)
        return set()


def _new_events(cfn: Any, stack_name: str, seen: set[str]) -> list[StackEvent]:
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


def _wait_stack(
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
        for event in _new_events(cfn, stack_name, seen):
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


def _failure_message(cfn: Any, stack_name: str, final: str, before: set[str]) -> str:
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


def _describe_change(change: Mapping[str, Any]) -> str:
    rc = change.get("ResourceChange", {})
    text = f"{rc.get('Action', '?')} {rc.get('LogicalResourceId', '?')} ({rc.get('ResourceType', '?')})"
    if rc.get("Replacement") in ("True", "Conditional"):
        text += f" replacement: {rc['Replacement']}"
    return text


def _no_changes(message: str) -> bool:
    return "didn't contain changes" in message or "No updates are to be performed" in message


def _physical_id(cfn: Any, stack_name: str, logical_id: str) -> str:
    try:
        res = cfn.describe_stack_resource(StackName=stack_name, LogicalResourceId=logical_id)
        return res["StackResourceDetail"].get("PhysicalResourceId", "")
    except Exception as exc:
        log.debug("no %s in %s: %s", logical_id, stack_name, exc)
        return ""


def _bucket_versions(s3: Any, bucket: str) -> Iterator[dict[str, str]]:
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            entry = {"Key": item["Key"]}
            if item.get("VersionId") and item["VersionId"] != "null":
                entry["VersionId"] = item["VersionId"]
            yield entry


def _chunks(items: Iterable[dict[str, str]], size: int) -> Iterator[list[dict[str, str]]]:
    batch: list[dict[str, str]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
