"""Content-addressed upload against a real moto S3 over HTTP and a file:// store."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from addon.core.aws.session import client
from addon.core.errors import StorageError
from addon.core.storage import FileStore, S3Store, path_to_uri
from addon.core.submit import upload as upload_module
from addon.core.submit.options import SubmissionCancelled
from addon.core.submit.upload import missing_keys, upload_inputs


def make_pack(root: Path, count: int = 12, size: int = 3000) -> dict[str, str]:
    """``count`` small files (two with equal bytes) and their manifest."""
    manifest = {}
    for i in range(count):
        data = os.urandom(size) if i != count - 1 else (root / "f00.bin").read_bytes()
        path = root / ("sub" if i % 2 else "") / f"f{i:02d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        manifest[path.relative_to(root).as_posix()] = hashlib.sha256(data).hexdigest()
    return manifest


def stored_digests(store, inputs_uri: str) -> dict[str, str]:
    """key -> sha256 of the object's bytes, for every object under inputs_uri."""
    return {
        info.uri[len(inputs_uri) :]: hashlib.sha256(store.get_bytes(info.uri)).hexdigest()
        for info in store.list(inputs_uri)
    }


@pytest.fixture
def s3(aws_settings, s3_bucket):
    return S3Store(aws_settings, max_concurrency=4, multipart_threshold=5 * 1024 * 1024)


def test_file_store_uploads_once_then_nothing_then_only_the_change(tmp_path):
    pack = tmp_path / "pack"
    manifest = make_pack(pack)
    inputs = path_to_uri(tmp_path / "root" / "inputs", directory=True)
    store = FileStore()
    unique = set(manifest.values())
    size = sum((pack / rel).stat().st_size for rel in {v: k for k, v in manifest.items()}.values())
    assert upload_inputs(pack, manifest, inputs, store) == (size, len(unique))
    assert set(stored_digests(store, inputs).items()) == {(d, d) for d in unique}

    assert upload_inputs(pack, manifest, inputs, store) == (0, 0)  # resubmit: nothing

    (pack / "sub" / "f01.bin").write_bytes(b"a changed texture")
    manifest["sub/f01.bin"] = hashlib.sha256(b"a changed texture").hexdigest()
    assert upload_inputs(pack, manifest, inputs, store) == (len(b"a changed texture"), 1)


@pytest.mark.parametrize("list_page", [upload_module.LIST_PAGE, 0], ids=["one-listing", "head-per-key"])
def test_s3_resubmit_uploads_zero_bytes_and_a_change_only_itself(tmp_path, s3, monkeypatch, list_page):
    # LIST_PAGE 0: the listing is "too long" at once, so every key gets a HEAD
    monkeypatch.setattr(upload_module, "LIST_PAGE", list_page)
    pack = tmp_path / "pack"
    manifest = make_pack(pack)
    inputs = "s3://abr-test/inputs/"
    reports = []
    sent, files = upload_inputs(pack, manifest, inputs, s3, progress=reports.append, concurrency=4)
    unique = set(manifest.values())
    assert files == len(unique) == 11 and sent == 11 * 3000
    assert stored_digests(s3, inputs) == {d: d for d in unique}  # key = sha256 of the bytes
    last = reports[-1]
    assert (last.bytes_done, last.bytes_total, last.files_done, last.files_total) == (sent, sent, 11, 11)
    done = [r.files_done for r in reports]
    assert done == sorted(done)  # one call at a time, never backwards

    assert upload_inputs(pack, manifest, inputs, s3) == (0, 0)

    (pack / "f00.bin").write_bytes(b"new texture bytes")  # f11.bin kept the old bytes
    manifest["f00.bin"] = hashlib.sha256(b"new texture bytes").hexdigest()
    assert upload_inputs(pack, manifest, inputs, s3) == (len(b"new texture bytes"), 1)


def test_existing_object_with_the_wrong_size_is_replaced(tmp_path, s3):
    pack = tmp_path / "pack"
    manifest = make_pack(pack, count=2)
    digest = manifest["f00.bin"]
    s3.put_bytes(b"truncated", f"s3://abr-test/inputs/{digest}")
    sizes = {digest: 3000, manifest["sub/f01.bin"]: 3000}
    assert sorted(missing_keys(s3, "s3://abr-test/inputs/", sizes)) == sorted(sizes)
    upload_inputs(pack, manifest, "s3://abr-test/inputs/", s3)
    assert s3.size(f"s3://abr-test/inputs/{digest}") == 3000


