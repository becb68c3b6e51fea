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


class LocalWriteError(StorageError, OSError):
    """Writing a file on this computer failed; still an OSError with its errno (ENOSPC...)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def local_write_error(exc: OSError, dest: object, where: str = "a folder") -> LocalWriteError:
    """A failed write of ``dest`` on this computer, as one line that says what to change."""
    import errno

    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        fix = f"a file is in the way where a folder must be: choose {where} that is a folder"
    elif exc.errno == errno.ENOSPC:
        fix = f"the disk is full: free some space or choose {where} on another disk"
    else:
        fix = f"choose {where} you can write to"
    other = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(dest) else ""
    err = LocalWriteError(f"Cannot write {dest}: {exc.strerror or exc}{other}; {fix}.")
    err.errno, err.filename = exc.errno, exc.filename
    return err
