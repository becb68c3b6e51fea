"""``worker render`` for a still split by sample ranges: render one part, upload it.

The hook in :mod:`worker.render` hands over here when the spec has ``still_split``. The
array child's submission-wide slice number names the frame and the part
(:func:`addon.core.still_split.part_of`); the inner script renders that part's sample
range into a multilayer EXR (``worker/inner_still.py``: ``setup_part``). The part is
checked (a whole EXR with a Combined pass and its sample count) before it is uploaded, so
a part in the store is a usable part: a retry that finds it there renders nothing.

After its upload the part's Blender waits (``PartWaiting``): the part that finds every
other part of the frame in the store merges there (:func:`worker.merge.merge_after_part`),
without a second Blender start-up; the merge job then finds the frame done.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from addon.core.errors import StorageError
from addon.core.exitcodes import SUCCESS
from addon.core.jobspec import JobSpec
from addon.core.still_split import part_of, part_uri

from .blender_process import BlenderResult, PartWaiting
from .cpu import render_threads
from .exr_header import BadExr, check_part
from .failures import BlenderCrashed, SceneContentError, WorkerRetryableError
from .inputs import fetch_inputs
from .merge import merge_after_part

if TYPE_CHECKING:
    from .render import SliceRender

log = logging.getLogger(__name__)


def render_part(job: SliceRender, spec: JobSpec, scratch: Path) -> int:
    from .render import ProgressRecorder

    assert job.blender is not None and spec.still_split is not None
    number = spec.original_slice(job.env.array_index)
    frame, part = part_of(spec, number)
    uri = part_uri(spec, frame, part)
    store = job.stores(uri)
    parts = spec.still_split.parts
    job.progress = ProgressRecorder(spec, number, [frame], job.env.attempt, job.stores(spec.output.progress_uri))
    try:
        present = store.exists(uri)
    except StorageError as exc:
        raise WorkerRetryableError(f"Cannot check for part {part} of frame {frame}: {exc}") from None
    if present:
        log.info("Part %d/%d of frame %d is already in the store", part + 1, parts, frame)
        job.blender.send_job(None)
        job.progress.add_existing({frame})
        job.progress.write("SUCCEEDED", "the part was already rendered")
        return SUCCESS
    job.progress.write("RUNNING")
    job.check_interrupted()
    blend = fetch_inputs(spec, job.stores(spec.inputs.uri), scratch / "pack")
    job.check_interrupted()
    out_dir = scratch / "part"
    out_dir.mkdir()
    log.info("Rendering part %d/%d of frame %d", part + 1, parts, frame)
    job.blender.send_job(
        {
            "blend": str(blend),
            "scene": spec.render.scene,
            "engine": spec.render.engine,
            "device": spec.render.device,
            "threads": render_threads(spec.render.threads),
            "image_format": "OPEN_EXR",
            "out_dir": str(out_dir),
            "frames": [frame],
            "saved_by": spec.blender_version,
            "part": {"index": part, "parts": parts, "offer_merge": True},
        },
        close=False,  # Blender waits for a merge job after the part (PartWaiting)
    )
    written, waiting, result = None, False, None
    events = job.blender.events()
    for event in events:
        if isinstance(event, PartWaiting):
            waiting = True  # the part is written and checked; Blender is still there
            break
        if event.frame == frame:
            written = event
    if not waiting:
        job.blender.send_job(None)
        result = job.blender.wait()
        if result.content_error:
            raise SceneContentError(result.content_error)
    job.check_interrupted()
    if written is None:
        said = (result or BlenderResult(0, tail=list(job.blender.tail))).last_words
        raise BlenderCrashed(
            f"Blender ended without writing part {part} of frame {frame}; another attempt renders it. "
            f"Blender said: {said}"
        )
    try:
        head = check_part(Path(written.path).read_bytes())
    except (OSError, BadExr) as exc:
        raise BlenderCrashed(
            f"Part {part} of frame {frame} came out unusable ({exc}); another attempt renders it."
        ) from None
    try:
        store.put_file(written.path, uri)
    except StorageError as exc:
        raise WorkerRetryableError(f"Uploading part {part} of frame {frame} failed: {exc}") from None
    job.progress.frame_uploaded(frame, written.seconds)
    log.info(
        "Part %d/%d of frame %d: %d samples in %.2f s, uploaded", part + 1, parts, frame, head.samples, written.seconds
    )
    if waiting:  # the last part to finish merges in this Blender (worker/merge.py)
        merge_after_part(spec, frame, job.stores, scratch, blend, job.blender)
        result = job.blender.wait()
        job.check_interrupted()
    assert result is not None
    job.progress.write("SUCCEEDED", "; ".join(result.warnings))
    return SUCCESS
