"""Frame lists: parsing, chunking into slices, and AWS Batch array sizing.

Pure functions only. A *slice* is the list of frames one render task (one array child,
or the single plain job) renders; slices are contiguous runs of the sorted frame list.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from .errors import FrameRangeError

#: AWS Batch array jobs have between 2 and 10,000 children.
MIN_ARRAY_SIZE = 2
MAX_ARRAY_SIZE = 10_000

#: Blender's limits for a scene's frame range (MINFRAME/MAXFRAME): frame_start cannot go
#: below 0, even with "allow negative frames", so a negative frame cannot be rendered.
MIN_FRAME = 0
MAX_FRAME = 1_048_574

_ITEM = re.compile(r"^(-?\d+)(?:\s*-\s*(-?\d+)(?:\s*[xX:]\s*(\d+))?)?$")

FRAME_SYNTAX_HELP = (
    "use frame numbers and ranges separated by commas, e.g. '1-250', "
    "'1-10,20,30-40x2' (x2 = every 2nd frame)"
)


def frame_range(start: int, end: int, step: int = 1) -> list[int]:
    """Frames ``start..end`` inclusive, every ``step``-th, as Blender renders them."""
    _check_int("start frame", start)
    _check_int("end frame", end)
    if not isinstance(step, int) or isinstance(step, bool) or step < 1:
        raise FrameRangeError(f"Frame step must be a whole number of 1 or more, got {step!r}.")
    if end < start:
        raise FrameRangeError(
            f"The frame range {start}-{end} is empty: the end frame is before the start frame. "
            "Set the end frame to the start frame or later."
        )
    return list(range(start, end + 1, step))


def parse_frames(text: str, step: int = 1) -> list[int]:
    """Parse ``'1-10,20,30-40x2'`` into a sorted list of unique frames.

    ``step`` applies to ranges that carry no ``xN`` of their own. Frames named twice are
    rendered once.
    """
    if not isinstance(text, str) or not text.strip():
        raise FrameRangeError(f"No frames given: {FRAME_SYNTAX_HELP}.")
    frames: set[int] = set()
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            raise FrameRangeError(
                f"Empty item in frame list {text!r} (two commas in a row?): {FRAME_SYNTAX_HELP}."
            )
        match = _ITEM.match(item)
        if not match:
            raise FrameRangeError(f"Cannot read {item!r} in frame list {text!r}: {FRAME_SYNTAX_HELP}.")
        first = int(match.group(1))
        if match.group(2) is None:
            _check_int("frame", first)
            frames.add(first)
            continue
        last = int(match.group(2))
        item_step = int(match.group(3)) if match.group(3) is not None else step
        if item_step < 1:
            raise FrameRangeError(f"The step in {item!r} must be 1 or more.")
        if last < first:
            raise FrameRangeError(
                f"The range {item!r} runs backwards; write it as '{last}-{first}'."
            )
        frames.update(frame_range(first, last, item_step))
    return sorted(frames)


def chunk_frames(
    frames: Sequence[int],
    chunk_size: int | None = None,
    chunk_count: int | None = None,
    max_slices: int = MAX_ARRAY_SIZE,
) -> list[list[int]]:
    """Split sorted unique ``frames`` into contiguous, non-empty slices.

    Give either ``chunk_size`` (frames per slice) or ``chunk_count`` (a target number
    of slices, sizes differing by at most one). Either way there are never more than
    ``max_slices`` slices: chunks grow instead.
    """
    if (chunk_size is None) == (chunk_count is None):
        raise FrameRangeError("Give either a chunk size or a chunk count, not both or neither.")
    if not frames:
        raise FrameRangeError("There are no frames to render: the frame list is empty.")
    ordered = list(frames)
    if any(b <= a for a, b in pairwise(ordered)):
        raise FrameRangeError("Frames must be sorted and unique before chunking.")
    if not 1 <= max_slices <= MAX_ARRAY_SIZE:
        raise FrameRangeError(f"max_slices must be between 1 and {MAX_ARRAY_SIZE}.")
    n = len(ordered)
    if chunk_size is not None:
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise FrameRangeError(f"Chunk size must be 1 frame or more, got {chunk_size!r}.")
        count = math.ceil(n / chunk_size)
        if count > max_slices:
            chunk_size = math.ceil(n / max_slices)
        return [ordered[i : i + chunk_size] for i in range(0, n, chunk_size)]
    assert chunk_count is not None
    if not isinstance(chunk_count, int) or chunk_count < 1:
        raise FrameRangeError(f"Chunk count must be 1 or more, got {chunk_count!r}.")
    count = min(chunk_count, n, max_slices)
    base, extra = divmod(n, count)
    slices, pos = [], 0
    for i in range(count):
        size = base + (1 if i < extra else 0)
        slices.append(ordered[pos : pos + size])
        pos += size
    return slices


@dataclass(frozen=True)
class ArrayPlan:
    """How the slices map onto AWS Batch: ``array_size`` None means a plain job."""

    slice_count: int
    array_size: int | None

    @property
    def is_array(self) -> bool:
        return self.array_size is not None


def array_plan(slices: Sequence[Sequence[int]]) -> ArrayPlan:
    """One slice is a plain job (Batch arrays start at 2 children); more is an array."""
    n = len(slices)
    if n < 1:
        raise FrameRangeError("There are no slices to submit.")
    if n > MAX_ARRAY_SIZE:
        raise FrameRangeError(
            f"{n} slices is more than AWS Batch's limit of {MAX_ARRAY_SIZE} array children; "
            "use a larger chunk size."
        )
    return ArrayPlan(slice_count=n, array_size=None if n == 1 else n)


def frames_for_index(slices: Sequence[Sequence[int]], index: int | str | None) -> list[int]:
    """Frames of array child ``index`` (0-based; None/'' = a plain job, index 0)."""
    if index is None or index == "":
        index = 0
    try:
        i = int(index)
    except (TypeError, ValueError):
        raise FrameRangeError(f"Array index {index!r} is not a whole number.") from None
    if not 0 <= i < len(slices):
        raise FrameRangeError(
            f"Array index {i} is outside this job's {len(slices)} slice(s) (0..{len(slices) - 1})."
        )
    return list(slices[i])


def all_frames(slices: Iterable[Sequence[int]]) -> list[int]:
    """Every frame of every slice, in slice order."""
    return [f for s in slices for f in s]


def describe_frames(frames: Sequence[int]) -> str:
    """Compact text form of a sorted frame list, e.g. ``'1-10,20,30-40x2'``; parses back."""
    parts: list[str] = []
    i, n = 0, len(frames)
    while i < n:
        j = i
        if i + 1 < n:
            step = frames[i + 1] - frames[i]
            j = i + 1
            while j + 1 < n and frames[j + 1] - frames[j] == step:
                j += 1
            if j - i < 2 and step != 1:
                j = i  # two frames with a gap read better as a list
        if j == i:
            parts.append(str(frames[i]))
        else:
            step = frames[i + 1] - frames[i]
            parts.append(f"{frames[i]}-{frames[j]}" + (f"x{step}" if step != 1 else ""))
        i = j + 1
    return ",".join(parts)


def _check_int(what: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise FrameRangeError(f"The {what} must be a whole number, got {value!r}.")
    if not MIN_FRAME <= value <= MAX_FRAME:
        raise FrameRangeError(
            f"The {what} {value} is outside Blender's frame limits ({MIN_FRAME}..{MAX_FRAME})."
        )
