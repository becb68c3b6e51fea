"""boto3 sessions and clients, configured once.

boto3 is imported lazily, inside the functions, so importing the add-on costs nothing
until the user submits. Clients use botocore's ``standard`` (or ``adaptive``) retry
mode, which backs off on Batch's ``TooManyRequestsException`` throttling.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AwsSettings:
    """Where and as whom to call AWS. No secrets: credentials come from the default chain."""

    profile: str = ""
    region: str = ""
    endpoint_url: str = ""  # advanced: a test endpoint (moto) or a private endpoint
    retry_mode: str = "standard"
    max_attempts: int = 8
    max_pool_connections: int = 32

    @classmethod
    def from_env(cls) -> AwsSettings:
        return cls(
            profile=os.environ.get("AWS_PROFILE", ""),
            region=os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "")),
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL", ""),
        )


def session(settings: AwsSettings) -> Any:
    import boto3  # lazy: see module docstring

    return boto3.session.Session(
        profile_name=settings.profile or None, region_name=settings.region or None
    )


def client(service: str, settings: AwsSettings, sess: Any = None) -> Any:
    from botocore.config import Config

    config = Config(
        retries={"mode": settings.retry_mode, "max_attempts": settings.max_attempts},
        max_pool_connections=settings.max_pool_connections,
    )
    sess = sess or session(settings)
    kwargs: dict[str, Any] = {"config": config}
    if settings.endpoint_url:
        kwargs["endpoint_url"] = settings.endpoint_url
    return sess.client(service, **kwargs)
