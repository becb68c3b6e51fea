"""Preflight, one test per finding: a scene made with bpy at test time that triggers it
(and nothing else), checked through ``aws-batch-render check``, and the clean scene that
does not, checked the same way. The scenes are made in one Blender start
(``preflight_scenes.py DIR findings``)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from addon.cli import main
from addon.core.exitcodes import CHECK_ERRORS, CHECK_WARNINGS, SUCCESS
from addon.core.submit.packed_bakes import settle_packed_bakes
from addon.core.submit.preflight import CheckContext, check_scene
from addon.core.submit.scene_reader import read_scene
from tests.helpers import bpy_script_argv
from tests.test_preflight import SCENES

EXIT = {"error": CHECK_ERRORS, "warning": CHECK_WARNINGS, "info": SUCCESS}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("findings")
    proc = subprocess.run(bpy_script_argv(SCENES, str(out), "findings"), capture_output=True, text=True, timeout=300)
    assert (out / "fluid.blend").is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


def check(capsys, blend: Path, *args: str) -> tuple[int, dict[str, dict]]:
    code = main(["check", str(blend), "--json", *args])
    out = capsys.readouterr().out
    return code, {f["code"]: f for f in json.loads(out)["findings"]}


@pytest.fixture(scope="module")
def clean(folder) -> dict:
    snap = read_scene(folder / "clean.blend")
    return {b: check_scene(snap, CheckContext(backend=b, worker_has_gpu=False)) for b in ("local", "aws")}


SIMS = {
    "cloth": "Cloth / Cloth (cloth)", "soft_body": "Soft / Softbody (soft body)",
    "particles": "Emitter / Particles (particle system)", "rigid_body": "Rigid Body World (rigid body world)",
    "geometry_nodes": "GeoSim / GeoSim (Geometry Nodes simulation)", "fluid": "Domain / Fluid (fluid/smoke domain)",
}  # fmt: skip
CASES = [
    ("NO_CAMERA", "no_camera", "local", ["has no active camera (it has Camera, none is active)", "Scene properties"]),
    ("RENDER_SIZE", "zero_size", "local", ["0x0 px (4x36 at 1%)", "raise the resolution or the percentage"]),
    ("MOVIE_OUTPUT", "movie", "local", ["rendered as frames and stitched"]),
    ("MISSING_FILES", "missing_texture", "local", ["1 file(s)", "gone.png", "--allow-missing"]),
    *[("SIM_NOT_BAKED", kind, "local", [label, "frames 1-4 would differ: bake first"]) for kind, label in SIMS.items()],
    # the default bake target (packed into the file): the check reads the saved file to tell
    ("SIM_NOT_BAKED", "gn_packed", "local", [SIMS["geometry_nodes"], "bake first"]),
    ("PYTHON_AUTORUN", "python_driver", "local", ["Driven", "the worker keeps off"]),
    ("PYTHON_AUTORUN", "material_driver", "local", ["Driven Wood", "the worker keeps off"]),
    ("PYTHON_AUTORUN", "script", "local", ["rig_ui.py", "the worker keeps off"]),
    ("ADDON_NODES", "addon_node", "local", ["AddonTree: tree type"]),
    ("ADDON_PROPS", "addon_props", "local", ["Scene Scene: abr_test_settings", "apply their result"]),
    ("EEVEE_ON_CPU", "eevee", "aws", ["10-40 s", "12-16 s at 160x90", "use Cycles or Workbench"]),
]  # fmt: skip
SEVERITY = {"NO_CAMERA": "error", "RENDER_SIZE": "error", "MOVIE_OUTPUT": "info", "MISSING_FILES": "error",
            "SIM_NOT_BAKED": "error", "PYTHON_AUTORUN": "warning",
            "ADDON_NODES": "warning", "ADDON_PROPS": "warning", "EEVEE_ON_CPU": "warning"}  # fmt: skip


@pytest.mark.parametrize(("code", "scene", "backend", "says"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_each_finding_has_a_scene_that_triggers_it_and_a_clean_one_that_does_not(
    folder, clean, capsys, code, scene, backend, says
):
    rc, found = check(capsys, folder / f"{scene}.blend", "--backend", backend)
    assert list(found) == [code], found  # this finding and no other
    finding = found[code]
    assert finding["severity"] == SEVERITY[code]
    for text in says:
        assert text in finding["message"], finding["message"]
    assert rc == EXIT[SEVERITY[code]]
    assert code not in clean[backend].codes


def test_addon_settings_are_named_per_data_block(folder):
    props = read_scene(folder / "addon_props.blend").facts["addon_props"]
    # Blender 5 keeps add-on settings apart from custom properties, so a plain add-on
    # property counts too; 4.x mixes them and only property groups are told apart
    assert props in (
        ["Object Flagged: abr_test_flag", "Scene Scene: abr_test_settings"], ["Scene Scene: abr_test_settings"]
    )  # fmt: skip


def test_a_camera_bound_to_a_marker_and_a_simulation_after_the_range_need_nothing(folder, capsys):
    for scene in ("marker_camera", "cloth_after_range", "clean"):
        rc, found = check(capsys, folder / f"{scene}.blend", "--backend", "local")
        assert (rc, found) == (SUCCESS, {}), scene


def test_a_packed_bake_counts_and_unsaved_edits_leave_it_unknown(folder, capsys):
    rc, found = check(capsys, folder / "gn_packed_baked.blend", "--backend", "local")
    assert (rc, found) == (SUCCESS, {})
    # the panel's scene with unsaved edits: the file on disk may not hold what is in memory
    snap = dataclasses.replace(read_scene(folder / "gn_packed.blend"), is_dirty=True)
    settle_packed_bakes(snap)
    report = check_scene(snap)
    assert report.codes == ["SIM_PACKED_BAKE"]
    assert report.findings[0].severity == "warning"
    assert "GeoSim / GeoSim (Geometry Nodes simulation)" in report.findings[0].message
    assert "baked over frames 1-4" in report.findings[0].message


def test_gpu_requested_without_a_gpu_queue(folder, clean):
    snap = read_scene(folder / "cycles_gpu.blend")
    assert (snap.engine, snap.device) == ("CYCLES", "GPU")
    report = check_scene(snap, CheckContext(backend="aws", stack="abr", gpu_queue=False))
    assert report.codes == ["NO_GPU_QUEUE"] and report.findings[0].severity == "error"
    assert "--stack abr --gpu" in report.findings[0].message and "--device CPU" in report.findings[0].message
    assert check_scene(snap, CheckContext(backend="aws", gpu_queue=True)).codes == []
    assert check_scene(snap, CheckContext(backend="aws", device="CPU", gpu_queue=False)).codes == []
    assert "NO_GPU_QUEUE" not in clean["aws"].codes
