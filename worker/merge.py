"""``python -m worker merge``: a split still's parts become one image (in place of stitch).

Runs once after every part succeeded (the same dependency on the render array as the
stitch). Per frame of ``spec.still_split.frames``: frames whose final image and merged EXR
are both in the store are skipped (re-running is safe, and a retry resumes); for the rest
every part must be present and a whole EXR with its sample count, else exit 65 naming the
parts. A Blender child (``worker/inner_still.py``) opens the scene, merges the parts
pairwise with ``cycles.merge_images``, denoises once when the scene asks for denoising,
and writes the final image in the scene's colour management and the spec's format. The
merged EXR is uploaded first and the final image last, so a final image in the store
beside a whole merged EXR means the frame is done. Uploads are atomic.

Usually the merge is already done when this job starts: the part that finds every other
part in the store when its own is uploaded merges in its own Blender
(:func:`merge_after_part`, the same checks and the same inner ``run_merge``), which saves
a Blender start-up on the critical path. This job then only checks the result (a merged
EXR that is not whole is merged again).
"""

from __future__ import annotations

import logging
import mmap
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

from addon.core.errors import AwsBatchRenderError, StorageError
from addon.core.exitcodes import SUCCESS
from addon.core.frames import describe_frames
from addon.core.jobspec import JobSpec
from addon.core.still_split import merge_need_mib, merged_uri, part_uri
from addon.core.storage import parse_uri

from .blender_process import INNER_SCRIPT, BlenderProcess, FrameWritten, blender_argv_from_env
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


def frame_merged(spec: JobSpec, frame: int, stores: StoreCache, scratch: Path) -> bool:
    """The final image is in the store beside a whole merged EXR (uploaded before it)."""
    final, merged = spec.frame_uri(frame), merged_uri(spec, frame)
    local = scratch / f"check_{frame:06d}.merged.exr"
    try:
        if not (stores(final).exists(final) and stores(merged).exists(merged)):
            return False
        if parse_uri(merged).scheme == "file":
            local = Path(parse_uri(merged).path)
        else:
            stores(merged).get_file(merged, local)
    except StorageError as exc:
        raise WorkerRetryableError(f"Cannot check the merged frame {frame}: {exc}") from None
    try:
        with open(local, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            check_part(data)  # type: ignore[arg-type]  # slices and unpack_from: no copy of a large EXR
    except (OSError, ValueError, BadExr) as exc:  # ValueError: mmap of an empty file
        log.warning("The merged EXR of frame %d (%s) is unusable (%s): merging it again.", frame, merged, exc)
        return False
    finally:
        if local.name.startswith("check_"):
            local.unlink(missing_ok=True)
    return True


def frames_to_merge(spec: JobSpec, stores: StoreCache, scratch: Path) -> list[int]:
    """Frames not merged yet (:func:`frame_merged`)."""
    assert spec.still_split is not None
    return [frame for frame in spec.still_split.frames if not frame_merged(spec, frame, stores, scratch)]


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
    todo = frames_to_merge(spec, stores, scratch)
    if not todo:
        log.info("Every frame is already merged: nothing to do.")
        return []
    items = [merge_item(spec, frame, stores, scratch) for frame in todo]
    argv = [str(INNER_STILL) if a == str(INNER_SCRIPT) else a for a in blender_argv_from_env()]
    blender = BlenderProcess(argv)
    try:
        blend = fetch_inputs(spec, stores(spec.inputs.uri), scratch / "pack")
        blender.send_job(
            {"blend": str(blend), "scene": spec.render.scene, "image_format": spec.output.image_format, "frames": items}
        )
        done = []
        for event in blender.events():
            upload_merged(spec, stores, event)
            done.append(event.frame)
        result = blender.wait()
    finally:
        blender.kill()
    if result.content_error:
        raise SceneContentError(result.content_error)
    left = sorted(set(todo) - set(done))
    if left:
        raise WorkerRetryableError(
            f"Blender ended without merging frame(s) {describe_frames(left)}; run the merge again. "
            f"Blender said: {result.last_words}"
        )
    return done


def merge_item(spec: JobSpec, frame: int, stores: StoreCache, scratch: Path) -> dict[str, Any]:
    """The inner merge's job for ``frame``: its parts fetched and checked (see :func:`fetch_parts`)."""
    work = scratch / f"frame_{frame:06d}"
    work.mkdir(parents=True)
    return {
        "frame": frame, "parts": fetch_parts(spec, frame, stores, work), "work": str(work),
        "merged": str(work / "merged.exr"), "final": str(work / spec.frame_name(frame)),
    }  # fmt: skip


def upload_merged(spec: JobSpec, stores: StoreCache, event: FrameWritten) -> None:
    """The merged EXR first, the final image last (its presence means the frame is done)."""
    assert spec.still_split is not None
    frame = event.frame
    try:
        stores(spec.output.frames_uri).put_file(str(Path(event.path).with_name("merged.exr")), merged_uri(spec, frame))
        stores(spec.output.frames_uri).put_file(event.path, spec.frame_uri(frame))
    except StorageError as exc:
        raise WorkerRetryableError(f"Uploading the merged frame {frame} failed: {exc}") from None
    log.info(
        "Frame %d merged from %d parts in %.2f s: %s",
        frame, spec.still_split.parts, event.seconds, spec.frame_uri(frame),
    )  # fmt: skip


def memory_mib() -> int:
    """This container's memory limit (cgroup v2 or v1), else the machine's memory."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text) >> 20
    return (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) >> 20


def merge_after_part(
    spec: JobSpec, frame: int, stores: StoreCache, scratch: Path, blend: Path, blender: BlenderProcess
) -> bool:
    """After a part is uploaded, with its Blender waiting (``PartWaiting``): when every part of
    ``frame`` is now in the store and the frame is not merged yet, that Blender merges it, with
    the merge job's checks (every part present and whole) and its inner ``run_merge``; otherwise
    it is told to exit. Best effort: anything in the way (a part missing or corrupt, too little
    memory, a failed merge) leaves the merge to the merge job, which reports it. True: merged."""
    assert spec.still_split is not None
    parts = [part_uri(spec, frame, p) for p in range(spec.still_split.parts)]
    try:
        missing = [p for p, u in enumerate(parts) if not stores(u).exists(u)]
        if missing or frame_merged(spec, frame, stores, scratch):
            blender.send_job(None)
            return False
        need, have = merge_need_mib(spec), memory_mib()
        if need > have:
            log.info("Not merging in this part: the merge needs ~%d MiB, this container has %d MiB.", need, have)
            blender.send_job(None)
            return False
        item = merge_item(spec, frame, stores, scratch / "merge")
    except (StorageError, AwsBatchRenderError, OSError) as exc:
        log.info("Not merging frame %d in this part (%s): the merge job merges it.", frame, exc)
        blender.send_job(None)
        return False
    log.info("Every part of frame %d is in the store: merging it in this part's Blender", frame)
    blender.send_job(
        {"blend": str(blend), "scene": spec.render.scene, "image_format": spec.output.image_format, "frames": [item]}
    )
    merged = False
    for event in blender.events():
        if isinstance(event, FrameWritten) and event.frame == frame and not merged:
            try:
                upload_merged(spec, stores, event)
                merged = True
            except WorkerRetryableError as exc:
                log.info("%s: the merge job merges it.", exc)
    if not merged:
        log.info("Blender merged nothing here: the merge job merges frame %d.", frame)
    return merged


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
