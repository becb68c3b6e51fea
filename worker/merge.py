"""``python -m worker merge``: a split still's parts become one image (in place of stitch).

Runs once after every part succeeded (the same dependency on the render array as the
stitch). Per frame of ``spec.still_split.frames``: frames whose final image and merged EXR
are both in the store are skipped (re-running is safe, and a retry resumes); for the rest
every part must be present and a whole EXR with its sample count, else exit 65 naming the
parts. A Blender child (``worker/inner_still.py``) opens the scene, merges the parts
pairwise with ``cycles.merge_images``, denoises once when the scene asks for denoising,
and writes the final image in the scene's colour management and the spec's format. The
merged EXR is uploaded first and the final image last, so a final image in the store
means the frame is done. Uploads are atomic.
"""

from __future__ import annotations

import logging
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

from addon.core.errors import StorageError
from addon.core.exitcodes import SUCCESS
from addon.core.frames import describe_frames
from addon.core.jobspec import JobSpec
from addon.core.still_split import merged_uri, part_uri
from addon.core.storage import parse_uri

from .blender_process import INNER_SCRIPT, BlenderProcess, blender_argv_from_env
from .exr_header import BadExr, check_part
from .failures import (
    FramesMissingError,
    InterruptedBySignal,
    SceneContentError,
    WorkerContentError,
    WorkerRetryableError,
)
from .inputs import fetch_inputs
from .job import StoreCache, WorkerEnv, load_spec

log = logging.getLogger(__name__)

INNER_STILL = INNER_SCRIPT.with_name("inner_still.py")


def frames_to_merge(spec: JobSpec, stores: StoreCache) -> list[int]:
    """Frames without both the final image and the merged EXR in the store."""
    assert spec.still_split is not None
    todo = []
    for frame in spec.still_split.frames:
        try:
            done = all(stores(u).exists(u) for u in (spec.frame_uri(frame), merged_uri(spec, frame)))
        except StorageError as exc:
            raise WorkerRetryableError(f"Cannot check the merged frames: {exc}") from None
        if not done:
            todo.append(frame)
    return todo


def fetch_parts(spec: JobSpec, frame: int, stores: StoreCache, dest: Path) -> list[str]:
    """Local paths of every part of ``frame``, each checked; refuses missing or corrupt parts."""
    assert spec.still_split is not None
    uris = [part_uri(spec, frame, p) for p in range(spec.still_split.parts)]
    try:
        missing = [p for p, u in enumerate(uris) if not stores(u).exists(u)]
    except StorageError as exc:
        raise WorkerRetryableError(f"Cannot list the parts of frame {frame}: {exc}") from None
    if missing:
        raise FramesMissingError(
            f"{len(missing)} of {len(uris)} part(s) of frame {frame} are missing (parts "
            f"{describe_frames(missing)}): retry the failed parts, then merge again."
        )
    paths = []
    for p, uri in enumerate(uris):
        if parse_uri(uri).scheme == "file":
            path = str(parse_uri(uri).path)
        else:
            path = str(dest / f"part_{p:04d}.exr")
            try:
                stores(uri).get_file(uri, path)
            except StorageError as exc:
                raise WorkerRetryableError(f"Cannot download part {p} of frame {frame}: {exc}") from None
        try:
            check_part(Path(path).read_bytes())
        except (OSError, BadExr) as exc:
            raise FramesMissingError(
                f"Part {p} of frame {frame} ({uri}) is unusable: {exc}. Resubmit the still (a retry keeps "
                "the parts already in the store)."
            ) from None
        paths.append(path)
    return paths


def merge(spec: JobSpec, scratch: Path, stores: StoreCache) -> list[int]:
    """Merge every frame not done yet; returns the frames merged by this run."""
    todo = frames_to_merge(spec, stores)
    if not todo:
        log.info("Every frame is already merged: nothing to do.")
        return []
    items = []
    for frame in todo:
        work = scratch / f"frame_{frame:06d}"
        work.mkdir(parents=True)
        items.append({
            "frame": frame, "parts": fetch_parts(spec, frame, stores, work), "work": str(work),
            "merged": str(work / "merged.exr"), "final": str(work / spec.frame_name(frame)),
        })  # fmt: skip
    argv = [str(INNER_STILL) if a == str(INNER_SCRIPT) else a for a in blender_argv_from_env()]
    blender = BlenderProcess(argv)
    try:
        blend = fetch_inputs(spec, stores(spec.inputs.uri), scratch / "pack")
        blender.send_job(
            {"blend": str(blend), "scene": spec.render.scene, "image_format": spec.output.image_format, "frames": items}
        )
        done = []
        for event in blender.events():
            frame = event.frame
            try:
                stores(spec.output.frames_uri).put_file(
                    str(Path(event.path).with_name("merged.exr")), merged_uri(spec, frame)
                )
                stores(spec.output.frames_uri).put_file(event.path, spec.frame_uri(frame))
            except StorageError as exc:
                raise WorkerRetryableError(f"Uploading the merged frame {frame} failed: {exc}") from None
            done.append(frame)
            log.info(
                "Frame %d merged from %d parts in %.2f s: %s",
                frame,
                len(items[0]["parts"]),
                event.seconds,
                spec.frame_uri(frame),
            )
        result = blender.wait()
    finally:
        blender.kill()
    if result.content_error:
        raise SceneContentError(result.content_error)
    left = sorted(set(todo) - set(done))
    if left:
        raise WorkerRetryableError(
            f"Blender ended without merging frame(s) {describe_frames(left)}; run the merge again. Last "
            f"line: {result.tail[-1] if result.tail else '(no output)'}"
        )
    return done


def _on_signal(signum: int, _frame: Any) -> None:
    raise InterruptedBySignal(f"Merge interrupted by {signal.Signals(signum).name}; run it again.")


def run_merge(env: WorkerEnv | None = None) -> int:
    """Entry point of ``worker merge``: returns the exit code (see worker/README.md)."""
    env = env or WorkerEnv.from_env()
    log.info("worker merge: spec %s, attempt %d", env.spec_uri, env.attempt)
    spec, spec_store = load_spec(env.spec_uri)
    if spec.still_split is None:
        raise WorkerContentError("This spec splits no still: 'worker merge' has nothing to do (use 'worker stitch').")
    stores = StoreCache()
    stores.seed(env.spec_uri, spec_store)
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    scratch = Path(tempfile.mkdtemp(prefix="abr-merge-", dir=env.scratch or None))
    try:
        merge(spec, scratch, stores)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        shutil.rmtree(scratch, ignore_errors=True)
    return SUCCESS
