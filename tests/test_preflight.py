"""Preflight: ``check`` and ``submit``'s check before packing, on scenes made with bpy.

Three generated scenes keep the child-Blender starts few: ``bad`` triggers most findings
at once, ``clean`` none, ``sequencer`` has no camera but renders the sequencer.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from addon.cli import main
from addon.core.exitcodes import CHECK_ERRORS, SUCCESS
from addon.core.submit import preflight
from addon.core.submit.preflight import CheckContext, check_scene
from addon.core.submit.scene_reader import read_scene
from tests.helpers import bpy_script_argv

SCENES = Path(__file__).resolve().parent / "preflight_scenes.py"


def make(path: Path, kind: str) -> Path:
    proc = subprocess.run(bpy_script_argv(SCENES, str(path), kind), capture_output=True, text=True, timeout=180)
    assert path.is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return path


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("preflight")
    return {kind: make(folder / kind / f"{kind}.blend", kind) for kind in ("bad", "clean", "sequencer")}


@pytest.fixture(scope="module")
def snaps(scenes) -> dict:
    return {kind: read_scene(path) for kind, path in scenes.items() if kind != "bad"}


def run_check(capsys, *args: str) -> tuple[int, str]:
    code = main(["check", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_bad_scene_reports_every_finding_with_its_code_and_fix(scenes, capsys):
    code, out = run_check(capsys, scenes["bad"], "--backend", "local")
    assert code == CHECK_ERRORS, out
    lines = {line.rsplit("[", 1)[1].rstrip("]"): line for line in out.splitlines() if line.endswith("]")}
    assert lines["NO_CAMERA"].startswith("error:") and "Camera" in lines["NO_CAMERA"]
    assert "0x0 px (4x36 at 1%)" in lines["RENDER_SIZE"] or "0x0 px (4x36 at 1%)" in lines["RENDER_SIZE"]
    assert lines["MOVIE_OUTPUT"].startswith("info:") and "stitched" in lines["MOVIE_OUTPUT"]
    sims = lines["SIM_NOT_BAKED"]
    assert sims.startswith("error:") and "bake first" in sims
    assert "Rigid Body World" in sims and "Cloth / Cloth (cloth)" in sims and "Soft / Softbody" in sims
    assert "and more" in sims  # particles, fluid, Geometry Nodes: counted in the facts below
    assert lines["PYTHON_AUTORUN"].startswith("warning:")
    assert "Driven" in lines["PYTHON_AUTORUN"] and "rig_ui.py" in lines["PYTHON_AUTORUN"]
    assert lines["ADDON_NODES"].startswith("warning:") and "AddonTree" in lines["ADDON_NODES"]
    assert "EEVEE_ON_CPU" not in lines and "NO_GPU_QUEUE" not in lines


def test_bad_scene_facts_name_each_unbaked_simulation(scenes):
    snap = read_scene(scenes["bad"])  # the add-on's path: the same snapshot, in-process there
    kinds = {s["kind"]: s["baked"] for s in snap.facts["simulations"]}
    assert kinds == {
        "rigid_body": False, "cloth": False, "soft_body": False, "particles": False, "fluid": False,
        "geometry_nodes": False,
    }  # fmt: skip
    # a render range that ends before every simulation starts needs no bake
    later = dataclasses.replace(snap, frame_start=1, frame_end=1)
    assert "SIM_NOT_BAKED" not in check_scene(later).codes
    # the add-on names the panel's checkbox, the CLI the flag
    missing = dataclasses.replace(snap, missing_files=["/x/tex/wood.png"])
    assert "--allow-missing" in _msg(check_scene(missing), "MISSING_FILES")
    assert "Allow missing files" in _msg(check_scene(missing, CheckContext(where="panel")), "MISSING_FILES")
    allowed = check_scene(missing, CheckContext(allow_missing=True))
    assert [f.severity for f in allowed.findings if f.code == "MISSING_FILES"] == ["warning"]


def _msg(report: preflight.CheckReport, code: str) -> str:
    return next(f.message for f in report.findings if f.code == code)


def test_clean_scene_has_nothing_to_fix(scenes, capsys):
    code, out = run_check(capsys, scenes["clean"], "--backend", "local")
    assert code == SUCCESS, out
    assert "nothing to fix" in out


def test_sequencer_scene_needs_no_camera(snaps):
    snap = snaps["sequencer"]
    assert not snap.has_camera and snap.facts["sequencer"] is True
    assert check_scene(snap).codes == ["PYTHON_AUTORUN"]  # its driver, nothing about a camera
    # the same scene with the sequencer off needs a camera
    off = dataclasses.replace(snap, facts={**snap.facts, "sequencer": False})
    assert check_scene(off).codes == ["NO_CAMERA", "PYTHON_AUTORUN"]


def test_engine_device_and_memory_checks(snaps):
    snap = snaps["clean"]
    eevee = dataclasses.replace(snap, engine="BLENDER_EEVEE")
    report = check_scene(eevee, CheckContext(backend="aws", worker_has_gpu=False))
    assert "10-40 s" in _msg(report, "EEVEE_ON_CPU") and report.blocking() == []
    gpu = dataclasses.replace(snap, engine="CYCLES", device="GPU")
    assert "NO_GPU_QUEUE" in check_scene(gpu, CheckContext(backend="aws", gpu_queue=False)).codes
    assert "NO_GPU_QUEUE" not in check_scene(gpu, CheckContext(backend="aws", gpu_queue=True)).codes
    # the hook for the quote's scout render: a measured peak above the job's memory
    over = check_scene(snap, CheckContext(peak_memory_mib=9000, memory_mib=8192))
    assert "--memory 11250" in _msg(over, "MEMORY_OVER_LIMIT")
    assert over.blocking(ignore=["MEMORY_OVER_LIMIT"]) == []
    assert check_scene(snap, CheckContext(peak_memory_mib=4000, memory_mib=8192)).findings == []


def test_worker_auto_exec_policy_is_the_one_the_check_assumes():
    from worker.inner_render import AUTO_EXEC_SCRIPTS

    assert preflight.WORKER_AUTO_EXEC == AUTO_EXEC_SCRIPTS


def test_submit_stops_before_packing_and_leaves_the_store_empty(scenes, tmp_path, capsys):
    store = tmp_path / "store"
    store.mkdir()
    records = tmp_path / "records"
    code = main([
        "submit", str(scenes["bad"]), "--backend", "local", "--store", store.as_uri() + "/",
        "--records", str(records), "--ignore", "SIM_NOT_BAKED",
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == CHECK_ERRORS, err
    assert "nothing was uploaded" in err.splitlines()[-1]
    assert "has no active camera" in err.splitlines()[-1]
    assert list(store.rglob("*")) == []
    assert not records.exists() or list(records.rglob("*.json")) == []
