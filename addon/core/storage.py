"""Storage addressed by URI: ``s3://bucket/key`` on AWS, ``file:///path`` locally.

One small interface (:class:`Store`), two implementations. S3 transfers go through
boto3's transfer manager (multipart, concurrent); local puts are atomic (temp file +
rename), so a reader never sees half a frame. Methods may be called from any thread;
nothing here touches bpy.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .aws.errors import BucketNotFoundError
from .aws.session import AwsSettings, client
from .errors import ObjectNotFoundError, StorageError, StorageURIError, local_write_error

log = logging.getLogger(__name__)

URI_HELP = "use s3://bucket/key for S3 or file:///absolute/path for a local folder"

#: called with the number of bytes just transferred (from transfer threads)
ProgressCallback = Callable[[int], None]
#: bytes per part of a file:// copy: the most one part takes before Cancel is seen
COPY_PART = 8 * 1024 * 1024


class TransferCancelled(StorageError):
    """A copy stopped because its ``cancel`` event was set; nothing was left behind."""


@dataclass(frozen=True)
class ParsedURI:
    scheme: str  # "s3" or "file"
    bucket: str  # "" for file
    key: str  # object key, or absolute path for file

    @property
    def path(self) -> Path:
        return Path(self.key)


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    size: int
    modified: float = 0.0  # unix time of the last write


def parse_uri(uri: str) -> ParsedURI:
    if not isinstance(uri, str) or not uri:
        raise StorageURIError(f"Empty storage location: {URI_HELP}.")
    if uri.startswith("s3://"):
        rest = uri[5:]
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise StorageURIError(f"{uri!r} names no bucket: {URI_HELP}.")
        if not _valid_bucket(bucket):
            raise StorageURIError(
                f"{bucket!r} in {uri!r} is not a valid S3 bucket name (3-63 lowercase letters, "
                "digits, '.' or '-')."
            )
        return ParsedURI("s3", bucket, key)
    if uri.startswith("file://"):
        path = uri[7:]
        if not path.startswith("/"):
            raise StorageURIError(
                f"{uri!r} is not an absolute file URI: write file:///absolute/path (three slashes)."
            )
        return ParsedURI("file", "", path)
    raise StorageURIError(f"{uri!r} is not a storage URI: {URI_HELP}.")


def join_uri(prefix: str, name: str) -> str:
    """``join_uri('s3://b/p/', 'x.png') == 's3://b/p/x.png'``."""
    return prefix + name if prefix.endswith("/") else f"{prefix}/{name}"


def path_to_uri(path: str | os.PathLike[str], directory: bool = False) -> str:
    uri = "file://" + str(Path(path).resolve())
    return uri + "/" if directory and not uri.endswith("/") else uri


def _valid_bucket(name: str) -> bool:
    import re

    return bool(re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", name))


class Store(ABC):
    """Read and write objects by URI."""

    @abstractmethod
    def exists(self, uri: str) -> bool: ...

    def size(self, uri: str) -> int:
        """Size in bytes; :class:`ObjectNotFoundError` if absent."""
        return self.info(uri).size

    @abstractmethod
    def info(self, uri: str) -> ObjectInfo:
        """Size and last write time; :class:`ObjectNotFoundError` if absent."""

    @abstractmethod
    def get_file(self, uri: str, dest: str | os.PathLike[str]) -> None:
        """Download to ``dest``, creating folders; the file appears whole or not at all."""

    @abstractmethod
    def get_bytes(self, uri: str) -> bytes: ...

    @abstractmethod
    def put_file(
        self,
        src: str | os.PathLike[str],
        uri: str,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """Upload atomically: readers see the old object, or none, or the whole new one.
        Stores that copy in parts check ``cancel`` between parts and raise
        :class:`TransferCancelled` once it is set, leaving nothing behind."""

    @abstractmethod
    def put_bytes(self, data: bytes, uri: str) -> None: ...

    @abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose URI starts with ``prefix`` (recursively), paginated lazily."""


