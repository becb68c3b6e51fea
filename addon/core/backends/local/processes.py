"""The local backend's processes: which pid is still ours, the environment in which the
supervisor and the workers import ``addon`` and ``worker``, and signalling and reaping
them. Nothing here touches bpy.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .state import PID_FILE, LocalBackendError


def supervisor_pid(state_dir: Path) -> int:
    """The live supervisor of ``state_dir``, or 0. A recorded pid that now belongs to some
    other process (pids are reused) is not ours: never signal it, never wait on it."""
    try:
        pid = int((Path(state_dir) / PID_FILE).read_text(encoding="utf-8").strip() or 0)
    except (OSError, ValueError):
        return 0
    return pid if runs(pid, "addon.core.backends.local.supervisor", str(state_dir)) else 0


def runs(pid: int, *needles: str) -> bool:
    """Whether ``pid`` is alive and its command line holds every needle (where /proc
    exists; elsewhere only whether it is alive)."""
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return True
    return all(n in cmdline for n in needles)


def import_root() -> Path:
    """A folder from which ``addon`` and ``worker`` import in a child Python.

    In a source checkout or a pip install that is the folder holding both packages. In an
    installed Blender extension the package is named ``aws_batch_render`` and carries the
    worker inside it (build_addon.py puts it there), so a small folder of symlinks exposes
    them under the names the worker and the supervisor import.
    """
    package = Path(__file__).resolve().parents[3]
    if package.name == "addon" and (package.parent / "worker").is_dir():
        return package.parent
    bundled_worker = package / "worker"
    if not bundled_worker.is_dir():
        raise LocalBackendError(
            f"The worker is not installed next to {package}: reinstall the add-on from a zip built by "
            "build_addon.py, or use a source checkout."
        )
    digest = hashlib.sha256(str(package).encode()).hexdigest()[:12]
    root = Path(tempfile.gettempdir()) / f"aws-batch-render-{os.getuid()}-{digest}"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, target in (("addon", package), ("worker", bundled_worker)):
        link = root / name
        if not (link.is_symlink() and link.resolve() == target):
            tmp_link = root / f".{name}-{os.getpid()}"
            tmp_link.unlink(missing_ok=True)
            tmp_link.symlink_to(target, target_is_directory=True)
            os.replace(tmp_link, link)
    return root


def process_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the supervisor and workers: ``addon`` and ``worker`` must import there."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(import_root()), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def reap_later(proc: subprocess.Popen[Any]) -> None:
    """Collect the supervisor's exit status when it ends, so it never lingers as a zombie."""
    import threading

    threading.Thread(target=proc.wait, name="abr-reap-supervisor", daemon=True).start()
