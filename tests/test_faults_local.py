"""Faults injected for real into the local backend: the supervisor SIGKILLed mid-render,
`retry` while a process of the render still runs, status read while the supervisor starts,
and a hostile folder where the installed extension's import links live.

Real supervisor, real workers, real Blender (bpy) and real processes throughout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from addon.cli import main
from addon.core.backends.local.backend import LocalBackend, wait
from addon.core.backends.local.processes import submission_processes, supervisor_pid, write_supervisor_pid
from addon.core.backends.local.state import RetryWhileRunningError, read_state, write_state
from addon.core.records import RecordStore
from tests.helpers import make_scene, stage_submission
from tests.test_local_backend import frame_files

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def slow_scene(tmp_path_factory) -> Path:
    """Frames slow enough (~1 s each) that a test can act while a slice renders."""
    return make_scene(tmp_path_factory.mktemp("slow") / "slow.blend", "--frames", "6", "--size", "160x90",
                      "--samples", "32")


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _rendered_counts(state_dir: Path) -> dict[int, int]:
    """How many times each frame was rendered, from every worker log of the submission."""
    counts: dict[int, int] = {}
    for log in (state_dir / "logs").glob("slice-*.log"):
        for m in re.finditer(r"Frame (\d+) rendered", log.read_text(errors="replace")):
            counts[int(m.group(1))] = counts.get(int(m.group(1)), 0) + 1
    return counts


def test_sigkill_of_the_supervisor_takes_its_workers_and_retry_renders_each_frame_once(slow_scene, tmp_path):
    spec, spec_uri = stage_submission(tmp_path / "store", slow_scene, [range(1, 4), range(4, 7)], video=False,
                                      size=(160, 90), submission_id="sub-sigkill")
    backend = LocalBackend(concurrency=2)
    record = backend.submit(spec, spec_uri)
    state_dir = Path(record.jobs["state_dir"])
    _wait_for(lambda: frame_files(spec), 120, "the first frame")
    supervisor = supervisor_pid(state_dir)
    assert supervisor and submission_processes(spec_uri)
    os.kill(supervisor, signal.SIGKILL)  # the supervisor alone, as the OOM killer would
    # Its workers (and their Blenders) stop by themselves, keeping the frames they finished.
    _wait_for(lambda: not submission_processes(spec_uri), 30, "the orphaned workers to stop")
    before = frame_files(spec)
    assert 0 < len(before) < 6, "the render must be cut mid-way"
    status = backend.status(record)
    assert status.state == "FAILED" and "stopped unexpectedly" in status.message
    backend.retry_failed(record)
    status = wait(backend, record, timeout=300)
    assert status.state == "SUCCEEDED", backend.logs(record)
    after = frame_files(spec)
    assert sorted(after) == list(range(1, 7))
    for frame, st in before.items():  # finished frames were neither rendered nor written again
        assert (after[frame].st_ino, after[frame].st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    counts = _rendered_counts(state_dir)
    assert sorted(counts) == list(range(1, 7))
    assert max(counts.values()) == 1, f"frames rendered twice: {counts}"


def _orphan(spec_uri: str) -> subprocess.Popen:
    """A real process of the submission left running (as a worker outliving its supervisor)."""
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"],
        env={**os.environ, "JOB_SPEC_URI": spec_uri}, start_new_session=True,
    )  # fmt: skip


def _stopped_supervisor_with_a_running_slice(tmp_path, scene: Path):
    spec, spec_uri = stage_submission(tmp_path / "store", scene, [[1, 2]], video=False,
                                      submission_id="sub-orphan")
    backend = LocalBackend()
    record = backend.submit(spec, spec_uri)
    assert wait(backend, record, timeout=120).state == "SUCCEEDED"
    state_dir = Path(record.jobs["state_dir"])
    _wait_for(lambda: not supervisor_pid(state_dir), 30, "the supervisor to exit after its last write")
    state = read_state(state_dir)  # rewind to "RUNNING" with the supervisor gone, as after a SIGKILL
    state.state, state.stopped_at = "RUNNING", 0.0
    state.slices[0].state = "RUNNING"
    write_state(state_dir, state)
    old = time.time() - 120  # not a render that is just starting
    os.utime(state_dir / "state.json", (old, old))
    return backend, record, spec_uri


def test_retry_refuses_and_status_stays_running_while_a_process_of_the_render_lives(
    tiny_scene, tmp_path, capsys
):
    orphan = None
    try:
        backend, record, spec_uri = _stopped_supervisor_with_a_running_slice(tmp_path, tiny_scene)
        orphan = _orphan(spec_uri)
        state_dir = Path(record.jobs["state_dir"])
        state = read_state(state_dir)
        state.slices[0].pid = orphan.pid
        write_state(state_dir, state)
        os.utime(state_dir / "state.json", (time.time() - 120,) * 2)
        status = backend.status(record)
        assert status.state == "RUNNING", status
        assert "still running" in status.message and "stopped unexpectedly" not in status.message
        with pytest.raises(RetryWhileRunningError, match=r"still running .*pid"):
            backend.retry_failed(record)
        records = tmp_path / "records"
        RecordStore(records).save(record)
        code = main(["retry", record.submission_id, "--records", str(records)])
        _, err = capsys.readouterr()
        assert code == 33
        assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
        assert not supervisor_pid(state_dir), "retry must not start a second supervisor"
    finally:
        if orphan is not None:
            orphan.kill()
            orphan.wait()
    # With the process gone the render is honestly FAILED, and retry works.
    status = backend.status(record)
    assert status.state == "FAILED" and "stopped unexpectedly" in status.message


def test_status_trusts_a_supervisor_whose_command_line_is_not_readable_yet(tiny_scene, tmp_path):
    """Right after Popen returns the new process may still be exec'ing: its /proc cmdline
    reads empty or as the parent's. Status must not call it 'stopped unexpectedly'."""
    backend, record, _ = _stopped_supervisor_with_a_running_slice(tmp_path, tiny_scene)
    state_dir = Path(record.jobs["state_dir"])
    # A live process whose command line is not the supervisor's, recorded as the submitter does.
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        write_supervisor_pid(state_dir, stand_in.pid)
        assert supervisor_pid(state_dir) == stand_in.pid
        status = backend.status(record)
        assert status.state == "RUNNING" and "stopped" not in status.message
    finally:
        stand_in.kill()
        stand_in.wait()
    # A reused pid (same number, another start time) is still not taken for it.
    (state_dir / "supervisor.pid").write_text(f"{os.getpid()} 1")
    assert supervisor_pid(state_dir) == 0


