"""Every AWS failure a user can meet, produced for real where moto can (missing
credentials or profile, missing bucket, queue and job definition, unreachable network)
and with botocore's Stubber where it cannot (expired token, rejected key, bucket in
another region, throttling that outlasted the retries). Access denied is produced by
moto's IAM enforcement in test_aws_batch_states.py."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from addon.core import errors, records
from addon.core.aws.errors import (
    AwsAccessDeniedError,
    AwsCredentialsExpiredError,
    AwsCredentialsInvalidError,
    AwsCredentialsMissingError,
    AwsError,
    AwsNetworkError,
    AwsThrottledError,
    BatchJobNotFoundError,
    BucketNotFoundError,
    BucketRegionError,
    JobDefinitionError,
    JobQueueError,
    aws_errors,
)
from addon.core.aws.session import AwsSettings
from addon.core.backends.aws_batch.backend import AwsBatchBackend
from addon.core.backends.aws_batch.control import NothingToRetryError, RetryTooEarlyError
from addon.core.backends.base import SubmissionRecord
from addon.core.download import NothingToDownloadError
from tests.helpers import free_port
from tests.test_aws_batch_support import QUEUE, RENDER_DEF, STITCH_DEF, create_batch_env, write_spec

ALL = [
    AwsError,
    AwsCredentialsMissingError,
    AwsCredentialsExpiredError,
    AwsCredentialsInvalidError,
    AwsAccessDeniedError,
    BucketNotFoundError,
    BucketRegionError,
    JobQueueError,
    JobDefinitionError,
    AwsThrottledError,
    AwsNetworkError,
    BatchJobNotFoundError,
    NothingToRetryError,
    RetryTooEarlyError,
    NothingToDownloadError,
]


@pytest.fixture
def env(aws_settings, s3_bucket):
    return create_batch_env(aws_settings)


def test_each_error_has_its_own_exit_code():
    codes = [cls.exit_code for cls in ALL]
    assert len(set(codes)) == len(codes)
    core = {
        errors.FrameRangeError.exit_code,
        errors.StorageError.exit_code,
        records.RecordNotFoundError.exit_code,
        130,
    }  # 130: interrupted
    assert not set(codes) & core
    assert all(issubclass(cls, errors.AwsBatchRenderError) for cls in ALL)


def test_no_credentials(env, aws_settings, monkeypatch):
    spec, spec_uri = write_spec(aws_settings)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AwsCredentialsMissingError) as exc:
        env.backend().submit(spec, spec_uri)
    assert "no AWS credentials found" in str(exc.value)
    assert "aws configure" in str(exc.value)
    assert exc.value.exit_code == 21


def test_unknown_profile(aws):
    backend = AwsBatchBackend(AwsSettings(profile="studio-farm"), QUEUE, RENDER_DEF, STITCH_DEF)
    with pytest.raises(AwsCredentialsMissingError, match="profile 'studio-farm' does not exist"):
        backend.client("batch")


def _stubbed(backend: AwsBatchBackend, service: str, method: str, code: str, message: str, status: int, **meta):
    stub = Stubber(backend.client(service))
    stub.add_client_error(method, code, message, status, response_meta=meta or None)
    stub.activate()
    return stub


def test_expired_token(env, aws_settings):
    spec, spec_uri = write_spec(aws_settings)
    backend = AwsBatchBackend(aws_settings, QUEUE, RENDER_DEF, STITCH_DEF, preflight=False)
    _stubbed(
        backend,
        "batch",
        "submit_job",
        "ExpiredTokenException",
        "The security token included in the request is expired",
        403,
    )
    with pytest.raises(AwsCredentialsExpiredError) as exc:
        backend.submit(spec, spec_uri)
    assert "session token has expired" in str(exc.value) and "aws sso login" in str(exc.value)
    assert "submit the render job" in str(exc.value)


def test_rejected_access_key(env, aws_settings):
    spec, spec_uri = write_spec(aws_settings)
    backend = AwsBatchBackend(aws_settings, QUEUE, RENDER_DEF, STITCH_DEF, preflight=False)
    _stubbed(
        backend,
        "batch",
        "submit_job",
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
        403,
    )
    with pytest.raises(AwsCredentialsInvalidError, match="rejected the access key"):
        backend.submit(spec, spec_uri)


def test_access_denied_from_s3_names_the_permission(env, aws_settings):
    record = env.backend().submit(*write_spec(aws_settings))
    backend = env.backend()
    _stubbed(backend, "s3", "get_object", "AccessDenied", "Access Denied", 403)
    with pytest.raises(AwsAccessDeniedError) as exc:
        backend.status(record)
    assert exc.value.permission == "s3:GetObject"
    assert f"s3:GetObject on {record.spec_uri}" in str(exc.value)


def test_throttling_that_outlasted_the_retries(env, aws_settings):
    spec, spec_uri = write_spec(aws_settings)
    backend = AwsBatchBackend(aws_settings, QUEUE, RENDER_DEF, STITCH_DEF, preflight=False)
    _stubbed(backend, "batch", "submit_job", "TooManyRequestsException", "Too Many Requests", 429, RetryAttempts=7)
    with pytest.raises(AwsThrottledError) as exc:
        backend.submit(spec, spec_uri)
    assert "kept throttling" in str(exc.value) and "after 8 attempts" in str(exc.value)
    assert "wait a minute" in str(exc.value)


def test_bucket_missing(env, aws_settings):
    record = env.backend().submit(*write_spec(aws_settings))
    record.spec_uri = "s3://no-such-bucket/submissions/x/spec.json"
    with pytest.raises(BucketNotFoundError) as exc:
        env.backend().status(record)
    assert "s3://no-such-bucket does not exist" in str(exc.value)
    assert "deploy" in str(exc.value)


def test_bucket_in_another_region(env, aws_settings):
    record = env.backend().submit(*write_spec(aws_settings))
    backend = env.backend()
    _stubbed(
        backend,
        "s3",
        "get_object",
        "PermanentRedirect",
        "The bucket you are attempting to access must be addressed using the specified endpoint.",
        301,
        HTTPHeaders={"x-amz-bucket-region": "eu-west-1"},
    )
    with pytest.raises(BucketRegionError) as exc:
        backend.status(record)
    assert exc.value.region == "eu-west-1"
    assert "another region (eu-west-1)" in str(exc.value) and "--region eu-west-1" in str(exc.value)


def test_queue_and_definition_rejected_at_submit(env, aws_settings):
    """Without the preflight checks, Batch's own ClientException is translated too."""
    spec, spec_uri = write_spec(aws_settings)
    with pytest.raises(JobQueueError, match=r"job queue is missing or not valid.*--queue"):
        AwsBatchBackend(aws_settings, "gone-queue", RENDER_DEF, STITCH_DEF, preflight=False).submit(spec, spec_uri)
    with pytest.raises(JobDefinitionError, match=r"job definition is missing or inactive.*--job-definition"):
        AwsBatchBackend(aws_settings, QUEUE, "gone-def", STITCH_DEF, preflight=False).submit(spec, spec_uri)


