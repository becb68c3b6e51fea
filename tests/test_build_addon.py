"""build_addon.py: the manifest agrees with the pins, --check catches disagreements, the
zip holds what Blender needs, and two builds give the same bytes."""

from __future__ import annotations

import copy
import tomllib
import zipfile

import pytest
from test_addon_support import ROOT, built_zip, load_build_addon

build_addon = load_build_addon()


@pytest.fixture
def manifest() -> dict:
    return tomllib.loads((ROOT / "blender_manifest.toml").read_text(encoding="utf-8"))


def test_repository_manifest_agrees_with_pins_and_versions(manifest):
    assert build_addon.check(manifest) == []
    assert build_addon.main(["--check"]) == 0
    from addon.core import __version__

    assert manifest["version"] == __version__
    assert manifest["blender_version_min"] == "4.2.0"
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert set(manifest["permissions"]) == {"network", "files"}


def test_check_fails_on_a_version_mismatch(manifest):
    bad = copy.deepcopy(manifest)
    bad["wheels"] = [w.replace("boto3-1.44.8", "boto3-1.44.7") for w in bad["wheels"]]
    problems = build_addon.check(bad)
    assert any("boto3 1.44.7" in p and "pins 1.44.8" in p for p in problems), problems


def test_check_fails_on_a_missing_or_extra_wheel(manifest):
    bad = copy.deepcopy(manifest)
    bad["wheels"] = [w for w in bad["wheels"] if "jmespath" not in w]
    bad["wheels"].append("./wheels/left_pad-1.0-py3-none-any.whl")
    problems = build_addon.check(bad)
    assert any("jmespath==1.1.0" in p for p in problems), problems
    assert any("left_pad" in p and "does not pin" in p for p in problems), problems


def test_check_knows_blender_bundles_requests(manifest):
    pins = build_addon.read_pins()
    assert "requests" in pins  # pinned for the worker and CLI ...
    assert not any("requests" in w for w in manifest["wheels"])  # ... but not bundled
    bad = copy.deepcopy(manifest)
    bad["wheels"].append("./wheels/requests-2.34.2-py3-none-any.whl")
    assert any("Blender already ships" in p for p in build_addon.check(bad, pins))


def test_check_rejects_platform_wheels(manifest):
    bad = copy.deepcopy(manifest)
    bad["wheels"] = [w.replace("six-1.17.0-py2.py3-none-any", "six-1.17.0-cp311-cp311-manylinux_2_17_x86_64")
                     for w in bad["wheels"]]
    assert any("not a pure-Python" in p for p in build_addon.check(bad))


def test_zip_contents_and_reproducible_bytes(tmp_path, manifest):
    first = built_zip()
    assert first.name == f"aws_batch_render-{manifest['version']}.zip"
    with zipfile.ZipFile(first) as zf:
        names = zf.namelist()
        infos = zf.infolist()
    assert names == sorted(names)
    assert "blender_manifest.toml" in names and "__init__.py" in names and "blender/panel.py" in names
    assert "worker/__main__.py" in names  # the local backend runs the bundled worker
    assert {w.removeprefix("./") for w in manifest["wheels"]} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert {i.date_time for i in infos} == {build_addon.ZIP_EPOCH}
    # two builds back to back (the session's zip may predate edits to the working tree)
    again = build_addon.build(tmp_path / "a", ROOT / "build", offline=True)
    twice = build_addon.build(tmp_path / "b", ROOT / "build", offline=True)
    assert again.read_bytes() == twice.read_bytes()
