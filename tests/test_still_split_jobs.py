"""A split still's contract (spec, versions, bad input), its CLI refusals, the local
backend end to end (render array, merge in place of the stitch, parts as progress) and
the AWS Batch merge job. The pixels are checked in test_still_split.py."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from still_split_helpers import local_path, pack_job, tune_scene

from addon.core.backends.aws_batch.job_requests import stitch_job_request
from addon.core.backends.local.backend import LocalBackend, wait
from addon.core.backends.status import JobStatus, progress_line
from addon.core.errors import JobSpecError
from addon.core.jobspec import JobSpec
from addon.core.still_split import (
    StillSplit,
    StillSplitError,
    check_request,
    part_of,
    part_range,
    split_slices,
)
from addon.core.storage import path_to_uri
from addon.core.submit.options import SubmitOptions
from addon.core.submit.scene import SceneSnapshot
from addon.core.submit.specbuild import build_spec
from tests.helpers import make_scene, make_spec
from worker import inner_still
from worker.exr_header import BadExr, check_part

ROOT = Path(__file__).resolve().parent.parent
#: the last commit before the split (schema version 1): its worker is "an older worker"
V1_COMMIT = "1753120"


def split_spec(parts: int = 4, frames: tuple[int, ...] = (7,)) -> JobSpec:
    spec = make_spec()
    spec.output.video = None
    spec.slices = split_slices(list(frames), parts)
    spec.still_split = StillSplit(parts=parts, frames=list(frames))
    spec.validate()
    return spec


# --- the contract ----------------------------------------------------------------------------


@given(st.integers(1, 5000), st.integers(1, 300))
def test_part_ranges_cover_every_sample_once_and_the_last_keeps_the_remainder(samples, parts):
    if parts > samples:
        with pytest.raises(ValueError):
            part_range(samples, parts, 0)
        return
    ranges = [part_range(samples, parts, i) for i in range(parts)]
    covered = [s for off, n in ranges for s in range(off, off + n)]
    assert covered == list(range(samples))
    assert all(n == samples // parts for _, n in ranges[:-1])
    assert ranges == [inner_still.part_range(samples, parts, i) for i in range(parts)]  # the in-Blender copy


def test_a_split_spec_round_trips_and_maps_slices_to_frame_and_part():
    spec = split_spec(parts=3, frames=(4, 9))
    again = JobSpec.from_json(spec.to_json())
    assert again.schema_version == 2 and again.still_split == StillSplit(3, [4, 9])
    assert again.frames == [4, 9]
    assert [part_of(again, i) for i in range(6)] == [(4, 0), (4, 1), (4, 2), (9, 0), (9, 1), (9, 2)]
    retry = split_spec(parts=3, frames=(4, 9))
    retry.slices = [[4], [9]]
    retry.extra["retry_of_slices"] = "1,5"  # a retry spec carries only the failed parts
    retry.validate()
    assert [part_of(retry, retry.original_slice(i)) for i in range(2)] == [(4, 1), (9, 2)]


def test_a_newer_worker_still_reads_version_1_specs():
    data = make_spec().to_dict()
    data["schema_version"] = 1
    data.pop("still_split")
    assert JobSpec.from_dict(data).still_split is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(schema_version=1), "needs schema_version 2"),
        (lambda d: d["still_split"].update(parts=1), "must be 2..256 (1 means no split)"),
        (lambda d: d["render"].update(engine="BLENDER_WORKBENCH"), "needs Cycles"),
        (lambda d: d.update(slices=[[7], [7], [7]]), "4 one-frame slices per frame"),
        (lambda d: d["still_split"].update(frames=[7, 7]), "each once"),
        (lambda d: d["output"].update(video={"fps_num": 24, "fps_den": 1, "width": 2, "height": 2}), "video"),
    ],
)
def test_bad_split_specs_are_refused_naming_the_field(change, message):
    data = split_spec().to_dict()
    change(data)
    with pytest.raises(JobSpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        JobSpec.from_dict(data)


def test_an_older_worker_refuses_a_split_spec_with_its_clear_message(tmp_path):
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", V1_COMMIT, "addon", "worker"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(tmp_path, filter="data")
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(split_spec().to_json())
    code = "import sys; from addon.core.jobspec import JobSpec; JobSpec.from_json(open(sys.argv[1]).read())"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(spec_file)], cwd=tmp_path, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode != 0
    assert "Job spec schema version 2 is newer than this worker understands (1); update the worker image" in (
        proc.stderr
    )


# --- bad input -------------------------------------------------------------------------------


def snapshot(engine: str = "CYCLES", **kw) -> SceneSnapshot:
    base = dict(blender_version="5.2.3", scene="Scene", frame_start=1, frame_end=1, frame_step=1, fps=24,
                fps_base=1.0, resolution_x=64, resolution_y=64, resolution_percentage=100, engine=engine)  # fmt: skip
    base.update(kw)
    return SceneSnapshot(**base)


def build(split: int, snap: SceneSnapshot | None = None, frames: str = "") -> JobSpec:
    from tests.helpers import SHA_A

    return build_spec(snap or snapshot(), SubmitOptions(split_samples=split, frames=frames), {"s.blend": SHA_A},
                      "s.blend", "file:///tmp/abr/", "sub-1", "2026-12-01T00:00:00+00:00", "0.1.0")  # fmt: skip


@pytest.mark.parametrize(("engine", "name"), [("BLENDER_EEVEE", "EEVEE"), ("BLENDER_EEVEE_NEXT", "EEVEE"),
                                              ("BLENDER_WORKBENCH", "Workbench")])  # fmt: skip
def test_eevee_and_workbench_are_refused(engine, name):
    with pytest.raises(StillSplitError, match=f"needs Cycles .* renders with {name}") as info:
        build(4, snapshot(engine))
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


def test_n_1_means_no_split_and_n_4_makes_four_parts_per_frame():
    plain = build(1)
    assert plain.still_split is None and plain.slices == [[1]] and plain.output.video is not None
    split = build(4, snapshot(file_format="OPEN_EXR"))
    assert split.still_split == StillSplit(4, [1]) and split.slices == [[1]] * 4
    assert split.output.video is None and split.output.image_format == "OPEN_EXR"  # the scene's own format
    with pytest.raises(StillSplitError, match="17 frames is more than 16"):
        build(2, snapshot(frame_end=17))
    with pytest.raises(StillSplitError, match="give 1"):
        check_request(0, "CYCLES", [1])


def test_cli_refuses_split_samples_for_workbench_before_packing(tmp_path, capsys):
    from addon.cli import main

    blend = make_scene(tmp_path / "wb.blend", "--frames", "1", "--engine", "BLENDER_WORKBENCH")
    code = main(["submit", str(blend), "--backend", "local", "--store", path_to_uri(tmp_path / "s", directory=True),
                 "--split-samples", "3"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "--split-samples needs Cycles (it splits the sample range); this scene renders with Workbench" in err
    assert not (tmp_path / "s").exists()  # nothing was packed or uploaded


def test_a_truncated_part_is_not_a_valid_exr():
    with pytest.raises(BadExr, match="not an OpenEXR"):
        check_part(b"\x89PNG....")


def test_status_shows_parts_as_progress():
    status = JobStatus(submission_id="poster-1", backend="local", state="RUNNING", frames_total=1, parts_total=8,
                       parts_done=3, chunk_counts={"RUNNING": 5, "SUCCEEDED": 3})  # fmt: skip
    assert progress_line(status) == "poster-1: 1 frame, 3 of 8 parts | chunks run 5 ok 3 | ETA -- | RUNNING"


# --- both backends ---------------------------------------------------------------------------


def test_aws_batch_runs_the_merge_in_place_of_the_stitch():
    request = stitch_job_request(split_spec(), "s3://b/spec.json", "render-1", job_queue="q", job_definition="stitch")
    assert request["containerOverrides"]["command"] == ["merge"]
    assert request["dependsOn"] == [{"jobId": "render-1"}]
    plain = stitch_job_request(make_spec(), "s3://b/spec.json", "render-1", job_queue="q", job_definition="stitch")
    assert "command" not in plain["containerOverrides"]


def test_local_backend_splits_merges_and_reports_parts(tmp_path):
    src = make_scene(tmp_path / "src.blend", "--frames", "1", "--size", "64x64")
    blend = tune_scene(src, tmp_path / "s.blend", 48, 48, 16, denoise=False)
    spec, spec_uri = pack_job(path_to_uri(tmp_path / "store", directory=True), blend, [1], 3,
                              image_format="PNG", submission_id="poster-local", size=(48, 48))  # fmt: skip
    backend = LocalBackend(concurrency=2)
    record = backend.submit(spec, spec_uri)
    status = wait(backend, record, timeout=300)
    assert status.state == "SUCCEEDED", (status, backend.logs(record, -1))
    assert status.stitch_state == "SUCCEEDED" and status.frames_done == 1
    assert (status.parts_total, status.parts_done) == (3, 3)
    assert "1 frame, 3 of 3 parts" in progress_line(status)
    from addon.core.jobspec import frame_from_name
    from addon.core.still_split import merged_uri, part_uri

    assert frame_from_name(merged_uri(spec, 1)) is None and frame_from_name(part_uri(spec, 1, 0)) is None
    assert local_path(merged_uri(spec, 1)).stat().st_size > 0
    final = local_path(spec.frame_uri(1)).read_bytes()
    assert final[:8] == b"\x89PNG\r\n\x1a\n"
    logs = sorted(p.name for p in (Path(record.jobs["state_dir"]) / "logs").iterdir())
    assert "merge-attempt-1.log" in logs and json.loads(Path(record.jobs["state_dir"], "state.json").read_text())


def test_local_backend_retries_a_killed_part_and_keeps_the_parts_already_rendered(tmp_path):
    """A part's worker and Blender killed mid-render (a reclaimed host): the supervisor runs
    that part again, the finished part is not rendered again, and the merge completes."""
    import os
    import signal
    import time

    from addon.core.backends.local.state import read_state
    from addon.core.still_split import part_uri

    src = make_scene(tmp_path / "src.blend", "--frames", "1", "--size", "48x48")
    blend = tune_scene(src, tmp_path / "s.blend", 48, 48, 600, denoise=False)  # ~seconds a part
    spec, spec_uri = pack_job(path_to_uri(tmp_path / "store", directory=True), blend, [1], 2,
                              image_format="PNG", submission_id="poster-kill", size=(48, 48))  # fmt: skip
    backend = LocalBackend(concurrency=1, max_attempts=3)
    record = backend.submit(spec, spec_uri)
    state_dir = Path(record.jobs["state_dir"])
    first = local_path(part_uri(spec, 1, 0))
    deadline = time.monotonic() + 240
    while True:  # part 0 done, part 1 rendering: kill part 1's worker and its Blender
        assert time.monotonic() < deadline, backend.logs(record, -1)
        state = read_state(state_dir)
        log = Path(state.slices[1].log) if state.slices[1].log else None
        if first.exists() and state.slices[1].pid and log and "Rendering part 2/2" in log.read_text():
            os.killpg(state.slices[1].pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    stamp = first.stat()
    assert not local_path(part_uri(spec, 1, 1)).exists()  # killed before its part was uploaded
    status = wait(backend, record, timeout=300)
    assert status.state == "SUCCEEDED", backend.logs(record, -1)
    assert (status.parts_total, status.parts_done) == (2, 2)
    state = read_state(state_dir)
    assert (state.slices[0].attempts, state.slices[1].attempts) == (1, 2)
    assert (first.stat().st_ino, first.stat().st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns)
    assert local_path(spec.frame_uri(1)).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_aws_batch_submits_the_part_array_and_the_merge_job(aws_settings, s3_bucket):
    from addon.core.storage import S3Store
    from tests.test_aws_batch_support import BUCKET, CallCounter, clients_of, create_batch_env

    env = create_batch_env(aws_settings)
    spec = make_spec(root=f"s3://{BUCKET}/", slices=split_slices([5], 4), still_split=StillSplit(4, [5]))
    spec.output.video = None
    spec.validate()
    spec_uri = spec.output.frames_uri.rsplit("frames/", 1)[0] + "spec.json"
    S3Store(aws_settings).put_bytes(spec.to_json().encode(), spec_uri)
    backend = env.backend()
    counter = CallCounter(*clients_of(backend))
    record = backend.submit(spec, spec_uri)
    render, merge = counter.params["SubmitJob"]
    assert render["arrayProperties"] == {"size": 4}  # one child per part
    assert merge["containerOverrides"]["command"] == ["merge"]
    assert merge["dependsOn"] == [{"jobId": record.jobs["render_job_id"]}]
    assert record.jobs["stitch_job_id"]
    status = backend.status(record)  # moto without Docker: every job SUCCEEDED at once
    assert (status.parts_total, status.parts_done) == (4, 4)
    assert "1 frame, 4 of 4 parts" in progress_line(status)


def test_more_parts_than_the_scenes_samples_is_refused_before_packing(tmp_path, capsys):
    from addon.cli import main

    with pytest.raises(StillSplitError, match="more parts than the scene's 4 samples") as info:
        check_request(5, "CYCLES", [1], samples=4)
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    check_request(4, "CYCLES", [1], samples=4)  # one sample per part is fine
    blend = make_scene(tmp_path / "cy.blend", "--frames", "1", "--samples", "4")
    code = main(["submit", str(blend), "--backend", "local", "--store", path_to_uri(tmp_path / "s", directory=True),
                 "--split-samples", "6"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--split-samples 6 is more parts than the scene's 4 samples" in err, err
    assert not (tmp_path / "s").exists()  # nothing was packed or uploaded


def test_the_aws_merge_job_gets_memory_for_n_full_size_exrs(aws_settings, s3_bucket):
    """A 6K still in 8 parts: 8 x 6144x3456 x 16 float channels (10.1 GiB) beside Blender; a
    small still keeps the stack's stitch memory. Seen by AWS Batch (moto) on the merge job."""
    from addon.core.aws.session import client
    from addon.core.still_split import merge_memory_mib
    from addon.core.storage import S3Store
    from tests.test_aws_batch_support import BUCKET, CallCounter, clients_of, create_batch_env

    env = create_batch_env(aws_settings)
    backend = env.backend()
    counter = CallCounter(*clients_of(backend))
    memory = {}
    for name, (w, h), parts in (("poster", (6144, 3456), 8), ("thumb", (64, 64), 4)):
        spec = make_spec(root=f"s3://{BUCKET}/", submission_id=name, slices=split_slices([5], parts),
                         still_split=StillSplit(parts, [5]))  # fmt: skip
        spec.output.video = None
        spec.render.width, spec.render.height = w, h
        spec.validate()
        spec_uri = spec.output.frames_uri.rsplit("frames/", 1)[0] + "spec.json"
        S3Store(aws_settings).put_bytes(spec.to_json().encode(), spec_uri)
        counter.reset()
        record = backend.submit(spec, spec_uri)
        render, merge = counter.params["SubmitJob"]
        assert "resourceRequirements" not in render["containerOverrides"]  # the parts keep the render memory
        assert merge["containerOverrides"]["command"] == ["merge"]
        (requirement,) = merge["containerOverrides"]["resourceRequirements"]
        assert requirement["type"] == "MEMORY"
        memory[name] = int(requirement["value"])
        assert memory[name] == merge_memory_mib(spec)
        (job,) = client("batch", aws_settings).describe_jobs(jobs=[record.jobs["stitch_job_id"]])["jobs"]
        # moto took the job with its overrides (its describe_jobs shows only the deprecated
        # 'memory' override, so the amount is checked in the request above)
        assert job["container"]["command"] == ["merge"] and job["dependsOn"] == merge["dependsOn"]
    exrs_mib = 8 * 6144 * 3456 * 16 * 4 / 2**20
    assert exrs_mib + 1024 < memory["poster"] <= exrs_mib + 2048, memory
    assert memory["thumb"] == 3500  # the stack's StitchMemoryMiB: a small still asks for no less


