"""Which Python a Blender version's bpy wheel is built for, and so which Debian base the
worker image uses; read from the package index (its JSON API), not from a table here.

bpy 4.2-5.0 are cp311 wheels, 5.1+ cp313 (as published); a future bpy on another Python
needs only a Debian with that python3 in :data:`DEBIAN_FOR_PYTHON` (and a Dockerfile stage).
A released wheel's tag never changes, so answers are cached per version in the user's
cache folder; "5.2" (newest patch) is always asked afresh. No bpy here; stdlib only.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import AwsBatchRenderError

log = logging.getLogger(__name__)

#: the Debian release whose own python3 is that version (the Dockerfile's python-X.Y stages)
DEBIAN_FOR_PYTHON = {"3.11": "bookworm", "3.13": "trixie"}
#: the oldest Blender the extension supports (blender_manifest.toml's blender_version_min)
OLDEST_LINE = (4, 2)
#: the wheel the worker image installs (Batch runs x86_64 Linux)
_LINUX_WHEEL = re.compile(r"^bpy-(?P<version>[^-]+)-cp(?P<major>\d)(?P<minor>\d+)-[^-]+-manylinux\w*_x86_64\.whl$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")

Fetch = Callable[[str], dict[str, Any]]


class BpyWheelError(AwsBatchRenderError):
    """No usable bpy wheel for the asked Blender version (or the index could not be read).
    ``image_versions`` turns it into an ``ImagePublishError`` (exit 9) for the command line."""


def index_url() -> str:
    return os.environ.get("AWS_BATCH_RENDER_BPY_INDEX", "https://pypi.org/pypi").rstrip("/")


def fetch_json(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return {}
        raise BpyWheelError(f"The package index did not answer for {url}: HTTP {exc.code}.") from exc
    except (OSError, ValueError) as exc:
        raise BpyWheelError(f"Could not read the package index ({url}): {exc}. Check the network.") from exc


def python_from_wheels(filenames: Iterable[str]) -> str:
    """ "3.11" from the Linux x86_64 wheel's cp311 tag; "" when there is no such wheel."""
    found = sorted({f"{m['major']}.{m['minor']}" for m in map(_LINUX_WHEEL.match, filenames) if m})
    return found[-1] if found else ""


def wheel_python(version: str, *, fetch: Fetch = fetch_json, cache: Path | None = None) -> str:
    """The Python of bpy ``version``'s Linux wheel ("5.3.0" -> "3.13"), cached per version."""
    if not _VERSION.match(version or ""):
        raise BpyWheelError(f"Blender version {version!r} is not X.Y.Z (e.g. 5.2.3).")
    cache = cache or cache_file()
    known = _read_cache(cache)
    if version in known:
        return known[version]
    releases = _releases(fetch)
    python = python_from_wheels(f.get("filename", "") for f in releases.get(version, []))
    if not python:
        raise BpyWheelError(
            f"The package index has no Linux bpy wheel for Blender {version}: "
            f"pick a released version (see https://pypi.org/project/bpy/#history)."
        )
    _write_cache(cache, {**known, version: python})
    return python


def debian_suite(python: str) -> str:
    """The Debian release for a wheel's Python; one line saying what to do when there is none."""
    if python not in DEBIAN_FOR_PYTHON:
        raise BpyWheelError(
            f"No Debian base with Python {python} is known for the worker image: add one to "
            f"DEBIAN_FOR_PYTHON (addon/core/aws/bpy_wheels.py) and a python-{python} stage to the Dockerfile."
        )
    return DEBIAN_FOR_PYTHON[python]


def newest_patch(line: str, *, fetch: Fetch = fetch_json) -> str:
    """The newest released X.Y.Z of Blender ``line`` ("5.2") with a Linux bpy wheel."""
    versions = [
        v
        for v, files in _releases(fetch).items()
        if _VERSION.match(v)
        and v.rsplit(".", 1)[0] == line
        and python_from_wheels(f.get("filename", "") for f in files)
    ]
    if not versions:
        raise BpyWheelError(f"The package index has no Linux bpy wheel for Blender {line}: use X.Y.Z (e.g. 5.2.3).")
    return max(versions, key=lambda v: tuple(int(p) for p in v.split(".")))


def full_version(blender: str, *, fetch: Fetch = fetch_json) -> str:
    """ "5.2.3" as given; "5.2" -> its newest patch on the index. Older than 4.2 is refused."""
    if not re.match(r"^\d+\.\d+(\.\d+)?$", blender or ""):
        raise BpyWheelError(f"Blender version {blender!r} is not X.Y (e.g. 5.2) or X.Y.Z (e.g. 5.2.3).")
    if tuple(int(p) for p in blender.split(".")[:2]) < OLDEST_LINE:
        raise BpyWheelError(f"Blender {blender} is older than the oldest supported, 4.2: use 4.2 or newer.")
    return blender if _VERSION.match(blender) else newest_patch(blender, fetch=fetch)


def _releases(fetch: Fetch) -> dict[str, list[dict[str, Any]]]:
    """{version: [file info]} from the index's project JSON (one request for all versions)."""
    return fetch(f"{index_url()}/bpy/json").get("releases") or {}


def cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aws-batch-render" / "bpy-wheel-python.json"


def _read_cache(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, data: dict[str, str]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:  # a read-only home only costs a lookup next time
        log.info("could not cache bpy wheel tags in %s: %s", path, exc)
