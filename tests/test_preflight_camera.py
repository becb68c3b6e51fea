"""The camera finding follows Blender: the only camera, bound to a marker in the range, is
disabled for render, in an excluded collection, or deleted. Blender (asked in the child
Blender that makes the scenes) renders through a camera hidden from render or excluded, and
refuses ("no camera") once it is deleted; ``check`` reports NO_CAMERA exactly then."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from addon.cli import main
from addon.core.exitcodes import CHECK_ERRORS, SUCCESS
from tests.helpers import bpy_script_argv

SCRIPT = Path(__file__).with_name("camera_scenes.py")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cameras")
    proc = subprocess.run(bpy_script_argv(SCRIPT, str(out)), capture_output=True, text=True, timeout=180)
    assert (out / "blender.json").is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


def test_no_camera_exactly_when_blender_cannot_render(folder, capsys):
    blender = json.loads((folder / "blender.json").read_text())
    assert blender == {"hidden": True, "excluded": True, "deleted": False}  # what Blender does
    for kind, renders in blender.items():
        code = main(["check", str(folder / f"{kind}.blend"), "--backend", "local", "--json"])
        codes = [f["code"] for f in json.loads(capsys.readouterr().out)["findings"]]
        assert ("NO_CAMERA" in codes) == (not renders), (kind, codes)
        assert code == (SUCCESS if renders else CHECK_ERRORS), (kind, codes)
