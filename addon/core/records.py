"""Submission records on disk: one JSON file per submission, in a folder.

The add-on keeps them in ``extension_path_user``; the CLI in the user's data folder
(``$XDG_DATA_HOME/aws-batch-render``). Writes are atomic; readers skip files they
cannot parse rather than fail the whole list.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from .backends.base import SubmissionRecord
from .errors import AwsBatchRenderError, StorageError

log = logging.getLogger(__name__)


class RecordNotFoundError(AwsBatchRenderError):
    exit_code = 6


class RecordDamagedError(RecordNotFoundError):
    """A submission record exists but cannot be read as one."""


def default_records_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "aws-batch-render" / "submissions"


class RecordStore:
    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder else default_records_dir()

    def save(self, record: SubmissionRecord) -> Path:
        dest = self.folder / f"{record.submission_id}.json"
        tmp = ""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(record.to_json())
            os.replace(tmp, dest)
        except OSError as exc:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
            raise StorageError(
                f"Cannot save the record of {record.submission_id} in {self.folder}: "
                f"{exc.strerror or exc}. Pass --records a folder you can write to."
            ) from None
        return dest

    def check_writable(self) -> None:
        """Fail now, before anything starts, if records cannot be saved in the folder."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".json")
            os.close(fd)
            os.unlink(tmp)
        except OSError as exc:
            raise StorageError(
                f"Cannot save submission records in {self.folder}: {exc.strerror or exc}. "
                "Pass --records a folder you can write to."
            ) from None

    def load(self, submission_id: str) -> SubmissionRecord:
        path = self.folder / f"{submission_id}.json"
        if not path.is_file():
            matches = [p for p in self._files() if p.stem.startswith(submission_id)] if submission_id else []
            if len(matches) == 1:
                path = matches[0]
            elif len(matches) > 1:
                raise RecordNotFoundError(
                    f"{submission_id!r} matches {len(matches)} submissions; give more of the id "
                    "('aws-batch-render list' shows them)."
                )
            else:
                raise RecordNotFoundError(
                    f"No submission {submission_id!r} is recorded in {self.folder} "
                    "('aws-batch-render list' shows the known ones)."
                )
        try:
            return SubmissionRecord.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError, KeyError, RecursionError) as exc:
            raise RecordDamagedError(
                f"The submission record {path} is damaged ({type(exc).__name__}: {exc}); delete it, "
                "or restore it from a backup ('aws-batch-render list' skips it)."
            ) from None

    def list(self, source_blend: str | None = None) -> list[SubmissionRecord]:
        """Newest first; only those of ``source_blend`` when given."""
        out = []
        for path in self._files():
            try:
                rec = SubmissionRecord.from_json(path.read_text(encoding="utf-8"))
            except (OSError, ValueError, TypeError, KeyError, RecursionError) as exc:
                log.warning("skipping unreadable submission record %s: %s", path, exc)
                continue
            if source_blend is None or rec.source_blend == source_blend:
                out.append(rec)
        out.sort(key=lambda r: r.created_at, reverse=True)
        return out

    def _files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return [p for p in self.folder.glob("*.json") if not p.name.startswith(".tmp-")]
