"""The worker's scratch disk: telling "the disk is full" apart from other failures, and
saying how much space was free and how much the slice needs (retryable: another
attempt may land on a machine, or a volume, with room)."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from addon.core.storage import Store

from .failures import WorkerRetryableError

#: bytes per pixel, at most, of a frame file while it waits for its upload (RGBA; EXR float)
BYTES_PER_PIXEL = {"PNG": 4, "JPEG": 3, "OPEN_EXR": 16}


class ScratchFullError(WorkerRetryableError):
    """The scratch disk ran out of space (ENOSPC): retryable, never a corrupt frame."""


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an error it was raised from or during) is ENOSPC / EDQUOT."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def human(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} bytes"  # unreachable


def inputs_bytes(store: Store, uris: list[str]) -> int:
    """Total size of the packed inputs (only asked once a disk turned out full)."""
    total = 0
    for uri in uris:
        try:
            total += store.size(uri)
        except Exception:  # the answer is an estimate for a message; never fail on it
            continue
    return total


def frames_bytes(image_format: str, width: int, height: int, frames_at_once: int) -> int:
    return BYTES_PER_PIXEL.get(image_format, 4) * max(width, 1) * max(height, 1) * frames_at_once


def scratch_full(scratch: Path, needed: int | None, stage: str) -> ScratchFullError:
    """The one-line message for a full scratch disk, at any stage of a slice."""
    need = f"needs about {human(needed)}" if needed else "needs more (its job spec was not read yet)"
    return ScratchFullError(
        f"The scratch disk is full ({stage}): {human(free_bytes(scratch))} free in {scratch}, and this slice "
        f"{need}; give the worker more scratch space (a bigger volume, or WORKER_SCRATCH "
        "on a larger disk); another attempt resumes from the frames already uploaded."
    )
