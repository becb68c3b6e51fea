"""AWS failures, translated once at the edge into errors a user can act on.

botocore raises a handful of exception types and hundreds of error codes. Everything
in the core that calls AWS wraps the call in :func:`aws_errors` (or calls
:func:`translate_aws_error`), so the add-on and the CLI only ever see the purpose-named
:class:`AwsError` subclasses below, each with its own exit code and a message naming the
cause and the fix. botocore is only imported when an error is being translated.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import AwsBatchRenderError, ObjectNotFoundError, StorageError

log = logging.getLogger(__name__)


class AwsError(AwsBatchRenderError):
    """An AWS call failed for a reason without a more specific class below."""

    exit_code = 20


class AwsCredentialsMissingError(AwsError):
    exit_code = 21


class AwsCredentialsExpiredError(AwsError):
    exit_code = 22


class AwsCredentialsInvalidError(AwsError):
    exit_code = 23


class AwsAccessDeniedError(AwsError):
    exit_code = 24

    def __init__(self, message: str, permission: str = "") -> None:
        super().__init__(message)
        self.permission = permission


class BucketNotFoundError(AwsError, StorageError):
    """Also a storage error: whoever handles failed reads and writes handles this one too."""

    exit_code = 25


class BucketRegionError(AwsError):
    exit_code = 26

    def __init__(self, message: str, region: str = "") -> None:
        super().__init__(message)
        self.region = region


class JobQueueError(AwsError):
    """The job queue does not exist, is disabled, or is INVALID."""

    exit_code = 27


class JobDefinitionError(AwsError):
    """A job definition does not exist or is inactive."""

    exit_code = 28


class AwsThrottledError(AwsError):
    """AWS kept answering 'slow down' until botocore's retries ran out."""

    exit_code = 29


class AwsNetworkError(AwsError):
    exit_code = 30


class BatchJobNotFoundError(AwsError):
    """A recorded job id is unknown to Batch (other account/region, or expired)."""

    exit_code = 31


#: IAM action needed by each API operation we call (when the error text does not name one)
OPERATION_PERMISSIONS = {
    "SubmitJob": "batch:SubmitJob",
    "DescribeJobs": "batch:DescribeJobs",
    "ListJobs": "batch:ListJobs",
    "CancelJob": "batch:CancelJob",
    "TerminateJob": "batch:TerminateJob",
    "DescribeJobQueues": "batch:DescribeJobQueues",
    "DescribeJobDefinitions": "batch:DescribeJobDefinitions",
    "DescribeComputeEnvironments": "batch:DescribeComputeEnvironments",
    "TagResource": "batch:TagResource",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "GetLogEvents": "logs:GetLogEvents",
    "FilterLogEvents": "logs:FilterLogEvents",
    "DescribeStacks": "cloudformation:DescribeStacks",
}

_EXPIRED = {
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "TokenRefreshRequired",
    "InvalidToken",
}
_INVALID = {
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "AuthFailure",
}
_DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AllAccessDisabled",
    "403",
    "Forbidden",
}
_THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
}
_REGION = {"PermanentRedirect", "AuthorizationHeaderMalformed", "301", "IllegalLocationConstraintException"}
_NETWORK_TYPES = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "ProxyConnectionError",
    "SSLError",
    "HTTPClientError",
    "ConnectionError",
}
_NO_CREDENTIAL_TYPES = {"NoCredentialsError", "PartialCredentialsError", "ProfileNotFound"}
_EXPIRED_TYPES = {
    "TokenRetrievalError",
    "SSOTokenLoadError",
    "UnauthorizedSSOTokenError",
    "PendingAuthorizationExpiredError",
    "RefreshWithMFAUnsupportedError",
}

_PERMISSION_IN_TEXT = re.compile(r"not authorized to perform:?\s*([a-z0-9-]+:[A-Za-z0-9*]+)")