def test_queue_invalid_from_preflight(env, aws_settings):
    spec, spec_uri = write_spec(aws_settings)
    backend = env.backend()
    stub = Stubber(backend.client("batch"))
    stub.add_response(
        "describe_job_queues",
        {
            "jobQueues": [
                {
                    "jobQueueName": QUEUE,
                    "jobQueueArn": env.queue_arn,
                    "state": "ENABLED",
                    "status": "INVALID",
                    "statusReason": "CLIENT_ERROR - compute environment deleted",
                    "priority": 1,
                    "computeEnvironmentOrder": [],
                }
            ]
        },
    )
    stub.activate()
    with pytest.raises(JobQueueError, match=r"is INVALID.*compute environment deleted"):
        backend.submit(spec, spec_uri)


def test_network_unreachable(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = AwsSettings(region="us-east-1", endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1)
    backend = AwsBatchBackend(settings, QUEUE, RENDER_DEF, STITCH_DEF)
    record = SubmissionRecord("s", "aws", "s3://abr-test/s/spec.json", "", "", 1, 1, jobs={"render_job_id": "j"})
    with pytest.raises(AwsNetworkError) as exc:
        backend.status(record)
    assert "could not be reached" in str(exc.value) and "internet connection" in str(exc.value)


def test_unknown_job_ids(env, aws_settings):
    record = env.backend().submit(*write_spec(aws_settings))
    record.jobs["stitch_job_id"] = "not-a-job"
    with pytest.raises(BatchJobNotFoundError, match=r"does not know job.*not-a-job.*--region"):
        env.backend().status(record)


def test_non_aws_exceptions_pass_through_unchanged():
    with pytest.raises(KeyError):
        with aws_errors("do a thing"):
            raise KeyError("x")


def test_missing_spec_object(env, aws_settings):
    from addon.core.errors import ObjectNotFoundError

    record = env.backend().submit(*write_spec(aws_settings))
    record.spec_uri = record.spec_uri.replace("spec.json", "gone.json")
    with pytest.raises(ObjectNotFoundError, match=r"gone\.json does not exist"):
        env.backend().status(record)