class FileStore(Store):
    """``file://`` URIs: a folder on this computer."""

    def _path(self, uri: str) -> Path:
        parsed = parse_uri(uri)
        if parsed.scheme != "file":
            raise StorageURIError(f"{uri!r} is not a file:// URI.")
        return parsed.path

    def exists(self, uri: str) -> bool:
        return self._path(uri).is_file()

    def info(self, uri: str) -> ObjectInfo:
        try:
            st = self._path(uri).stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFoundError(f"{uri} does not exist.") from None
        except OSError as exc:
            raise StorageError(f"Cannot read {uri}: {exc.strerror or exc}.") from None
        return ObjectInfo(uri, st.st_size, st.st_mtime)

    def get_file(self, uri: str, dest: str | os.PathLike[str]) -> None:
        src = self._path(uri)
        if not src.is_file():
            raise ObjectNotFoundError(f"{uri} does not exist.")
        try:
            _atomic_copy(src, Path(dest))
        except OSError as exc:
            if exc.filename and Path(exc.filename) == src:  # the reading side failed
                raise StorageError(f"Cannot read {uri}: {exc.strerror or exc}.") from None
            raise local_write_error(exc, Path(dest)) from None

    def get_bytes(self, uri: str) -> bytes:
        try:
            return self._path(uri).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"{uri} does not exist.") from None
        except OSError as exc:
            raise StorageError(f"Cannot read {uri}: {exc.strerror or exc}.") from None

    def put_file(
        self,
        src: str | os.PathLike[str],
        uri: str,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """Copies in parts of :data:`COPY_PART` bytes, reporting each and checking ``cancel``
        between them: a large file stops within a part, and its temp file is removed."""
        dest = self._path(uri)
        if not Path(src).is_file():
            raise StorageError(f"Cannot upload {src}: no such file.")
        try:
            _atomic_copy(Path(src), dest, progress, cancel)
        except OSError as exc:
            raise StorageError(f"Cannot write {uri}: {exc.strerror or exc}.") from None

    def put_bytes(self, data: bytes, uri: str) -> None:
        dest = self._path(uri)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = _temp_beside(dest)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, dest)
        except OSError as exc:
            raise StorageError(f"Cannot write {uri}: {exc.strerror or exc}.") from None

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self._path(prefix)
        # A prefix need not end at a folder boundary: 'file:///x/frame_' matches frame_*.
        folder = base if prefix.endswith("/") else base.parent
        if not folder.is_dir():
            return
        text_prefix = str(base) + ("/" if prefix.endswith("/") else "")
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                if name.startswith(".tmp-") and name.endswith(".part"):
                    continue  # an atomic put in progress
                full = os.path.join(root, name)
                if full.startswith(text_prefix):
                    try:
                        st = os.stat(full)
                    except FileNotFoundError:
                        continue
                    yield ObjectInfo("file://" + full, st.st_size, st.st_mtime)


