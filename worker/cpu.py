"""How many threads a render may use: the container's CPU quota, not the host's cores.

An AWS Batch vCPU reservation is CPU shares, not a cap; Blender left alone starts one
thread per host core and fights its neighbours. Pure parsers, plus one reader of the
cgroup files.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def parse_cpu_max(text: str) -> int | None:
    """cgroup v2 ``cpu.max`` (``"200000 100000"`` -> 2; ``"max 100000"`` -> None)."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def parse_cfs(quota_text: str, period_text: str) -> int | None:
    """cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota -1 = no limit)."""
    try:
        quota, period = int(quota_text.strip()), int(period_text.strip())
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def container_cpu_limit(root: Path = CGROUP_ROOT) -> int | None:
    """CPUs the container's cgroup allows, or None when there is no quota."""
    try:
        return parse_cpu_max((root / "cpu.max").read_text())
    except OSError:
        pass
    for v1 in (root / "cpu", root / "cpu,cpuacct"):
        try:
            return parse_cfs((v1 / "cpu.cfs_quota_us").read_text(), (v1 / "cpu.cfs_period_us").read_text())
        except OSError:
            continue
    return None


def render_threads(requested: int, root: Path = CGROUP_ROOT, environ: Mapping[str, str] | None = None) -> int:
    """The spec's thread count if set, else ``RENDER_THREADS`` (the job's vCPUs: on Batch a
    vCPU reservation is CPU shares, not a quota, so cpu.max says nothing), else the CPU
    quota, else the CPUs this process may use."""
    if requested > 0:
        return requested
    env = os.environ if environ is None else environ
    raw = env.get("RENDER_THREADS", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    limit = container_cpu_limit(root)
    if limit:
        return limit
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
