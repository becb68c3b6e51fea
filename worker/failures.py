"""The worker's purpose-named errors, each carrying the exit code Batch's retry rules read.

``CONTENT_ERROR`` (65) means retrying the same input cannot help: a bad spec, a corrupt
.blend, no camera, missing frames for stitch. ``RETRYABLE`` (75) means another attempt
may succeed and will resume: an interruption, storage or network trouble, a Blender crash.
"""

from __future__ import annotations

from addon.core.errors import AwsBatchRenderError
from addon.core.exitcodes import CONTENT_ERROR, RETRYABLE


class WorkerContentError(AwsBatchRenderError):
    """The job's content is wrong; retrying cannot fix it."""

    exit_code = CONTENT_ERROR


class WorkerRetryableError(AwsBatchRenderError):
    """A failure another attempt may not meet (and resumes after)."""

    exit_code = RETRYABLE


class InterruptedBySignal(WorkerRetryableError):
    """SIGTERM (Batch terminating the job, a local cancel) or SIGINT arrived; finished work was kept."""


class BlenderCrashed(WorkerRetryableError):
    """Blender exited abnormally (a signal, a crash, an unexpected exit status)."""


class SceneContentError(WorkerContentError):
    """The .blend cannot be rendered as asked: corrupt, no camera, no such scene."""


class FramesMissingError(WorkerContentError):
    """Stitch found frames the spec expects missing from the output store."""


class FramesInvalidError(WorkerContentError):
    """Stitch found frames in the store that are not valid images (``retry`` re-renders them)."""


class VideoSettingsError(WorkerContentError):
    """The spec's video settings cannot be encoded with this image's ffmpeg."""


class EncodeFailed(WorkerRetryableError):
    """ffmpeg failed on frames that were all present."""


def exit_code_for(exc: BaseException) -> int:
    """The exit code for any error: the worker only ever exits 0, 65 or 75."""
    if isinstance(exc, AwsBatchRenderError) and exc.exit_code in (CONTENT_ERROR, RETRYABLE):
        return exc.exit_code
    if isinstance(exc, AwsBatchRenderError):
        # the core's own errors: malformed input (2) is content; storage trouble (3) is worth a retry
        return CONTENT_ERROR if exc.exit_code == 2 else RETRYABLE
    return RETRYABLE
