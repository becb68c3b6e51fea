"""Splitting one still across machines by sample ranges (part of the job-spec contract).

A split spec renders each of a few frames in ``parts`` pieces: part i renders samples
``[i*k, (i+1)*k)`` of the scene's sample count ``S`` (``k = S // parts``; the last part
keeps the remainder) with Cycles' ``sample_offset``, into a multilayer EXR with the
denoising data passes. One merge job (in place of the stitch) combines the parts with
``cycles.merge_images``, denoises once when the scene asks for it and writes the final
image in the scene's format and colour management.

The spec keeps carrying explicit slices: slice ``j`` is ``[frame]`` for part ``j % parts``
of frame ``j // parts``, so the render array, retries and the local supervisor work
unchanged. The sample count itself is read from the scene by the worker (the add-on's
scene snapshot does not carry it); a part refuses ``parts`` larger than it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from typing import Any

from .errors import JobSpecError
from .storage import join_uri

JobSpec = Any  # jobspec imports this module: no import back (no cycles in addon/core)

#: the spec version that introduced ``still_split``; older workers refuse it by version
SPLIT_SCHEMA_VERSION = 2
MAX_PARTS = 256
MAX_FRAMES = 16  # "a frame, or each frame of a short list"
PART_SUFFIX = ".exr"
_PART_NAME = re.compile(r"^part_(\d{4})\.exr$")


@dataclass
class StillSplit:
    """``spec.still_split``: which frames are split, and in how many parts each."""

    parts: int
    frames: list[int]


class StillSplitError(JobSpecError):
    """``--split-samples`` asked for something a split cannot do (bad input, exit 2)."""


def check_request(parts: int, engine: str, frames: Sized, samples: int = 0, *, panel: bool = False) -> None:
    """Refuse a split the scene cannot have, before anything is uploaded. ``samples``: the
    scene's Cycles sample count (0: unknown, then the worker refuses a split past it).
    ``panel``: word the refusal for the add-on's "Split Still" option, not the CLI flag."""
    flag = "Split Still" if panel else "--split-samples"
    asked = f"Split across {parts} machines" if panel else f"--split-samples {parts}"
    without = "untick Split Still" if panel else "submit without --split-samples"
    if parts < 1:
        raise StillSplitError(f"{asked}: give 1 (no split) or more parts.")
    if parts == 1:
        return
    if engine != "CYCLES":
        name = {"BLENDER_WORKBENCH": "Workbench"}.get(engine, "EEVEE" if "EEVEE" in engine else engine)
        raise StillSplitError(
            f"{flag} needs Cycles (it splits the sample range); this scene renders with {name}. "
            f"Switch the render engine to Cycles, or {without}."
        )
    if parts > MAX_PARTS:
        raise StillSplitError(f"{asked} is more than {MAX_PARTS} parts: use fewer.")
    if samples and parts > samples:
        raise StillSplitError(
            f"{asked} is more parts than the scene's {samples} samples: use at most {samples} "
            f"{'machines' if panel else 'parts'}, or raise Render Properties > Sampling > Render > Max Samples."
        )
    if len(frames) > MAX_FRAMES:
        pick = (
            f"Pick at most {MAX_FRAMES} frames in the Frame List" if panel
            else "Pick the frames with --frames (e.g. --frames 12)"
        )
        raise StillSplitError(
            f"{flag} splits stills: {len(frames)} frames is more than {MAX_FRAMES}. {pick}, or "
            f"{'untick Split Still to render' if panel else 'submit'} the animation without "
            f"{'it' if panel else '--split-samples'}."
        )


def part_range(samples: int, parts: int, index: int) -> tuple[int, int]:
    """``(sample_offset, samples)`` of part ``index``; the last part keeps the remainder."""
    if parts < 1 or not 0 <= index < parts:
        raise ValueError(f"part {index} of {parts}")
    if samples < parts:
        raise ValueError(f"{samples} samples cannot be split in {parts} parts")
    k = samples // parts
    count = samples - k * (parts - 1) if index == parts - 1 else k
    return index * k, count


def split_slices(frames: list[int], parts: int) -> list[list[int]]:
    """The spec's slices for a split: ``parts`` one-frame slices per frame, in order."""
    return [[f] for f in frames for _ in range(parts)]


