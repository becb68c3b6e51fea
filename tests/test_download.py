"""Downloading a submission's video and frames, from a folder store and from S3 (moto)."""

from __future__ import annotations

import pytest

from addon.core.download import NothingToDownloadError, download_submission
from addon.core.storage import FileStore, S3Store, path_to_uri
from tests.helpers import make_spec


@pytest.fixture
def local(tmp_path):
    root = path_to_uri(tmp_path / "store", directory=True)
    spec = make_spec(root=root)
    return spec, FileStore()


def _put(store, spec, frames, data=b"frame"):
    for f in frames:
        store.put_bytes(data, spec.frame_uri(f))


def test_downloads_frames_and_video_and_reports_what_is_missing(local, tmp_path):
    spec, store = local
    _put(store, spec, [1, 2, 3, 8])
    store.put_bytes(b"video-bytes", spec.video_file_uri())
    store.put_bytes(b"not a frame", spec.output.frames_uri + "thumbs.db")
    calls = []
    report = download_submission(spec, tmp_path / "dl", progress=lambda d, t: calls.append((d, t)))
    assert sorted(p.name for p in (tmp_path / "dl" / "frames").iterdir()) == [spec.frame_name(f) for f in (1, 2, 3, 8)]
    assert report.video == tmp_path / "dl" / "video.mp4"
    assert report.video.read_bytes() == b"video-bytes"
    assert report.frames_missing == [4, 5, 6, 7]
    assert report.bytes_downloaded == 4 * len(b"frame") + len(b"video-bytes")
    assert calls[0] == (0, 5) and calls[-1] == (5, 5)


def test_skips_files_with_the_same_size_and_refetches_changed_ones(local, tmp_path):
    spec, store = local
    _put(store, spec, [1, 2])
    dest = tmp_path / "dl"
    first = download_submission(spec, dest, video=False)
    assert len(first.downloaded) == 2 and not first.skipped
    (dest / "frames" / spec.frame_name(2)).write_bytes(b"half")  # an interrupted copy
    again = download_submission(spec, dest, video=False)
    assert again.skipped == [dest / "frames" / spec.frame_name(1)]
    assert again.downloaded == [dest / "frames" / spec.frame_name(2)]
    assert (dest / "frames" / spec.frame_name(2)).read_bytes() == b"frame"


def test_video_only_and_nothing_yet(local, tmp_path):
    spec, store = local
    _put(store, spec, [1])
    with pytest.raises(NothingToDownloadError, match="no video in the store yet") as exc:
        download_submission(spec, tmp_path / "dl", frames=False)
    assert exc.value.exit_code == 34
    store.put_bytes(b"v", spec.video_file_uri())
    report = download_submission(spec, tmp_path / "dl", frames=False)
    assert report.downloaded == [tmp_path / "dl" / "video.mp4"]
    assert not (tmp_path / "dl" / "frames").exists()


def test_frames_only_submission_has_no_video(local, tmp_path):
    spec, store = local
    spec.output.video = None
    _put(store, spec, [1])
    report = download_submission(spec, tmp_path / "dl")
    assert report.video is None and report.video_missing
    assert len(report.downloaded) == 1


def test_download_from_s3(aws_settings, s3_bucket, tmp_path):
    spec = make_spec(root=f"s3://{s3_bucket}/")
    store = S3Store(aws_settings)
    _put(store, spec, spec.frames, data=b"p" * 2048)
    store.put_bytes(b"m" * 4096, spec.video_file_uri())
    report = download_submission(spec, tmp_path / "dl", settings=aws_settings)
    assert len(report.downloaded) == 9 and report.frames_missing == []
    assert (tmp_path / "dl" / "video.mp4").stat().st_size == 4096
    assert not list((tmp_path / "dl").rglob(".tmp-*"))  # no half files left behind
    again = download_submission(spec, tmp_path / "dl", settings=aws_settings)
    assert again.downloaded == [] and len(again.skipped) == 9
