"""Destroying the CloudFormation stack. Its bucket is emptied only when the user asked for
it (``--force``) and confirmed what it holds; otherwise destroy refuses and says what is
there. CLI work: blocks while it polls, reporting stack events through a callback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import error_code, is_aws_exception, translate_aws_error
from .session import AwsSettings, client
from .stack import BucketNotEmptyError, StackError, StackNotFoundError, aws_step, describe_stack, not_found_message
from .stack_events import StackEvent, event_ids, failure_message, wait_stack

log = logging.getLogger(__name__)


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
    seen = event_ids(cfn, stack_name)
    before = set(seen)
    with aws_step(f"delete stack {stack_name}"):
        cfn.delete_stack(StackName=stack["StackId"])
    final = wait_stack(cfn, stack["StackId"], seen, on_event, poll_seconds, timeout_seconds)
    if final != "DELETE_COMPLETE":
        raise StackError(failure_message(cfn, stack["StackId"], final, before))
    return DestroyResult(stack_name, bucket, deleted)


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
