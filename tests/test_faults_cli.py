"""Careless input and unlucky machines at the command line: each case ends in ONE line on
stderr that says what to do, with its own exit code, and never a traceback.

Real parts throughout: the CLI in-process (``addon.cli.main``) or as a child process, a
child Blender reading damaged .blend files, a read-only tmpfs mounted by the test, the moto
server for S3 and Batch, the real local backend.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from addon.cli import main
from addon.core import exitcodes
from addon.core.aws.session import client
from addon.core.backends.base import SubmissionRecord
from addon.core.backends.local.backend import LocalBackend, wait
from addon.core.errors import JobSpecError
from addon.core.jobspec import JobSpec
from addon.core.records import RecordStore
from addon.core.storage import FileStore, S3Store
from addon.core.submit.options import SubmitOptions
from tests.helpers import stage_submission
from tests.test_aws_batch_support import BUCKET, QUEUE, RENDER_DEF, STITCH_DEF, create_batch_env, write_spec
from tests.test_specbuild import build, snap

ROOT = Path(__file__).resolve().parent.parent


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    """The stderr of a failed command: exactly one 'error:' line (after any progress notes)
    and no traceback; returns that line."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert err.rstrip("\n").splitlines()[-1] == errors[0], err
    return errors[0]


# --- damaged .blend files -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["zero-byte", "random-bytes", "truncated", "garbage-header"])
def test_a_damaged_blend_gives_one_line_with_what_blender_said(kind, tiny_scene, tmp_path, capsys):
    blend = tmp_path / f"{kind}.blend"
    data = {
        "zero-byte": b"",
        "random-bytes": os.urandom(4096),
        "truncated": tiny_scene.read_bytes()[:3000],
        "garbage-header": b"BLENDER-v502 this is not a blend file at all",
    }[kind]
    blend.write_bytes(data)
    code, out, err = run(capsys, "submit", blend, "--backend", "local", "--store", f"file://{tmp_path}/store",
                         "--records", tmp_path / "records")
    assert code == 42 and out == ""
    line = one_line_error(err)
    assert f"Blender could not read the scene from {blend.name}: " in line
    assert "Open the file in Blender" in line
    said = line.split(f"{blend.name}: ", 1)[1]
    assert re.search(r"not supported|failed|Missing|truncated|read", said), line
    assert not (tmp_path / "store").exists(), "nothing is uploaded for an unreadable file"


# --- download target trouble ----------------------------------------------------------------------


@pytest.fixture
def local_record(tmp_path):
    """A local submission with three frames in its file:// store, recorded for the CLI."""
    blend = tmp_path / "scene.blend"
    blend.write_bytes(b"BLENDER stand-in: download never opens it")
    spec, spec_uri = stage_submission(tmp_path / "store", blend, [[1, 2, 3]], video=False,
                                      submission_id="sub-dl")
    for f in spec.frames:
        FileStore().put_bytes(b"p" * 100, spec.frame_uri(f))
    record = SubmissionRecord(
        submission_id=spec.submission_id, backend="local", spec_uri=spec_uri, created_at=spec.created_at,
        source_blend=str(blend), frames_total=3, slice_count=1, jobs={"state_dir": str(tmp_path / "gone")},
    )  # fmt: skip
    records = tmp_path / "records"
    RecordStore(records).save(record)
    return record, records


def test_download_into_a_read_only_folder(local_record, tmp_path, capsys):
    record, records = local_record
    mount = tmp_path / "ro"
    mount.mkdir()
    # Root ignores file modes, so a read-only mount it is (tests run as root; no root, no pass).
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)], check=True)
    try:
        code, _, err = run(capsys, "download", record.submission_id, "--dest", mount / "out", "--records", records)
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    assert code == 3
    line = one_line_error(err)
    assert "Read-only file system" in line and "--dest" in line


def test_download_to_a_dest_that_is_a_file(local_record, tmp_path, capsys):
    record, records = local_record
    dest = tmp_path / "a-file"
    dest.write_text("mine")
    code, _, err = run(capsys, "download", record.submission_id, "--dest", dest, "--records", records)
    assert code == 3
    line = one_line_error(err)
    assert "a file is in the way" in line and "--dest" in line
    assert dest.read_text() == "mine"


# --- broken local state files ---------------------------------------------------------------------


def test_a_corrupt_submission_record(tmp_path, capsys):
    records = tmp_path / "records"
    records.mkdir()
    (records / "sub-bad.json").write_text('{"submission_id": "sub-bad", "backend": ')
    code, _, err = run(capsys, "status", "sub-bad", "--records", records)
    assert code == 6
    line = one_line_error(err)
    assert "is damaged" in line and "delete it" in line
    code, out, _ = run(capsys, "list", "--records", records)  # the list skips it
    assert code == 0 and "No submissions" in out