# --- the merge in the last part: when it is left to the merge job ------------------------------


def _waiting_child(tmp_path: Path):
    """A real child standing in for the part's waiting Blender: it records the stdin it gets."""
    from worker.blender_process import BlenderProcess

    got = tmp_path / "stdin.txt"
    code = "import sys; open(sys.argv[1], 'w').write(sys.stdin.read())"
    return BlenderProcess([sys.executable, "-c", code, str(got)]), got


@pytest.mark.parametrize("case", ["a part missing", "too little memory"])
def test_the_part_leaves_the_merge_to_the_merge_job(case, tmp_path, monkeypatch, caplog):
    from addon.core.still_split import merge_need_mib, part_uri
    from worker import merge as merge_mod
    from worker.job import StoreCache

    spec = make_spec(root=path_to_uri(tmp_path / "store", directory=True))
    spec.output.video = None
    spec.slices, spec.still_split = split_slices([1], 3), StillSplit(parts=3, frames=[1])
    for p in range(2 if case == "a part missing" else 3):
        path = local_path(part_uri(spec, 1, p))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not looked at")  # the gates come before the parts are read
    if case == "too little memory":
        monkeypatch.setattr(merge_mod, "memory_mib", lambda: merge_need_mib(spec) - 1)
    child, got = _waiting_child(tmp_path)
    caplog.set_level("INFO", logger="worker.merge")
    try:
        merged = merge_mod.merge_after_part(spec, 1, StoreCache(), tmp_path, tmp_path / "s.blend", child)
        assert child.wait().returncode == 0
    finally:
        child.kill()
    assert merged is False and got.read_text() == ""  # stdin closed without a merge job: Blender exits
    assert not local_path(spec.frame_uri(1)).exists()
    if case == "too little memory":
        assert f"the merge needs ~{merge_need_mib(spec)} MiB" in caplog.text


def test_merge_need_is_n_full_size_exrs_beside_blender():
    from addon.core.still_split import merge_memory_mib, merge_need_mib

    spec = split_spec(parts=8)
    spec.render.width, spec.render.height = 6144, 3456
    assert merge_need_mib(spec) == 1536 + -(-(8 * 6144 * 3456 * 16 * 4) // (1 << 20))
    assert merge_need_mib(spec) <= merge_memory_mib(spec)
