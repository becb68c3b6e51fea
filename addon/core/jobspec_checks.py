"""Checks of a job spec beyond its shape, kept apart from :mod:`.jobspec` so the contract
module stays small: frame numbers within Blender's limits, and a manifest whose paths can
all be laid out as files (no path that is both a file and a folder).

Each raises :class:`JobSpecError` naming the field and what to change; a worker that
meets such a spec exits with the content-error code instead of retrying for nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .errors import JobSpecError
from .frames import MAX_FRAME, MIN_FRAME


def check_frame_numbers(slices: Sequence[Sequence[int]]) -> None:
    """Every frame is one Blender can render (``MIN_FRAME..MAX_FRAME``)."""
    for i, frames in enumerate(slices):
        for frame in frames:
            if not MIN_FRAME <= frame <= MAX_FRAME:
                shown = str(frame) if len(str(frame)) <= 20 else f"{str(frame)[:12]}… ({len(str(frame))} digits)"
                raise JobSpecError(
                    f"spec.slices[{i}] has frame {shown}, outside Blender's frame range "
                    f"{MIN_FRAME}..{MAX_FRAME}: choose frames in that range."
                )


def check_manifest_paths(files: Mapping[str, str] | Iterable[str]) -> None:
    """No packed path is also the folder of another (``tex`` and ``tex/a.png``): both
    cannot exist on disk, so the worker could not lay the inputs out."""
    paths = set(files)
    for path in sorted(paths):
        parts = path.split("/")
        for n in range(1, len(parts)):
            folder = "/".join(parts[:n])
            if folder in paths:
                raise JobSpecError(
                    f"spec.inputs.files has both {folder!r} and {path!r}: a path cannot be a file "
                    "and a folder at once; rename one of them and submit again."
                )