def test_records_path_that_is_a_file_fails_before_anything_starts(tiny_scene, tmp_path, capsys):
    records = tmp_path / "records"
    records.write_text("not a folder")
    code, out, err = run(capsys, "submit", tiny_scene, "--backend", "local", "--store",
                         f"file://{tmp_path}/store", "--records", records)
    assert code == 3
    line = one_line_error(err)
    assert "Cannot save submission records" in line and "--records" in line
    assert "Reading the scene" not in err and out == ""
    assert not (tmp_path / "store").exists(), "no render was started"


def test_a_finished_local_render_cancel_says_so_and_garbage_state_is_one_line(tiny_scene, tmp_path, capsys):
    spec, spec_uri = stage_submission(tmp_path / "store", tiny_scene, [[1]], video=False, submission_id="sub-done")
    backend = LocalBackend()
    record = backend.submit(spec, spec_uri)
    assert wait(backend, record, timeout=120).state == "SUCCEEDED"
    records = tmp_path / "records"
    RecordStore(records).save(record)
    code, out, _ = run(capsys, "cancel", "sub-done", "--records", records)
    assert code == 0
    assert "had already finished (succeeded); nothing to cancel" in out and "Cancelled" not in out
    (Path(record.jobs["state_dir"]) / "state.json").write_bytes(os.urandom(64))
    code, _, err = run(capsys, "status", "sub-done", "--records", records)
    assert code == 7
    assert "state.json is damaged" in one_line_error(err)


# --- specs ----------------------------------------------------------------------------------------


def test_deeply_nested_spec_json_is_a_bad_spec(local_record, capsys):
    record, records = local_record
    deep = "[" * 200_000 + "]" * 200_000
    with pytest.raises(JobSpecError, match="not valid JSON"):
        JobSpec.from_json(deep)
    FileStore().put_bytes(deep.encode(), record.spec_uri)
    code, _, err = run(capsys, "download", record.submission_id, "--records", records)
    assert code == 2
    assert "The job spec is not valid JSON" in one_line_error(err)


@pytest.mark.parametrize("frame", [2_000_000, -3, 10**30])
def test_frame_numbers_outside_blenders_range_are_a_bad_spec(frame):
    data = build().to_dict()
    data["slices"] = [[1, 2], [frame]] if frame > 0 else [[frame, 1, 2]]
    with pytest.raises(JobSpecError, match=r"outside Blender's frame range 0\.\.1048574"):
        JobSpec.from_dict(data)