def is_aws_exception(exc: BaseException) -> bool:
    """True for botocore's own exceptions (ClientError and BotoCoreError families)."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - boto3 is a hard dependency
        return False
    return isinstance(exc, (BotoCoreError, ClientError))


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def translate_aws_error(
    exc: BaseException,
    action: str,
    *,
    resource: str = "",
    permission: str = "",
    profile: str = "",
    region: str = "",
) -> AwsBatchRenderError:
    """The purpose-named error for a botocore failure while doing ``action``.

    ``action`` completes "Cannot ...", e.g. "submit the render job"; ``resource`` names
    what was touched (a queue, an s3:// URI); ``permission`` the IAM action needed
    (derived from the operation name when not given).
    """
    if isinstance(exc, AwsBatchRenderError):
        return exc
    name = type(exc).__name__
    code = error_code(exc)
    response = getattr(exc, "response", None) or {}
    message = str(response.get("Error", {}).get("Message", "")) if isinstance(response, dict) else ""
    operation = getattr(exc, "operation_name", "") or ""
    what = f"Cannot {action}" + (f" ({resource})" if resource else "")
    who = f" for profile '{profile}'" if profile else ""

    if name in _NO_CREDENTIAL_TYPES:
        if name == "ProfileNotFound":
            return AwsCredentialsMissingError(
                f"{what}: the AWS profile '{profile or exc}' does not exist. Pick a profile from "
                "'aws configure list-profiles', or create it with 'aws configure --profile NAME'."
            )
        return AwsCredentialsMissingError(
            f"{what}: no AWS credentials found{who}. Run 'aws configure' (or 'aws sso login' for "
            "SSO), or choose a profile that has credentials."
        )
    if name in _EXPIRED_TYPES or code in _EXPIRED:
        login = f"aws sso login --profile {profile}" if profile else "aws sso login"
        return AwsCredentialsExpiredError(
            f"{what}: your AWS session token has expired{who}. Sign in again ('{login}', or "
            "refresh the temporary credentials) and retry."
        )
    if code in _INVALID:
        return AwsCredentialsInvalidError(
            f"{what}: AWS rejected the access key{who} ({code}). Check that the key is active and "
            "belongs to this account, or run 'aws configure' with a valid key."
        )
    if code in _DENIED or "not authorized to perform" in message:
        found = _PERMISSION_IN_TEXT.search(message)
        needed = (found.group(1) if found else "") or permission or OPERATION_PERMISSIONS.get(operation, "")
        on = f" on {resource}" if resource else ""
        hint = f"{needed}{on}" if needed else f"the permission for {operation or action}{on}"
        return AwsAccessDeniedError(
            f"{what}: access denied. Your credentials{who} need {hint}; ask your AWS administrator "
            "to allow it (the stack's submitter policy grants what this tool uses).",
            permission=needed,
        )
    if code in ("NoSuchKey", "404", "NotFound") and operation in ("GetObject", "HeadObject"):
        return ObjectNotFoundError(
            f"{what}: {resource or 'the object'} does not exist. It may have been deleted, or the "
            "submission was made to another bucket or region."
        )
    if code == "NoSuchBucket":
        bucket = _bucket_of(resource) or str(response.get("Error", {}).get("BucketName", ""))
        return BucketNotFoundError(
            f"{what}: the bucket {bucket or resource or '(unknown)'} does not exist. Check the bucket "
            "name, or deploy the stack ('aws-batch-render deploy') to create it."
        )
    if code in _REGION:
        bucket_region = _bucket_region(response, message)
        there = f" ({bucket_region})" if bucket_region else ""
        return BucketRegionError(
            f"{what}: the bucket is in another region{there} than the one in use"
            f"{' (' + region + ')' if region else ''}. Set the region to the bucket's region"
            f"{' (--region ' + bucket_region + ')' if bucket_region else ''}.",
            region=bucket_region,
        )
    if code in _THROTTLED:
        attempts = _attempts(response)
        tries = f" after {attempts} attempts" if attempts else ""
        return AwsThrottledError(
            f"{what}: AWS kept throttling the request ({code}){tries}. Too many calls at once on "
            "this account: wait a minute and retry, submit fewer jobs at a time, or raise the "
            "retry attempts (AWS_MAX_ATTEMPTS)."
        )
    if name in _NETWORK_TYPES:
        return AwsNetworkError(
            f"{what}: the AWS endpoint could not be reached ({exc}). Check your internet connection, "
            "proxy and VPN, and that the region name is right."
        )
    queue_or_def = _batch_resource_error(what, code, message)
    if queue_or_def is not None:
        return queue_or_def
    detail = f"{code}: {message}" if code else str(exc)
    return AwsError(f"{what}: {detail}")


@contextmanager
def aws_errors(
    action: str,
    *,
    resource: str = "",
    permission: str = "",
    profile: str = "",
    region: str = "",
) -> Iterator[None]:
    """Run a block of AWS calls; a botocore failure leaves it as a translated error."""
    try:
        yield
    except AwsBatchRenderError:
        raise
    except Exception as exc:
        if not is_aws_exception(exc):
            raise
        log.debug("AWS call failed while trying to %s", action, exc_info=True)
        raise translate_aws_error(
            exc, action, resource=resource, permission=permission, profile=profile, region=region
        ) from None


def _batch_resource_error(what: str, code: str, message: str) -> AwsBatchRenderError | None:
    text = message.lower()
    if code not in ("ClientException", "InvalidParameterValueException", ""):
        return None
    if re.search(r"job ?queue", text):
        if "disabled" in text or "not enabled" in text:
            return JobQueueError(
                f"{what}: the job queue is disabled ({message}). Enable it in the AWS Batch console "
                "or redeploy the stack."
            )
        return JobQueueError(
            f"{what}: the job queue is missing or not valid ({message}). Check --queue (or the "
            "stack name), the region, and that the queue's compute environments are VALID."
        )
    if re.search(r"job ?definition", text):
        return JobDefinitionError(
            f"{what}: the job definition is missing or inactive ({message}). Check --job-definition "
            "(or the stack name) and the region, or redeploy the stack."
        )
    return None


def _bucket_of(resource: str) -> str:
    if resource.startswith("s3://"):
        return "s3://" + resource[5:].split("/", 1)[0]
    return ""


def _bucket_region(response: Any, message: str) -> str:
    if isinstance(response, dict):
        err = response.get("Error", {})
        if err.get("Region"):
            return str(err["Region"])
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        if headers.get("x-amz-bucket-region"):
            return str(headers["x-amz-bucket-region"])
    m = re.search(r"expecting '([a-z0-9-]+)'", message)
    return m.group(1) if m else ""


def _attempts(response: Any) -> int:
    if isinstance(response, dict):
        retries = response.get("ResponseMetadata", {}).get("RetryAttempts")
        if isinstance(retries, int):
            return retries + 1
    return 0