class S3Store(Store):
    """``s3://`` URIs through boto3; uploads and downloads use the transfer manager."""

    def __init__(
        self,
        settings: AwsSettings | None = None,
        *,
        max_concurrency: int = 10,
        multipart_threshold: int = 8 * 1024 * 1024,
        s3_client: Any = None,
    ) -> None:
        self.settings = settings or AwsSettings.from_env()
        self._client = s3_client
        self.max_concurrency = max_concurrency
        self.multipart_threshold = multipart_threshold

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client("s3", self.settings)
        return self._client

    def transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_threshold,
            max_concurrency=self.max_concurrency,
            use_threads=True,
        )

    def _loc(self, uri: str) -> ParsedURI:
        parsed = parse_uri(uri)
        if parsed.scheme != "s3":
            raise StorageURIError(f"{uri!r} is not an s3:// URI.")
        return parsed

    def exists(self, uri: str) -> bool:
        try:
            self.size(uri)
        except ObjectNotFoundError:
            return False
        return True

    def info(self, uri: str) -> ObjectInfo:
        loc = self._loc(uri)
        try:
            head = self.client.head_object(Bucket=loc.bucket, Key=loc.key)
        except Exception as exc:  # botocore.exceptions.ClientError, imported lazily
            raise translate_s3_error(exc, "read", uri, "s3:GetObject") from None
        return ObjectInfo(uri, int(head["ContentLength"]), head["LastModified"].timestamp())

    def get_file(self, uri: str, dest: str | os.PathLike[str]) -> None:
        loc = self._loc(uri)
        dest = Path(dest)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = _temp_beside(dest)
            os.close(fd)
        except OSError as exc:
            raise local_write_error(exc, dest) from None
        try:
            self.client.download_file(loc.bucket, loc.key, tmp, Config=self.transfer_config())
            os.replace(tmp, dest)
        except Exception as exc:
            _unlink(tmp)
            if isinstance(exc, OSError):
                raise local_write_error(exc, dest) from None
            raise translate_s3_error(exc, "download", uri, "s3:GetObject") from None

    def get_bytes(self, uri: str) -> bytes:
        loc = self._loc(uri)
        try:
            return self.client.get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()
        except Exception as exc:
            raise translate_s3_error(exc, "read", uri, "s3:GetObject") from None

    def put_file(
        self,
        src: str | os.PathLike[str],
        uri: str,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """``cancel`` is checked before the transfer starts; a pack's upload cancels in the
        middle of a file through its own transfer manager (:mod:`.submit.upload`)."""
        loc = self._loc(uri)
        if cancel is not None and cancel.is_set():
            raise TransferCancelled(f"Uploading {Path(src).name} was cancelled.")
        try:
            self.client.upload_file(
                str(src), loc.bucket, loc.key, Config=self.transfer_config(), Callback=progress
            )
        except Exception as exc:
            raise translate_s3_error(exc, "upload", uri, "s3:PutObject") from None

    def put_bytes(self, data: bytes, uri: str) -> None:
        loc = self._loc(uri)
        try:
            self.client.put_object(Bucket=loc.bucket, Key=loc.key, Body=data)
        except Exception as exc:
            raise translate_s3_error(exc, "upload", uri, "s3:PutObject") from None

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        loc = self._loc(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=loc.bucket, Prefix=loc.key):
                for obj in page.get("Contents", ()):
                    yield ObjectInfo(
                        f"s3://{loc.bucket}/{obj['Key']}", int(obj["Size"]), obj["LastModified"].timestamp()
                    )
        except Exception as exc:
            raise translate_s3_error(exc, "list", prefix, "s3:ListBucket") from None


def translate_s3_error(exc: Exception, action: str, uri: str, permission: str) -> Exception:
    """Turn a botocore error into a StorageError a user can act on."""
    code = ""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
    bucket = uri[5:].split("/", 1)[0] if uri.startswith("s3://") else ""
    if code in ("404", "NoSuchKey", "NotFound"):
        return ObjectNotFoundError(f"{uri} does not exist.")
    if code == "NoSuchBucket":
        return BucketNotFoundError(
            f"The bucket s3://{bucket} does not exist (check the bucket name, or deploy the stack)."
        )
    if code in ("403", "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return StorageError(
            f"Cannot {action} {uri}: access denied (check {permission} on s3://{bucket} for your "
            "credentials or the job role)."
        )
    if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "301"):
        return StorageError(
            f"The bucket s3://{bucket} is in another region: set the region to the bucket's region."
        )
    name = type(exc).__name__
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"):
        return StorageError(f"Cannot {action} {uri}: the network is unreachable ({exc}). Check your connection.")
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return StorageError(
            f"Cannot {action} {uri}: no AWS credentials found. Run 'aws configure' or choose a profile."
        )
    if isinstance(exc, StorageError):
        return exc
    return StorageError(f"Cannot {action} {uri}: {exc}")


def open_store(uri: str, settings: AwsSettings | None = None, **s3_options: Any) -> Store:
    """The store that serves ``uri``'s scheme."""
    scheme = parse_uri(uri).scheme
    if scheme == "file":
        return FileStore()
    return S3Store(settings, **s3_options)


def _atomic_copy(
    src: Path, dest: Path, progress: ProgressCallback | None = None, cancel: threading.Event | None = None
) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(dest)
    os.close(fd)
    try:
        if progress is None and cancel is None:
            shutil.copyfile(src, tmp)
        else:
            _copy_in_parts(src, Path(tmp), progress, cancel)
        os.replace(tmp, dest)
    except BaseException:
        _unlink(tmp)
        raise


def _copy_in_parts(src: Path, dest: Path, progress: ProgressCallback | None, cancel: threading.Event | None) -> None:
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        while True:
            if cancel is not None and cancel.is_set():
                raise TransferCancelled(f"Copying {src.name} was cancelled.")
            part = fin.read(COPY_PART)
            if not part:
                return
            fout.write(part)
            if progress:
                progress(len(part))


def _temp_beside(dest: Path) -> tuple[int, str]:
    """A temp file next to ``dest`` (same filesystem, so os.replace is atomic) with the
    permissions a plain new file gets (mkstemp's 0600 would make downloads private)."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-", suffix=".part")
    os.fchmod(fd, 0o666 & ~_UMASK)
    return fd, tmp


def _read_umask() -> int:
    # Read once at import: os.umask() sets as it reads, which is not safe among threads.
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


_UMASK = _read_umask()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
