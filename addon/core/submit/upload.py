"""Content-addressed upload of a pack: each file's key is the sha256 of its bytes.

What the store already holds is skipped, so a resubmit of an unchanged project uploads
no asset bytes. The rest goes up concurrently through the store (``S3Store.put_file``
uses boto3's transfer manager: multipart, concurrent parts; ``FileStore.put_file`` is a
temp file plus rename), so an object is either whole or absent: a cancelled or failed
upload leaves no partial object under a content key.

Threading: ``upload_inputs`` runs in the caller's thread and starts its own worker
threads; the progress callback is called from those threads, one call at a time,
with plain :class:`UploadProgress` values. Nothing here touches bpy.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ObjectNotFoundError
from ..storage import S3Store, Store, join_uri
from .options import SubmissionCancelled

log = logging.getLogger(__name__)

#: keys per page of an S3 listing
LIST_PAGE = 1000
#: least seconds between two byte-progress reports (file completions always report)
PROGRESS_INTERVAL = 0.1


@dataclass(frozen=True)
class UploadProgress:
    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int


def missing_keys(
    store: Store, inputs_uri: str, sizes: dict[str, int], concurrency: int = 10, written_after: float = 0.0
) -> list[str]:
    """The digests in ``sizes`` (sha256 -> size) the store lacks, holds with another size,
    or last wrote before ``written_after`` (unix time): the bucket's lifecycle expires inputs
    by age, so an old copy could vanish in the middle of a render; uploading it again
    restarts its clock.

    On S3, one listing of the prefix answers for every file at 1 request per 1,000 keys,
    but its pages come one after another; HEAD requests cost 1 per file but run
    ``concurrency`` at a time. So list while the listing stays shorter than the HEADs
    would take (pages <= files / concurrency, at least one page), else HEAD each key.
    """
    if isinstance(store, S3Store):
        budget = LIST_PAGE * max(1, len(sizes) // max(1, concurrency))
        held: dict[str, tuple[int, float]] = {}
        for info in store.list(inputs_uri):
            held[info.uri[len(inputs_uri) :]] = (info.size, info.modified)
            if len(held) > budget:
                break  # a large shared prefix: asking for each key is quicker
        else:
            return [
                sha for sha, size in sizes.items()
                if held.get(sha, (-1, 0.0))[0] != size or held[sha][1] < written_after
            ]  # fmt: skip

    def absent(sha: str) -> bool:
        try:
            info = store.info(join_uri(inputs_uri, sha))
        except ObjectNotFoundError:
            return True
        return info.size != sizes[sha] or info.modified < written_after

    if not isinstance(store, S3Store):
        return [sha for sha in sizes if absent(sha)]
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="abr-head") as pool:
        flags = list(pool.map(absent, sizes))
    return [sha for sha, missing in zip(sizes, flags) if missing]


def upload_inputs(
    pack_dir: str | os.PathLike[str],
    manifest: dict[str, str],
    inputs_uri: str,
    store: Store,
    progress: Callable[[UploadProgress], None] | None = None,
    cancel: threading.Event | None = None,
    concurrency: int = 10,
    refresh_after_days: float | None = None,
) -> tuple[int, int]:
    """Upload the files of ``manifest`` (relpath -> sha256, read from ``pack_dir``) that
    ``inputs_uri`` lacks, to ``inputs_uri + sha256``. Returns (bytes_uploaded, files_uploaded).
    Copies written more than ``refresh_after_days`` ago are uploaded again (see
    :func:`missing_keys`); None keeps any copy.

    Raises ``SubmissionCancelled`` when ``cancel`` is set (uploads in flight are
    abandoned, no partial object remains) and ``StorageError`` when a transfer fails.
    """

    if not inputs_uri.endswith("/"):
        inputs_uri += "/"
    cancel = cancel or threading.Event()
    pack = Path(pack_dir)
    sources: dict[str, Path] = {}
    for rel, sha in sorted(manifest.items()):
        sources.setdefault(sha, pack / rel)  # the same bytes twice go up once
    sizes = {sha: path.stat().st_size for sha, path in sources.items()}
    if cancel.is_set():
        raise SubmissionCancelled("Submission cancelled before the upload; nothing was uploaded.")

    written_after = time.time() - refresh_after_days * 86400 if refresh_after_days is not None else 0.0
    todo = missing_keys(store, inputs_uri, sizes, concurrency, written_after)
    todo.sort(key=lambda sha: -sizes[sha])  # large files first: the pool ends together
    tracker = _Tracker(progress, sum(sizes[s] for s in todo), len(todo))
    log.info(
        "upload: %d of %d unique files missing from %s (%d bytes)",
        len(todo), len(sizes), inputs_uri, tracker.bytes_total,
    )  # fmt: skip
    tracker.report(force=True)
    if todo:
        if isinstance(store, S3Store):
            _upload_s3(store, todo, sources, inputs_uri, tracker, cancel, concurrency)
        else:
            _upload_store(store, todo, sources, inputs_uri, tracker, cancel, concurrency)
        if cancel.is_set():
            raise SubmissionCancelled(
                f"Upload cancelled after {tracker.files_done} of {len(todo)} files; the files that "
                "went up are kept and will not be uploaded again."
            )
    tracker.report(force=True)
    return tracker.bytes_done, tracker.files_done


def _upload_s3(
    store: S3Store,
    todo: list[str],
    sources: dict[str, Path],
    inputs_uri: str,
    tracker: _Tracker,
    cancel: threading.Event,
    concurrency: int,
) -> None:
    """Every file through ONE transfer manager: small files share its pool with the parts
    of large ones, and cancelling its futures aborts multipart uploads at once (raising
    from a progress callback would only be retried by botocore, with back-off)."""
    from boto3.s3.transfer import create_transfer_manager
    from s3transfer.subscribers import BaseSubscriber

    from ..storage import parse_uri, translate_s3_error

    futures: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def cancel_pending() -> None:
        with lock:
            pending = [f for _, f in futures if not f.done()]
        for f in pending:
            f.cancel()  # in-flight multipart uploads are aborted by s3transfer

    class Subscriber(BaseSubscriber):
        # called from transfer threads: react to Cancel at once, not at the next poll
        def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
            tracker.add_bytes(bytes_transferred)
            if cancel.is_set():
                cancel_pending()

        def on_done(self, future: Any, **kwargs: Any) -> None:
            if _exception(future) is None:
                tracker.file_done()
            if cancel.is_set():
                cancel_pending()

    config = store.transfer_config()
    config.max_concurrency = max(1, concurrency)
    manager = create_transfer_manager(store.client, config)
    try:
        for sha in todo:
            if cancel.is_set():
                break
            loc = parse_uri(join_uri(inputs_uri, sha))
            future = manager.upload(str(sources[sha]), loc.bucket, loc.key, subscribers=[Subscriber()])
            with lock:
                futures.append((sha, future))
        failed = False
        while True:
            pending = [f for _, f in futures if not f.done()]
            failed = failed or any(f.done() and _exception(f) is not None for _, f in futures)
            if (cancel.is_set() or failed) and pending:
                cancel_pending()  # fail fast: the first error stops the rest
            if not pending:
                break
            time.sleep(0.05)
    finally:
        manager.shutdown(cancel=cancel.is_set())
    if cancel.is_set():
        return
    errors = [(sha, _exception(f)) for sha, f in futures]
    errors = [(sha, exc) for sha, exc in errors if exc is not None]
    # the first real failure, not the uploads cancelled because of it
    errors.sort(key=lambda item: type(item[1]).__name__ == "CancelledError")
    if errors:
        sha, exc = errors[0]
        raise translate_s3_error(exc, "upload", join_uri(inputs_uri, sha), "s3:PutObject") from None


def _exception(future: Any) -> BaseException | None:
    try:
        future.result()
    except BaseException as exc:  # CancelledError included
        return exc
    return None


def _upload_store(
    store: Store,
    todo: list[str],
    sources: dict[str, Path],
    inputs_uri: str,
    tracker: _Tracker,
    cancel: threading.Event,
    concurrency: int,
) -> None:
    """Any other store: ``put_file`` per file from a pool of threads; a file:// copy goes in
    parts and stops at the next part once ``cancel`` is set (``TransferCancelled``)."""
    stop = threading.Event()  # set on cancel or on the first failure

    def transfer_callback(amount: int) -> None:
        tracker.add_bytes(amount)

    def upload_one(sha: str) -> None:
        if stop.is_set() or cancel.is_set():
            return
        store.put_file(sources[sha], join_uri(inputs_uri, sha), progress=transfer_callback, cancel=cancel)
        tracker.file_done()

    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="abr-upload") as pool:
        futures = [pool.submit(upload_one, sha) for sha in todo]
        while True:
            done, pending = wait(futures, timeout=0.2, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in done) or cancel.is_set():
                stop.set()
                for f in pending:
                    f.cancel()
            if not pending:
                break
        errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
    if errors and not cancel.is_set():
        raise errors[0]


class _Tracker:
    """Byte and file counters shared by the upload threads."""

    def __init__(self, callback: Callable[[UploadProgress], None] | None, bytes_total: int, files_total: int):
        self._callback = callback
        self._lock = threading.Lock()
        self._last = 0.0
        self.bytes_total = bytes_total
        self.files_total = files_total
        self.bytes_done = 0
        self.files_done = 0

    def add_bytes(self, amount: int) -> None:
        # s3transfer reports negative amounts when it retries a part: they undo bytes
        with self._lock:
            self.bytes_done += amount
        self.report()

    def file_done(self) -> None:
        with self._lock:
            self.files_done += 1
        self.report(force=True)

    def report(self, force: bool = False) -> None:
        if self._callback is None:
            return
        with self._lock:  # one call at a time, values never go backwards between calls
            now = time.monotonic()
            if not force and now - self._last < PROGRESS_INTERVAL:
                return
            self._last = now
            message = UploadProgress(
                min(self.bytes_done, self.bytes_total), self.bytes_total, self.files_done, self.files_total
            )
            try:
                self._callback(message)
            except Exception:
                log.exception("upload progress callback failed (ignored)")
