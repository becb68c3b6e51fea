"""Pack a saved copy of the scene with every file it depends on (blender-asset-tracer).

BAT traces images, image sequences and UDIM tiles, linked libraries (recursively),
sounds, fonts, movie clips, cache files, VDB volumes and simulation caches, copies them
into a pack folder and rewrites the paths in the packed .blend files so that a worker
finds them next to the main file. Each packed file is then hashed (sha256) for the
content-addressed upload.

The project root is chosen on purpose: the deepest folder holding the user's .blend and
every dependency, unless that would be the file system root or a folder right under it
(``/``, ``/home``); then the .blend's own folder is the root and outside files land
under ``_outside_project/<absolute path>``. Either way nothing is dropped, and files
outside the .blend's folder are reported so the user can see them.

The copy the add-on saves lives in a temporary folder, not next to the user's file: it
is packed as if it stood where the user's file stands (``source_blend``), so the pack
layout mirrors the real project and relative paths stay short.

Runs in the caller's thread (a background thread in the add-on); never touches bpy.
BAT keeps one process-wide cache of open .blend files, so packs are serialised.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AwsBatchRenderError
from .bat_packer import PackCallback, fix_bat_node_trees, fix_bat_sequencer_root_paths, make_packer
from .bat_zstd import UNREADABLE, is_unreadable_zstd, zstd_readable
from .options import MissingFilesError, SubmissionCancelled

log = logging.getLogger(__name__)

#: a project root needs at least this many path parts ('/', 'home', 'user'): never '/' or '/home'
MIN_ROOT_PARTS = 3
_PACK_LOCK = threading.Lock()


class PackingError(AwsBatchRenderError):
    """The scene or one of its files could not be read or copied into the pack."""

    exit_code = 41


@dataclass
class PackResult:
    pack_dir: Path
    main_blend: str  # relative path of the main .blend in the pack
    files: dict[str, str] = field(default_factory=dict)  # relpath -> sha256
    sizes: dict[str, int] = field(default_factory=dict)  # relpath -> bytes
    missing: list[str] = field(default_factory=list)  # absolute paths that do not exist
    outside_project: list[str] = field(default_factory=list)  # absolute paths outside the .blend's folder
    project_root: str = ""

    @property
    def bytes_total(self) -> int:
        return sum(self.sizes.values())


#: bytes hashed between two looks at Cancel (~20 ms of sha256 on one core)
HASH_BLOCK = 4 * 1024 * 1024


def sha256_file(path: str | os.PathLike[str], check_cancel: Callable[[], None] | None = None) -> str:
    """The file's sha256; ``check_cancel`` (which raises to stop) is called between blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            if check_cancel is not None:
                check_cancel()
            block = fh.read(HASH_BLOCK)
            if not block:
                return digest.hexdigest()
            digest.update(block)


def choose_project_root(blend_dir: Path, dependencies: list[Path]) -> Path:
    """The common folder of the .blend and its existing dependencies, unless that is
    too close to the file system root; then the .blend's folder."""
    try:
        common = Path(os.path.commonpath([str(blend_dir), *(str(p) for p in dependencies)]))
    except ValueError:  # different drives
        return blend_dir
    return common if len(common.parts) >= MIN_ROOT_PARTS else blend_dir


def pack_blend(
    blend_copy: str | os.PathLike[str],
    pack_dir: str | os.PathLike[str],
    *,
    source_blend: str = "",
    allow_missing: bool = False,
    project_root: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: threading.Event | None = None,
    blender_missing: list[str] | None = None,
) -> PackResult:
    """Pack ``blend_copy`` and its dependencies into ``pack_dir`` (empty or new).

    ``source_blend`` is where the user's file lives (the copy is packed as if it stood
    there); "" packs the copy where it is. Raises ``MissingFilesError`` when referenced
    files are missing (unless ``allow_missing``), ``SubmissionCancelled`` when ``cancel``
    is set, :class:`PackingError` when a file cannot be read or copied.
    ``progress(done, total, message)`` reports tracing (total 0), copying (bytes) and
    hashing (files) in turn. ``blender_missing`` is what Blender itself could not resolve
    (the snapshot's list): when given, a file BAT calls missing but Blender found (BAT
    resolves some paths inside linked libraries wrongly) is not an error.
    """

    copy = Path(blend_copy).resolve()
    if not copy.is_file():
        raise PackingError(f"{copy} does not exist: save the scene before submitting.")
    source = Path(source_blend).resolve() if source_blend else copy
    pack_dir = Path(pack_dir).resolve()
    pack_dir.mkdir(parents=True, exist_ok=True)
    with _PACK_LOCK:
        try:
            return _pack_locked(
                copy, source, pack_dir, allow_missing, project_root, progress, cancel, blender_missing
            )
        finally:
            from blender_asset_tracer import blendfile

            blendfile.close_all_cached()


