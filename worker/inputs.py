"""Fetch the packed inputs into a scratch folder, restoring their relative layout.

The spec lists each file by its relative path in the pack and the sha256 of its bytes
(the object key). Downloads run in a small thread pool; each file is checked against
its digest so a damaged transfer is retried rather than rendered. The pool's threads
only touch the store and the scratch folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from addon.core.errors import ObjectNotFoundError, StorageError
from addon.core.jobspec import JobSpec
from addon.core.storage import Store

from .failures import WorkerContentError, WorkerRetryableError

log = logging.getLogger(__name__)

DOWNLOAD_THREADS = 8


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_inputs(spec: JobSpec, store: Store, dest: Path) -> Path:
    """Download every packed file under ``dest``; returns the main .blend's path."""
    dest = dest.resolve()

    def fetch(item: tuple[str, str]) -> int:
        rel, digest = item
        target = (dest / rel).resolve()
        if dest not in target.parents:  # the spec forbids '..', but never write outside
            raise WorkerContentError(f"Packed path {rel!r} points outside the scratch folder.")
        uri = spec.input_uri(rel)
        try:
            store.get_file(uri, target)
        except ObjectNotFoundError:
            raise WorkerContentError(
                f"Packed input {rel!r} is missing from {uri}: the upload did not finish or the "
                "inputs were deleted; resubmit."
            ) from None
        except StorageError as exc:
            raise WorkerRetryableError(f"Cannot download packed input {rel!r}: {exc}") from None
        actual = sha256_file(target)
        if actual != digest:
            raise WorkerRetryableError(
                f"Packed input {rel!r} from {uri} has sha256 {actual[:12]}…, not {digest[:12]}…: "
                "the object is damaged or was overwritten."
            )
        return target.stat().st_size

    items = sorted(spec.inputs.files.items())
    with ThreadPoolExecutor(max_workers=min(DOWNLOAD_THREADS, len(items)), thread_name_prefix="fetch") as pool:
        total = sum(pool.map(fetch, items))
    log.info("Fetched %d packed file(s), %.1f MB, into %s", len(items), total / 1e6, dest)
    return dest / spec.inputs.main_blend
