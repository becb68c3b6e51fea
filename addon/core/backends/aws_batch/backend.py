"""The AWS Batch backend: submit the render array and the stitch job, follow, cancel,
retry the failed slices, read a slice's log.

Its parts live beside it, one job each: :mod:`.job_requests` (the SubmitJob requests,
pure), :mod:`.jobs` (settings, clients, reading a record back into Batch jobs),
:mod:`.submitting`, :mod:`.following` (status: what one refresh costs is described
there) and :mod:`.control` (cancel, retry, logs).

A backend instance is used from one thread at a time (the add-on's poll thread or the
CLI); it never touches bpy. boto3 is imported lazily through :mod:`...aws.session`.
"""

from __future__ import annotations

from .control import Controller
from .following import Follower


class AwsBatchBackend(Controller, Follower):
    """Submit, follow and control submissions on AWS Batch (see the module docstring)."""
