"""The local backend's processes: which pid is still ours, the environment in which the
supervisor and the workers import ``addon`` and ``worker``, and signalling and reaping
them. Nothing here touches bpy.

A process is recognised by its pid *and* its start time (``/proc/<pid>/stat``), recorded
when it was started: pids are reused, and a command line is not a reliable name (it reads
empty for an instant while a new process execs). Workers die with the supervisor that
started them: on Linux each gets a parent-death signal (SIGTERM, which the worker answers
by keeping the frames it finished and stopping Blender).
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .state import PID_FILE, LocalBackendError

_PR_SET_PDEATHSIG = 1


def start_time(pid: int) -> str:
    """``pid``'s start time in clock ticks since boot ("" where /proc is missing or it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def write_supervisor_pid(state_dir: Path, pid: int) -> None:
    """Record the supervisor as "pid start-time", atomically: a reader never sees half of it."""
    path = Path(state_dir) / PID_FILE
    tmp = path.with_name(f".{PID_FILE}.{os.getpid()}")
    tmp.write_text(f"{pid} {start_time(pid)}".strip(), encoding="utf-8")
    os.replace(tmp, path)


def supervisor_pid(state_dir: Path) -> int:
    """The live supervisor of ``state_dir``, or 0. A recorded pid that now belongs to some
    other process (pids are reused) is not ours: never signal it, never wait on it."""
    try:
        fields = (Path(state_dir) / PID_FILE).read_text(encoding="utf-8").split()
        pid = int(fields[0]) if fields else 0
    except (OSError, ValueError):
        return 0
    if len(fields) > 1 and Path("/proc/self/stat").exists():
        return pid if pid_alive(pid) and start_time(pid) == fields[1] else 0
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


def submission_processes(spec_uri: str, pids: Iterable[int] = ()) -> list[int]:
    """Live processes of a submission: every worker, Blender and ffmpeg started for it
    carries ``JOB_SPEC_URI=<spec_uri>`` in its environment. Without /proc, the recorded
    worker ``pids`` that are still alive."""
    proc = Path("/proc")
    if not (proc / "self" / "environ").exists():
        return [p for p in pids if pid_alive(p)]
    marker = b"\0JOB_SPEC_URI=" + spec_uri.encode() + b"\0"
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = b"\0" + (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when the process that started it
    dies, however it dies (Linux); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def import_root() -> Path:
    """A folder from which ``addon`` and ``worker`` import in a child Python.

    In a source checkout or a pip install that is the folder holding both packages. In an
    installed Blender extension the package is named ``aws_batch_render`` and carries the
    worker inside it (build_addon.py puts it there), so a small folder of symlinks exposes
    them under the names the worker and the supervisor import. That folder is private
    (see :func:`private_folder`): whoever could swap its links would run code as this user.
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
    root = private_folder(f"import-{digest}")
    for name, target in (("addon", package), ("worker", bundled_worker)):
        link = root / name
        if not (link.is_symlink() and link.resolve() == target):
            tmp_link = root / f".{name}-{os.getpid()}"
            tmp_link.unlink(missing_ok=True)
            tmp_link.symlink_to(target, target_is_directory=True)
            os.replace(tmp_link, link)
    return root


def private_folder(name: str) -> Path:
    """``<runtime or cache dir>/aws-batch-render/<name>``, made with mode 0700 and refused
    unless it is a real folder owned by this user that nobody else can enter."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and _private(Path(runtime)):
        base = Path(runtime)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base / "aws-batch-render" / name
    try:
        folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise LocalBackendError(f"Cannot create {folder}: {exc.strerror or exc}; check that folder.") from None
    for path in (folder.parent, folder):
        if not _private(path):
            st = path.lstat()
            what = "a link" if stat.S_ISLNK(st.st_mode) else f"owned by uid {st.st_uid}, mode {st.st_mode & 0o777:o}"
            raise LocalBackendError(
                f"Refusing to use {path}: it is {what}, not a private folder of this user (uid {os.getuid()}, "
                "mode 700). Delete it (or set XDG_CACHE_HOME elsewhere) and try again."
            )
    return folder


def _private(path: Path) -> bool:
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


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
