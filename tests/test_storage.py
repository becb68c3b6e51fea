"""One set of storage tests against both a temp folder and the moto S3 server over HTTP."""

from __future__ import annotations

import os
import threading

import pytest

from addon.core.errors import ObjectNotFoundError, StorageError, StorageURIError
from addon.core.storage import (
    FileStore,
    S3Store,
    join_uri,
    open_store,
    parse_uri,
    path_to_uri,
)


@pytest.fixture(params=["file", "s3"])
def root(request, tmp_path):
    """(store, root prefix URI) for each implementation."""
    if request.param == "file":
        return FileStore(), path_to_uri(tmp_path / "store", directory=True)
    bucket = request.getfixturevalue("s3_bucket")
    settings = request.getfixturevalue("aws_settings")
    return S3Store(settings, multipart_threshold=5 * 1024 * 1024), f"s3://{bucket}/root/"


def test_put_get_exists_size(root, tmp_path):
    store, base = root
    uri = join_uri(base, "a/b/hello.txt")
    assert not store.exists(uri)
    store.put_bytes(b"hello", uri)
    assert store.exists(uri)
    assert store.size(uri) == 5
    assert store.get_bytes(uri) == b"hello"
    dest = tmp_path / "down" / "x" / "hello.txt"
    store.get_file(uri, dest)
    assert dest.read_bytes() == b"hello"
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".tmp-")]
    umask = os.umask(0)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask  # like any new file, not mkstemp's 0600


def test_put_file_reports_progress_and_overwrites(root, tmp_path):
    store, base = root
    src = tmp_path / "big.bin"
    data = os.urandom(6 * 1024 * 1024 + 123)  # over the multipart threshold on S3
    src.write_bytes(data)
    uri = join_uri(base, "big.bin")
    seen = []
    lock = threading.Lock()

    def progress(n):
        with lock:
            seen.append(n)

    store.put_bytes(b"old", uri)
    store.put_file(src, uri, progress=progress)
    assert sum(seen) == len(data)
    assert store.size(uri) == len(data)
    assert store.get_bytes(uri) == data


def test_list_is_recursive_sorted_and_prefix_exact(root):
    store, base = root
    for name in ("frames/frame_000002.png", "frames/frame_000001.png", "frames/sub/x.png", "framesX/y.png"):
        store.put_bytes(name.encode(), join_uri(base, name))
    listed = [(o.uri, o.size) for o in store.list(join_uri(base, "frames/"))]
    names = [u[len(base):] for u, _ in listed]
    assert sorted(names) == ["frames/frame_000001.png", "frames/frame_000002.png", "frames/sub/x.png"]
    assert dict(listed)[join_uri(base, "frames/sub/x.png")] == len(b"frames/sub/x.png")
    partial = sorted(o.uri[len(base):] for o in store.list(join_uri(base, "frames/frame_")))
    assert partial == ["frames/frame_000001.png", "frames/frame_000002.png"]
    assert list(store.list(join_uri(base, "nothing-here/"))) == []


def test_list_paginates_past_1000_on_s3(s3_bucket, aws_settings):
    from addon.core.aws.session import client

    s3 = client("s3", aws_settings)
    for i in range(1005):
        s3.put_object(Bucket=s3_bucket, Key=f"many/k{i:05d}", Body=b"")
    assert len(list(S3Store(aws_settings).list(f"s3://{s3_bucket}/many/"))) == 1005


def test_missing_object(root, tmp_path):
    store, base = root
    uri = join_uri(base, "nope.bin")
    with pytest.raises(ObjectNotFoundError, match="does not exist"):
        store.size(uri)
    with pytest.raises(ObjectNotFoundError):
        store.get_bytes(uri)
    with pytest.raises(StorageError):
        store.get_file(uri, tmp_path / "nope.bin")
    assert not (tmp_path / "nope.bin").exists()


def test_missing_bucket_says_so(aws_settings):
    store = S3Store(aws_settings)
    with pytest.raises(StorageError, match=r"bucket s3://no-such-bucket does not exist"):
        store.put_bytes(b"x", "s3://no-such-bucket/key")


def test_no_credentials_says_so(monkeypatch):
    from addon.core.aws.session import AwsSettings

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(StorageError, match=r"no AWS credentials found\. Run 'aws configure'"):
        S3Store(AwsSettings(region="us-east-1", max_attempts=1)).get_bytes("s3://some-bucket/key")


def test_unreachable_endpoint_says_network(monkeypatch):
    from addon.core.aws.session import AwsSettings
    from tests.helpers import free_port

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = AwsSettings(region="us-east-1", endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1)
    with pytest.raises(StorageError, match="network is unreachable"):
        S3Store(settings).get_bytes("s3://some-bucket/key")


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("", "Empty storage location"),
        ("bucket/key", "is not a storage URI: use s3://bucket/key"),
        ("s3://", "names no bucket"),
        ("s3://Bad_Bucket/key", "not a valid S3 bucket name"),
        ("file://relative/path", "not an absolute file URI: write file:///absolute/path"),
        ("http://x/y", "is not a storage URI"),
    ],
)
def test_bad_uris(uri, fragment):
    with pytest.raises(StorageURIError) as err:
        parse_uri(uri)
    assert fragment in str(err.value)
    with pytest.raises(StorageURIError):
        open_store(uri)


def test_parse_and_open():
    p = parse_uri("s3://my-bucket/a/b.png")
    assert (p.scheme, p.bucket, p.key) == ("s3", "my-bucket", "a/b.png")
    assert parse_uri("file:///tmp/x").path.as_posix() == "/tmp/x"
    assert isinstance(open_store("file:///tmp/"), FileStore)
    assert isinstance(open_store("s3://my-bucket/"), S3Store)
    with pytest.raises(StorageURIError, match="not an s3:// URI"):
        S3Store().exists("file:///tmp/x")
    with pytest.raises(StorageURIError, match="not a file:// URI"):
        FileStore().exists("s3://my-bucket/x")


def test_file_store_put_is_atomic_under_failure(tmp_path):
    store = FileStore()
    uri = path_to_uri(tmp_path / "out" / "f.bin")
    store.put_bytes(b"complete", uri)
    with pytest.raises(StorageError, match="does-not-exist: no such file"):
        store.put_file(tmp_path / "does-not-exist", uri)
    assert store.get_bytes(uri) == b"complete"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["f.bin"]