def test_a_worker_refuses_an_out_of_range_frame_as_content_error(tmp_path):
    """Before, frame 2000000 reached Blender and came back as a retryable 'finished without
    writing', retried for nothing. Now the worker exits with the content-error code."""
    blend = tmp_path / "scene.blend"
    blend.write_bytes(b"BLENDER stand-in: never opened")
    spec, spec_uri = stage_submission(tmp_path / "store", blend, [[1]], video=False)
    data = spec.to_dict()
    data["slices"] = [[2_000_000]]
    FileStore().put_bytes(json.dumps(data).encode(), spec_uri)
    env = {**os.environ, "JOB_SPEC_URI": spec_uri, "PYTHONPATH": str(ROOT)}
    env.pop("AWS_BATCH_JOB_ARRAY_INDEX", None)
    proc = subprocess.run([sys.executable, "-m", "worker", "render"], capture_output=True, text=True, env=env,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == exitcodes.CONTENT_ERROR, proc.stderr
    assert "outside Blender's frame range" in proc.stderr


def test_a_file_and_folder_clash_in_the_manifest_is_a_bad_spec():
    files = {"shots/a.blend": "a" * 64, "tex": "b" * 64, "tex/a.png": "c" * 64}
    with pytest.raises(JobSpecError, match=r"both 'tex' and 'tex/a\.png'"):
        build(manifest_files=files)


def test_resolution_percentage_too_low_names_the_scene_size_and_the_fix():
    with pytest.raises(JobSpecError) as caught:
        build(snap(resolution_x=64, resolution_y=36, resolution_percentage=1), SubmitOptions())
    text = str(caught.value)
    assert "64x36 at 1%" in text and "Resolution %" in text and "spec.output" not in text


# --- backend and store choices --------------------------------------------------------------------


def test_local_backend_with_an_s3_store(tiny_scene, tmp_path, capsys):
    code, _, err = run(capsys, "submit", tiny_scene, "--backend", "local", "--store", "s3://some-bucket/",
                       "--records", tmp_path / "records")
    assert code == 2
    line = one_line_error(err)
    assert "must be a file:/// URI" in line and "credentials" not in line


@pytest.fixture
def env(aws_settings, s3_bucket):
    return create_batch_env(aws_settings)


def test_a_missing_bucket_exits_25_as_the_readme_says(env, aws_settings, tmp_path, capsys):
    spec, spec_uri = write_spec(aws_settings)
    record = env.backend().submit(spec, spec_uri, source_blend="/projects/shot.blend")
    records = tmp_path / "records"
    RecordStore(records).save(record)
    s3 = client("s3", aws_settings)
    for obj in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    s3.delete_bucket(Bucket=BUCKET)
    code, _, err = run(capsys, "download", record.submission_id, "--dest", tmp_path / "dl", "--records", records)
    assert code == 25
    assert f"s3://{BUCKET} does not exist" in one_line_error(err)


def test_cancelling_a_succeeded_aws_submission_says_it_had_finished(env, aws_settings, tmp_path, capsys):
    spec, spec_uri = write_spec(aws_settings)
    record = env.backend().submit(spec, spec_uri)  # moto without Docker: every job succeeds at once
    records = tmp_path / "records"
    RecordStore(records).save(record)
    code, out, _ = run(capsys, "cancel", record.submission_id, "--records", records)
    assert code == 0
    assert "had already finished (succeeded); nothing to cancel" in out and "Cancelled" not in out
    assert "cancelled" not in RecordStore(records).load(record.submission_id).jobs


def test_a_timeout_below_aws_minimum_is_announced(env, aws_settings, tiny_scene, tmp_path, capsys):
    code, out, err = run(
        capsys, "submit", tiny_scene, "--frames", "1-2", "--bucket", BUCKET, "--queue", QUEUE,
        "--job-definition", RENDER_DEF, "--stitch-job-definition", STITCH_DEF, "--region", "us-east-1",
        "--endpoint-url", aws_settings.endpoint_url, "--timeout", "30", "--records", tmp_path / "records",
    )  # fmt: skip
    assert code == 0, err
    assert "--timeout 30 is sent as 60 s" in err and "Submitted" in out
    (record,) = RecordStore(tmp_path / "records").list()
    assert S3Store(aws_settings).exists(record.spec_uri)


# --- output -------------------------------------------------------------------------------------


def test_output_into_a_closed_pipe_ends_quietly(local_record):
    _record, records = local_record
    for i in range(3):
        RecordStore(records).save(SubmissionRecord(
            submission_id=f"sub-{i}", backend="local", spec_uri="file:///x/spec.json", created_at="", source_blend="",
            frames_total=1, slice_count=1,
        ))  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "addon.cli", "list", "--records", str(records)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    proc.stdout.close()  # the reader is gone before the first line, like `| head -0`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert err == ""


# --- the README's exit-code table -----------------------------------------------------------------


def _readme_codes() -> set[int]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("| code | meaning |", 1)[1].split("\n\n", 1)[0]
    codes: set[int] = set()
    for row in table.strip().splitlines()[1:]:
        cell = row.split("|")[1].strip()
        for part in cell.split(","):
            lo, _, hi = part.strip().partition("–")
            codes.update(range(int(lo), int(hi or lo) + 1))
    return codes


def _error_classes() -> list[type]:
    import importlib
    import pkgutil

    import addon.cli
    import addon.core
    from addon.core.errors import AwsBatchRenderError

    for package in (addon.core, addon.cli):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith("__main__"):  # running the CLI is not importing it
                importlib.import_module(info.name)
    found, todo = [], [AwsBatchRenderError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in found if c.__module__.startswith(("addon.core", "addon.cli"))]


def test_readme_exit_code_table_matches_the_code():
    from addon.cli.follow import WATCH_NOT_SUCCEEDED

    assert _readme_codes() == set(exitcodes.CLI) - {exitcodes.SUCCESS}
    produced = {cls.exit_code: cls for cls in _error_classes()}
    produced[WATCH_NOT_SUCCEEDED] = "status --watch"
    produced[exitcodes.CHECK_WARNINGS] = "check (warnings only: a return value, not an error)"
    missing = {code: cls for code, cls in produced.items() if code not in exitcodes.CLI}
    assert not missing, f"exit codes the CLI can return but the table lacks: {missing}"
    # Every listed code is really returned by something (2 and 130 also by argparse / Ctrl+C).
    assert set(exitcodes.CLI) - set(produced) - {exitcodes.SUCCESS} == set()
    from addon.core.aws.errors import BucketNotFoundError
    from addon.core.errors import StorageError

    assert BucketNotFoundError.exit_code == 25 and exitcodes.CLI[25] == "AWS: bucket missing"
    assert issubclass(BucketNotFoundError, StorageError)  # workers still treat it as storage trouble
