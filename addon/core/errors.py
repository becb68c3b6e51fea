"""Purpose-named exceptions raised by the core.

Every message says what is wrong and what to do about it; the edges (operators, the
CLI, the worker) show ``str(exc)`` to the user as it is, never a traceback.
"""

from __future__ import annotations


class AwsBatchRenderError(Exception):
    """Base of every error the core raises on purpose."""

    #: process exit status the CLI uses for this kind of error
    exit_code: int = 1


class FrameRangeError(AwsBatchRenderError, ValueError):
    """A frame range, frame list or chunking request is malformed."""

    exit_code = 2


class JobSpecError(AwsBatchRenderError, ValueError):
    """A job spec is malformed, incomplete or of an unknown schema version."""

    exit_code = 2


class StorageURIError(AwsBatchRenderError, ValueError):
    """A storage URI is not an ``s3://bucket/key`` or ``file:///path`` URI."""

    exit_code = 2


class StorageError(AwsBatchRenderError):
    """Reading or writing the store failed."""

    exit_code = 3


class ObjectNotFoundError(StorageError):
    """The object named by a URI does not exist."""