def test_multipart_upload_cancelled_midway_leaves_no_object(tmp_path, s3, aws_settings, monkeypatch):
    monkeypatch.setattr(upload_module, "PROGRESS_INTERVAL", 0)  # report every chunk
    pack = tmp_path / "pack"
    pack.mkdir()
    data = os.urandom(12 * 1024 * 1024)  # three parts of at least 5 MiB... the last smaller
    (pack / "big.exr").write_bytes(data)
    manifest = {"big.exr": hashlib.sha256(data).hexdigest()}
    cancel = threading.Event()

    def progress(p):
        if p.bytes_done > 0:
            cancel.set()  # the user presses Cancel while the parts go up

    with pytest.raises(SubmissionCancelled, match="0 of 1"):
        upload_inputs(pack, manifest, "s3://abr-test/inputs/", s3, progress=progress, cancel=cancel)
    assert list(s3.list("s3://abr-test/inputs/")) == []
    uploads = client("s3", aws_settings).list_multipart_uploads(Bucket="abr-test").get("Uploads", [])
    assert uploads == []  # the multipart upload was aborted, nothing left to bill


def test_cancel_between_files_keeps_whole_objects_only(tmp_path, s3):
    pack = tmp_path / "pack"
    manifest = make_pack(pack, count=8)
    cancel = threading.Event()

    def progress(p):
        if p.files_done >= 2:
            cancel.set()

    with pytest.raises(SubmissionCancelled, match="will not be uploaded again"):
        upload_inputs(pack, manifest, "s3://abr-test/inputs/", s3, progress=progress, cancel=cancel, concurrency=1)
    stored = stored_digests(s3, "s3://abr-test/inputs/")
    assert 2 <= len(stored) < 7
    assert all(key == digest for key, digest in stored.items())  # no partial objects
    cancel.clear()
    _, files = upload_inputs(pack, manifest, "s3://abr-test/inputs/", s3)
    assert files == len(set(manifest.values())) - len(stored)  # a later submission sends only the rest


def test_cancel_before_start_uploads_nothing(tmp_path, s3):
    pack = tmp_path / "pack"
    manifest = make_pack(pack, count=3)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(SubmissionCancelled):
        upload_inputs(pack, manifest, "s3://abr-test/inputs/", s3, cancel=cancel)
    assert list(s3.list("s3://abr-test/inputs/")) == []


def test_missing_bucket_is_a_storage_error_naming_it(tmp_path, aws_settings):
    pack = tmp_path / "pack"
    manifest = make_pack(pack, count=3)
    store = S3Store(aws_settings)
    with pytest.raises(StorageError, match="s3://no-such-bucket"):
        upload_inputs(pack, manifest, "s3://no-such-bucket/inputs/", store)


def test_inputs_older_than_the_refresh_age_go_up_again(tmp_path):
    """The bucket's lifecycle expires inputs by age: an old copy must not be trusted to
    outlive the render, so it is uploaded again (which restarts its clock)."""
    import time

    pack = tmp_path / "pack"
    manifest = make_pack(pack, count=4)
    inputs = path_to_uri(tmp_path / "root" / "inputs", directory=True)
    store = FileStore()
    upload_inputs(pack, manifest, inputs, store)
    old = next(iter(store.list(inputs)))
    ten_days_ago = time.time() - 10 * 86400
    os.utime(old.uri[len("file://"):], (ten_days_ago, ten_days_ago))
    assert upload_inputs(pack, manifest, inputs, store, refresh_after_days=None) == (0, 0)
    assert upload_inputs(pack, manifest, inputs, store, refresh_after_days=30) == (0, 0)
    assert upload_inputs(pack, manifest, inputs, store, refresh_after_days=7) == (old.size, 1)
    assert store.info(old.uri).modified > time.time() - 60


@pytest.mark.parametrize("list_page", [upload_module.LIST_PAGE, 0], ids=["one-listing", "head-per-key"])
def test_s3_ages_come_from_the_listing_or_head(tmp_path, s3, monkeypatch, list_page):
    import time

    monkeypatch.setattr(upload_module, "LIST_PAGE", list_page)
    pack = tmp_path / "pack"
    manifest = make_pack(pack, count=3)
    inputs = "s3://abr-test/inputs/"
    upload_inputs(pack, manifest, inputs, s3)
    sizes = {sha: 3000 for sha in set(manifest.values())}
    assert missing_keys(s3, inputs, sizes, written_after=time.time() - 3600) == []
    assert sorted(missing_keys(s3, inputs, sizes, written_after=time.time() + 3600)) == sorted(sizes)