def _pack_locked(
    copy: Path,
    source: Path,
    pack_dir: Path,
    allow_missing: bool,
    project_root: str | os.PathLike[str] | None,
    progress: Callable[[int, int, str], None] | None,
    cancel: threading.Event | None,
    blender_missing: list[str] | None = None,
) -> PackResult:
    from blender_asset_tracer import pack as batpack
    from blender_asset_tracer import trace
    from blender_asset_tracer.blendfile import exceptions as bat_exceptions

    def check_cancel() -> None:
        if cancel is not None and cancel.is_set():
            raise SubmissionCancelled("Submission cancelled while packing; nothing was uploaded.")

    check_cancel()
    fix_bat_node_trees()
    fix_bat_sequencer_root_paths()
    zstd_readable()
    blend_dir = source.parent
    try:
        if project_root is not None:
            root = Path(project_root).resolve()
        else:
            deps = [_existing_base(u.abspath, u.is_sequence) for u in trace.deps(copy)]
            root = choose_project_root(blend_dir, [d for d in deps if d is not None])
        main_rel = source.relative_to(root)
    except (OSError, bat_exceptions.BlendFileError) as exc:
        raise _read_error(f"Cannot read {source.name} to find its files", source, exc) from None
    except ValueError:
        raise PackingError(f"The project root {root} does not contain {source}.") from None
    check_cancel()

    packer = make_packer(copy, root, str(pack_dir), main_rel)
    packer.progress_cb = PackCallback(packer, cancel, progress)
    try:
        with packer:
            packer.strategise()
            missing = verified_missing([str(p) for p in packer.missing_files], blender_missing)
            if missing and not allow_missing:
                raise MissingFilesError(missing_files_message(missing, root), missing)
            check_cancel()
            packer.execute()
    except batpack.Aborted as exc:
        check_cancel()
        raise PackingError(f"Packing {source.name} failed: {exc or 'a file could not be copied'}.") from None
    except (OSError, bat_exceptions.BlendFileError) as exc:
        raise _read_error(f"Cannot pack {source.name}", source, exc) from None
    check_cancel()

    result = PackResult(
        pack_dir=pack_dir,
        main_blend=main_rel.as_posix(),
        missing=missing,
        outside_project=sorted(
            str(p) for p in packer.dependency_paths() if not _is_within(p, blend_dir)
        ),
        project_root=str(root),
    )
    paths = sorted(p for p in pack_dir.rglob("*") if p.is_file() and p.name != "pack-info.txt")
    for done, path in enumerate(paths, 1):
        check_cancel()
        if path.suffix.lower() == ".blend":
            normalize_gzip_header(path)
        rel = path.relative_to(pack_dir).as_posix()
        result.files[rel] = sha256_file(path, check_cancel)
        result.sizes[rel] = path.stat().st_size
        if progress:
            progress(done, len(paths), rel)
    if result.main_blend not in result.files:
        raise PackingError(f"Packing {source.name} produced no main .blend file; please report this.")
    log.info(
        "packed %s: %d files, %d bytes, %d missing, %d outside %s",
        source.name, len(result.files), result.bytes_total, len(missing), len(result.outside_project), blend_dir,
    )  # fmt: skip
    return result


def _read_error(what: str, source: Path, exc: Exception) -> PackingError:
    """BAT could not read a .blend: "``what``: why", or what to do about a Zstandard file
    this Python cannot read (:mod:`.bat_zstd`)."""
    if is_unreadable_zstd(exc):
        return PackingError(UNREADABLE.format(name=source.name))
    return PackingError(f"{what}: {exc}")


def normalize_gzip_header(path: Path) -> bool:
    """Make a gzip-compressed file's header deterministic, in place: BAT recompresses the
    .blend files it rewrites with gzip, whose header holds the temporary file's name and
    the time, so the same scene packed twice would hash differently and be uploaded
    again. Clears the time and drops the name; the compressed data is untouched.
    Returns whether the file changed."""
    with open(path, "rb") as fh:
        head = fh.read(10)
        if len(head) < 10 or head[:3] != b"\x1f\x8b\x08":
            return False
        flags = head[3]
        if flags & 0b1110_0000:  # reserved bits: not a gzip header we understand
            return False
        if not flags & 0x08 and head[4:8] == b"\0\0\0\0":
            return False  # no name, no time: already deterministic
        rest = fh.read()
    pos = 0
    if flags & 0x04:  # FEXTRA
        pos += 2 + int.from_bytes(rest[0:2], "little")
    prefix = rest[:pos]
    if flags & 0x08:  # FNAME, zero-terminated
        pos = rest.index(b"\0", pos) + 1
    header = head[:3] + bytes([flags & ~0x08 & ~0x02]) + b"\0\0\0\0" + head[8:10]
    if flags & 0x02:  # a header CRC would no longer match: drop it with the name
        end_comment = pos
        if flags & 0x10:
            end_comment = rest.index(b"\0", pos) + 1
        body = rest[pos:end_comment] + rest[end_comment + 2 :]
    else:
        body = rest[pos:]
    tmp = path.with_name(path.name + ".abr-tmp")
    tmp.write_bytes(header + prefix + body)
    os.replace(tmp, path)
    return True


def verified_missing(bat_missing: list[str], blender_missing: list[str] | None) -> list[str]:
    """BAT's missing files, less the linked libraries that Blender's own path resolution
    found (BAT can resolve a path inside a linked library against the wrong folder).
    Other kinds stay BAT's word: Blender's list does not cover caches. All of BAT's when
    Blender's list is unknown."""
    if blender_missing is None:
        return sorted(bat_missing)
    confirmed = {os.path.normpath(p) for p in blender_missing}
    kept = sorted(p for p in bat_missing if os.path.normpath(p) in confirmed or not p.endswith(".blend"))
    for path in sorted(set(bat_missing) - set(kept)):
        log.info("BAT reports %s missing but Blender resolves it: not counted as missing", path)
    return kept


def missing_files_message(missing: list[str], root: Path) -> str:
    names = [_short(p, root) for p in missing]
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return (
        f"{len(missing)} file(s) the scene uses are missing: {shown}. Find them (File > External "
        "Data > Find Missing Files) or submit anyway with 'allow missing files'."
    )


def _short(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def _existing_base(path: Path, is_sequence: bool) -> Path | None:
    """The path a dependency occupies on disk (a sequence's folder), None when missing."""
    if "*" in str(path) or "<UDIM>" in path.name:
        return path.parent if path.parent.is_dir() else None
    if path.exists():
        return path
    if is_sequence and path.parent.is_dir():
        return path.parent
    return None


