"""Download a submission's results (video and/or frames) to a folder on this computer.

Works with any store (``s3://`` for AWS, ``file://`` for the local backend). A file
already in the folder with the same size as the stored object is skipped, so an
interrupted download resumes where it stopped. Files appear whole or not at all (the
store writes a temporary file and renames it). Downloads run in a small thread pool;
nothing here touches bpy.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .aws.session import AwsSettings
from .errors import AwsBatchRenderError, ObjectNotFoundError, local_write_error
from .jobspec import JobSpec, frame_from_name
from .storage import Store, open_store

log = logging.getLogger(__name__)


class NothingToDownloadError(AwsBatchRenderError):
    """Neither the video nor any frame of the submission exists yet."""

    exit_code = 34


@dataclass
class DownloadReport:
    dest: Path
    downloaded: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # already there with the same size
    bytes_downloaded: int = 0
    video: Path | None = None  # the local video file, when there is one
    frames_missing: list[int] = field(default_factory=list)  # not rendered (yet)
    video_missing: bool = False


#: called as (files done, files total) from download threads
DownloadProgress = Callable[[int, int], None]


def _same_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def download_submission(
    spec: JobSpec,
    dest: str | os.PathLike[str],
    *,
    frames: bool = True,
    video: bool = True,
    settings: AwsSettings | None = None,
    store: Store | None = None,
    concurrency: int = 8,
    progress: DownloadProgress | None = None,
) -> DownloadReport:
    """Fetch ``video`` (``dest/<name>.<container>``) and ``frames`` (``dest/frames/``).

    Raises :class:`NothingToDownloadError` when none of what was asked exists yet.
    """
    dest = Path(dest)
    store = store or open_store(spec.output.frames_uri, settings)
    report = DownloadReport(dest=dest)
    todo: list[tuple[str, Path, int]] = []

    if video and spec.output.video is not None:
        uri = spec.video_file_uri()
        target = dest / uri.rsplit("/", 1)[-1]
        try:
            size = store.size(uri)
        except ObjectNotFoundError:
            report.video_missing = True
        else:
            report.video = target
            todo.append((uri, target, size))
    elif video:
        report.video_missing = True

    if frames:
        wanted = set(spec.frames)
        seen: set[int] = set()
        for info in store.list(spec.output.frames_uri):
            frame = frame_from_name(info.uri)
            if frame is None or frame not in wanted:
                continue
            seen.add(frame)
            todo.append((info.uri, dest / "frames" / info.uri.rsplit("/", 1)[-1], info.size))
        report.frames_missing = sorted(wanted - seen)

    if not todo:
        asked = " and ".join(w for w, on in (("video", video), ("frames", frames)) if on) or "nothing"
        raise NothingToDownloadError(
            f"Nothing to download for {spec.submission_id}: no {asked} in the store yet. Check "
            "'aws-batch-render status' and try again when frames are done."
        )

    fetch = []
    for uri, target, size in todo:
        if _same_size(target, size):
            report.skipped.append(target)
        else:
            fetch.append((uri, target, size))
    total = len(todo)
    done = len(report.skipped)
    lock = threading.Lock()
    if progress:
        progress(done, total)

    def one(item: tuple[str, Path, int]) -> None:
        nonlocal done
        uri, target, size = item
        store.get_file(uri, target)
        with lock:
            report.downloaded.append(target)
            report.bytes_downloaded += size
            done += 1
            if progress:
                progress(done, total)

    if fetch:
        try:
            dest.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise local_write_error(exc, dest, "a --dest folder") from None
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            for future in [pool.submit(one, item) for item in fetch]:
                future.result()  # re-raise the first failure (a StorageError with its fix)
    report.downloaded.sort()
    log.info(
        "downloaded %d file(s), %d bytes; skipped %d",
        len(report.downloaded),
        report.bytes_downloaded,
        len(report.skipped),
    )
    return report