def part_of(spec: JobSpec, slice_number: int) -> tuple[int, int]:
    """``(frame, part)`` of the submission-wide slice number (see ``JobSpec.original_slice``)."""
    assert spec.still_split is not None
    parts = spec.still_split.parts
    frames = spec.still_split.frames
    if not 0 <= slice_number < parts * len(frames):
        raise JobSpecError(f"Slice {slice_number} is not a part of this split ({len(frames)} frame(s) x {parts}).")
    return frames[slice_number // parts], slice_number % parts


def parts_prefix(spec: JobSpec, frame: int) -> str:
    return join_uri(spec.output.frames_uri, f"parts/frame_{frame:06d}/")


def part_uri(spec: JobSpec, frame: int, part: int) -> str:
    return join_uri(parts_prefix(spec, frame), f"part_{part:04d}{PART_SUFFIX}")


def slices_without_part(spec: JobSpec, slices: Iterable[int], exists: Callable[[str], bool]) -> set[int]:
    """Slices (of a split spec) whose part EXR is not in the store: a retry renders them again.
    A part is checked before it is uploaded, and the merge checks every part again."""
    return {i for i in slices if not exists(part_uri(spec, *part_of(spec, i)))}


def part_from_name(name: str) -> int | None:
    m = _PART_NAME.match(name.rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


def merged_uri(spec: JobSpec, frame: int) -> str:
    """The merged (and, when asked, denoised) multilayer EXR, uploaded beside the final image."""
    # not named frame_NNNNNN.ext: listings that count finished frames must not count it
    return join_uri(spec.output.frames_uri, f"merged/frame_{frame:06d}.merged.exr")


#: channels of a part EXR, rounded up: Combined RGBA, the denoising data (normal, albedo,
#: depth) and Vector, 32-bit floats (see worker/inner_still.py's setup_part)
PART_CHANNELS = 16
#: Blender, the scene and the final image's write, before any part is read
MERGE_BASE_MIB = 1536
#: the stack's stitch job memory (infra/stack.yaml StitchMemoryMiB): never ask for less
MERGE_MIN_MIB = 3500


def merge_memory_mib(spec: JobSpec) -> int:
    """Memory for the merge job: N multilayer EXRs of the frame's resolution beside Blender.
    A pairwise merge holds two parts and their sum, the denoiser a few more full-size
    buffers; sizing for all N parts (at least 4) covers both, whichever order Cycles reads
    them in. Frames are merged one after another, so the frame count does not add up."""
    assert spec.still_split is not None
    pixels = max(1, spec.render.width) * max(1, spec.render.height)
    exrs = max(spec.still_split.parts, 4) * pixels * PART_CHANNELS * 4
    mib = MERGE_BASE_MIB + -(-exrs // (1 << 20))
    return max(MERGE_MIN_MIB, -(-mib // 256) * 256)  # whole 256 MiB steps


def merge_need_mib(spec: JobSpec) -> int:
    """What the merge itself needs (:func:`merge_memory_mib` without the stack's floor): a
    part's job merges in its own Blender only where its container has this much."""
    assert spec.still_split is not None
    pixels = max(1, spec.render.width) * max(1, spec.render.height)
    return MERGE_BASE_MIB + -(-(max(spec.still_split.parts, 4) * pixels * PART_CHANNELS * 4) // (1 << 20))


def parts_done_text(frames: int, parts_total: int, parts_done: int) -> str:
    """``'1 frame, 3 of 8 parts'``."""
    return f"{frames} frame{'s' if frames != 1 else ''}, {parts_done} of {parts_total} parts"


def validate(spec: JobSpec) -> None:
    """Raise :class:`JobSpecError` for a split spec a worker could trip over."""
    split = spec.still_split
    if split is None:
        return
    if spec.schema_version < SPLIT_SCHEMA_VERSION:
        raise JobSpecError(
            f"spec.still_split needs schema_version {SPLIT_SCHEMA_VERSION} or later (the spec says "
            f"{spec.schema_version}); resubmit with a current add-on."
        )
    if not 2 <= split.parts <= MAX_PARTS:
        raise JobSpecError(f"spec.still_split.parts {split.parts} must be 2..{MAX_PARTS} (1 means no split).")
    if spec.render.engine != "CYCLES":
        raise JobSpecError(
            f"spec.still_split needs Cycles (sample ranges); the scene renders with {spec.render.engine}."
        )
    frames = split.frames
    if not frames or len(frames) != len(set(frames)):
        raise JobSpecError("spec.still_split.frames must list one or more frames, each once.")
    if len(frames) > MAX_FRAMES:
        raise JobSpecError(
            f"spec.still_split splits {len(frames)} frames; at most {MAX_FRAMES} (split stills, not animations)."
        )
    layout = split_slices(frames, split.parts)
    numbers = [spec.original_slice(i) for i in range(len(spec.slices))]  # a retry spec holds some
    whole = bool(spec.extra.get("retry_of_slices")) or len(spec.slices) == len(layout)
    if not whole or any(n >= len(layout) or spec.slices[i] != layout[n] for i, n in enumerate(numbers)):
        raise JobSpecError(
            f"spec.slices must hold {split.parts} one-frame slices per frame of spec.still_split.frames, in that order."
        )
    if spec.output.video is not None:
        raise JobSpecError("spec.output.video must be empty for a split still: the merge job makes images.")
