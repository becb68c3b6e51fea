"""Shared by the image tier's tests (tests/test_image_*.py, marker ``image``): buildah on the
CI cache's storage, the images scripts/image_tier.sh builds, running commands inside them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMAGE_CACHE = Path(os.environ.get("AWS_BATCH_RENDER_IMAGE_CACHE", "/var/cache/aws-batch-render-ci"))
WORKER_IMAGE = "localhost/aws-batch-render-worker"
#: the Blender versions the Dockerfile has a stage for, and the Python each image must have
VERSIONS = {"5.2.3": "3.13", "4.5.15": "3.11"}


def bh_argv(*args: str) -> list[str]:
    """buildah on the storage scripts/image_common.sh's ``bh`` uses."""
    return ["buildah", "--root", str(IMAGE_CACHE / "storage"), "--runroot", str(IMAGE_CACHE / "runroot"),
            "--storage-driver", "overlay", *args]  # fmt: skip


def bh(*args: str, timeout: float = 120) -> str:
    proc = subprocess.run(bh_argv(*args), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"buildah {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc.stdout


def image_ref(version: str) -> str:
    ref = f"{WORKER_IMAGE}:{version}"
    if shutil.which("buildah") is None:
        pytest.fail("buildah is not installed: run scripts/image_tier.sh, which installs it and builds the images")
    found = subprocess.run(bh_argv("inspect", "--type", "image", ref), capture_output=True, text=True)
    if found.returncode != 0:
        pytest.fail(f"{ref} is not built: run scripts/image_tier.sh {version}")
    return ref


def image_size(ref: str) -> int:
    """Uncompressed size in bytes: the sum of the image's layers (tar, as stored locally)."""
    manifest = json.loads(bh("inspect", "--type", "image", ref))["Manifest"]
    manifest = json.loads(manifest) if isinstance(manifest, str) else manifest
    return sum(int(layer["size"]) for layer in manifest["layers"])


@contextmanager
def container(ref: str) -> Iterator[str]:
    """A working container of ``ref``; removed afterwards."""
    name = bh("from", "--pull=never", ref).strip().splitlines()[-1]
    try:
        yield name
    finally:
        subprocess.run(bh_argv("rm", name), capture_output=True)


def run_in(ctr: str, *cmd: str, env: dict[str, str] | None = None, volumes: tuple[Path, ...] = (),
           timeout: float = 300) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run ``cmd`` in the container as its USER, with each volume bind-mounted at the same path."""
    argv = ["run", "--isolation", "chroot"]
    for key, value in (env or {}).items():
        argv += ["--env", f"{key}={value}"]
    for vol in volumes:
        argv += ["--volume", f"{vol}:{vol}"]
    return subprocess.run(bh_argv(*argv, ctr, "--", *cmd), capture_output=True, text=True, timeout=timeout)