def test_a_submission_just_written_is_starting_not_stopped(tiny_scene, tmp_path):
    """state.json is written before the supervisor's pid: a reader in between sees a start."""
    backend, record, _ = _stopped_supervisor_with_a_running_slice(tmp_path, tiny_scene)
    state_dir = Path(record.jobs["state_dir"])
    state = read_state(state_dir)
    state.state = "SUBMITTED"
    state.slices[0].state, state.slices[0].pid = "PENDING", 0
    write_state(state_dir, state)  # fresh: written a moment ago
    (state_dir / "supervisor.pid").unlink()
    status = backend.status(record)
    assert status.state != "FAILED" and "stopped" not in status.message


# --- the import folder of the installed extension ------------------------------------------------


def _installed_extension(tmp_path: Path) -> Path:
    ext = tmp_path / "extensions" / "user_default" / "aws_batch_render"
    shutil.copytree(ROOT / "addon", ext, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "worker", ext / "worker", ignore=shutil.ignore_patterns("__pycache__"))
    return ext


def _process_env_in_child(ext: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "from aws_batch_render.core.backends.local.processes import process_env;"
        "print(json.dumps(process_env()))"
    )
    return subprocess.run([sys.executable, "-I", "-c", code, str(ext.parent)], capture_output=True, text=True,
                          timeout=60, env=env, cwd=ext.parent)


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XDG_RUNTIME_DIR")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return env


def test_import_links_live_in_a_private_folder(tmp_path):
    ext = _installed_extension(tmp_path)
    env = _clean_env(tmp_path)
    env.pop("XDG_CACHE_HOME")
    env["HOME"] = str(tmp_path / "home")
    out = _process_env_in_child(ext, env)
    assert out.returncode == 0, out.stderr
    root = Path(json.loads(out.stdout)["PYTHONPATH"].split(os.pathsep)[0])
    assert root.is_relative_to(tmp_path / "home" / ".cache"), root
    for folder in (root, root.parent):
        st = folder.lstat()
        assert st.st_uid == os.getuid() and st.st_mode & 0o777 == 0o700, (folder, oct(st.st_mode))
    assert (root / "addon").resolve() == ext.resolve()


@pytest.mark.parametrize("hostile", ["another-user", "open-mode", "symlink"])
def test_a_hostile_import_folder_is_refused(tmp_path, hostile):
    ext = _installed_extension(tmp_path)
    env = _clean_env(tmp_path)
    first = _process_env_in_child(ext, env)  # learn where the folder is
    assert first.returncode == 0, first.stderr
    root = Path(json.loads(first.stdout)["PYTHONPATH"].split(os.pathsep)[0])
    shutil.rmtree(root)
    evil = tmp_path / "evil"
    (evil / "addon").mkdir(parents=True)
    if hostile == "symlink":
        root.symlink_to(evil, target_is_directory=True)
    else:
        root.mkdir(mode=0o777)
        os.chmod(root, 0o777)
        (root / "addon").symlink_to(evil / "addon", target_is_directory=True)
        if hostile == "another-user":
            os.chown(root, 65534, 65534)  # tests run as root: the folder now belongs to 'nobody'
            os.chmod(root, 0o700)
    out = _process_env_in_child(ext, env)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert "Refusing to use" in last and "private folder" in last, out.stderr
    # Nothing was redirected through the planted link.
    assert (root / "addon").resolve() == (evil / "addon").resolve()
