"""Esc in the middle of a large file stops the upload within about a second, on both
stores, and leaves nothing behind: a file:// copy goes in parts and checks Cancel between
them (its temp file is removed); S3 goes up as a multipart upload whose parts stop at
Cancel and which is aborted (no object, no incomplete multipart upload left to bill).
Hashing a large file before the upload looks at Cancel between blocks too.

The file is 200 MB (sparse: no disk used until it is copied), against a real moto server
over HTTP and a real folder.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest

from addon.core.aws.session import client
from addon.core.storage import FileStore, S3Store, path_to_uri
from addon.core.submit import upload as upload_module
from addon.core.submit.options import SubmissionCancelled
from addon.core.submit.packing import HASH_BLOCK, sha256_file
from addon.core.submit.upload import upload_inputs

BIG = 200 * 1024 * 1024
#: "within about a second": Cancel seen, transfers stopped, cleanup done
LIMIT_S = 1.0


@pytest.fixture(scope="module")
def big_pack(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    pack = tmp_path_factory.mktemp("bigpack")
    path = pack / "textures" / "huge.exr"
    path.parent.mkdir()
    with open(path, "wb") as fh:
        fh.truncate(BIG)
    return pack, {"textures/huge.exr": sha256_file(path)}


def cancel_midway(monkeypatch, after_bytes: int):
    """A progress callback that presses Cancel once ``after_bytes`` went up, and when."""
    monkeypatch.setattr(upload_module, "PROGRESS_INTERVAL", 0)  # report every part
    cancel = threading.Event()
    seen: dict[str, float] = {}

    def progress(p):
        seen["bytes"] = p.bytes_done
        if p.bytes_done >= after_bytes and not cancel.is_set():
            seen["at"] = time.monotonic()
            seen["bytes_at_cancel"] = p.bytes_done
            cancel.set()

    return cancel, seen, progress


def test_file_store_upload_stops_within_a_second_in_the_middle_of_a_large_file(tmp_path, big_pack, monkeypatch):
    pack, manifest = big_pack
    inputs = path_to_uri(tmp_path / "bucket" / "inputs", directory=True)
    cancel, seen, progress = cancel_midway(monkeypatch, 24 * 1024 * 1024)
    with pytest.raises(SubmissionCancelled, match="0 of 1"):
        upload_inputs(pack, manifest, inputs, FileStore(), progress=progress, cancel=cancel)
    took = time.monotonic() - seen["at"]
    print(f"stopped {took:.3f} s after Cancel, {seen['bytes'] // 2**20} MiB reported")
    assert took <= LIMIT_S, f"the copy went on for {took:.2f} s after Cancel"
    assert seen["bytes"] < BIG / 2, seen  # it stopped in the middle, not after the file
    folder = tmp_path / "bucket" / "inputs"
    assert [p.name for p in folder.rglob("*")] == []  # no object, no temp part


def test_s3_upload_stops_within_a_second_and_aborts_the_multipart_upload(big_pack, aws_settings, s3_bucket,
                                                                        monkeypatch):
    pack, manifest = big_pack
    store = S3Store(aws_settings)  # what the add-on uses: 8 MiB parts, 10 at a time
    cancel, seen, progress = cancel_midway(monkeypatch, 24 * 1024 * 1024)
    with pytest.raises(SubmissionCancelled, match="0 of 1"):
        upload_inputs(pack, manifest, f"s3://{s3_bucket}/inputs/", store, progress=progress, cancel=cancel)
    took = time.monotonic() - seen["at"]
    print(f"stopped {took:.3f} s after Cancel, {seen['bytes'] // 2**20} MiB reported")
    assert took <= LIMIT_S, f"the upload went on for {took:.2f} s after Cancel"
    assert seen["bytes"] < BIG / 2, seen
    s3 = client("s3", aws_settings)
    assert s3.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0
    assert s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []  # aborted: nothing to bill


def test_hashing_a_large_file_looks_at_cancel_between_blocks(big_pack):
    pack, _ = big_pack
    path = pack / "textures" / "huge.exr"
    cancel = threading.Event()
    calls = []

    def check_cancel() -> None:
        calls.append(time.monotonic())
        if cancel.is_set():
            raise SubmissionCancelled("cancelled while hashing")

    timer = threading.Timer(0.05, cancel.set)
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(SubmissionCancelled):
        sha256_file(path, check_cancel)
    timer.join()
    assert time.monotonic() - t0 <= 0.05 + LIMIT_S
    assert len(calls) * HASH_BLOCK < BIG  # stopped inside the file
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert max(gaps, default=0) < 0.5  # every block is short enough to keep Esc prompt
