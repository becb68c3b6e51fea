"""requirements/constraints-bpy-<VERSION>.txt (scripts/make_constraints.py): one per Blender
version committed (the LTS lines the suite runs on, the oldest and newest the smoke tier
runs on), closed over everything pip installs in the image, and
consistent with runtime.txt and with the test environment of this interpreter's bpy.
(The image tier compares them with ``pip freeze`` inside the built images.)"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

from addon.core.aws import image_versions, images

ROOT = Path(__file__).resolve().parent.parent
STAGES = sorted(p.name[len("constraints-bpy-") : -len(".txt")] for p in ROOT.glob("requirements/constraints-bpy-*"))
#: what bpy itself needs (its wheel metadata), besides what runtime.txt pins
BPY_DEPS = {"5.2.3": {"numpy", "cython", "zstandard", "attrs", "cattrs", "typing-extensions"},
            "5.3.0": {"numpy", "cython", "zstandard", "attrs", "cattrs", "typing-extensions"},
            "4.5.15": {"numpy", "cython", "zstandard"},
            "4.2.23": {"numpy", "cython", "zstandard"}}  # fmt: skip
#: the Python of each version's wheel (its cp tag on the index), as the file's header says
WHEEL_PYTHON = {"5.2.3": "3.13", "5.3.0": "3.13", "4.5.15": "3.11", "4.2.23": "3.11"}


def pins(path: Path) -> dict[str, str]:
    out = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version.strip(), f"{path.name}: {line!r} is not pinned with =="
            out[re.sub(r"[-_.]+", "-", name.strip()).lower()] = version.strip()
    return out


def test_the_committed_constraints_files_and_their_python():
    assert STAGES == sorted(BPY_DEPS)
    files = sorted(p.name for p in (ROOT / "requirements").glob("constraints-bpy-*.txt"))
    assert files == sorted(Path(images.constraints_file(v)).name for v in STAGES)
    said = {v: image_versions.constraints_python((ROOT / images.constraints_file(v)).read_text()) for v in STAGES}
    assert said == WHEEL_PYTHON


@pytest.mark.parametrize("version", STAGES)
def test_constraints_pin_bpy_its_deps_runtime_and_the_build_tools(version):
    got = pins(ROOT / images.constraints_file(version))
    assert got["bpy"] == version
    runtime = pins(ROOT / "requirements" / "runtime.txt")
    assert {k: got.get(k) for k in runtime} == runtime  # the same pins as the add-on's wheels
    assert {"pip", "setuptools"} <= got.keys()  # the build backend, used without build isolation
    assert set(got) == {"bpy", "pip", "setuptools", *runtime, *BPY_DEPS[version]}


def test_this_environment_has_the_constraints_of_its_bpy():
    """The suite tests the same bpy dependencies the image installs."""
    version = importlib.metadata.version("bpy")
    assert version in STAGES, f"bpy {version} has no constraints file"
    for name, pinned in pins(ROOT / images.constraints_file(version)).items():
        if name in BPY_DEPS[version]:
            assert importlib.metadata.version(name) == pinned, name


def test_the_content_tag_follows_the_versions_constraints(tmp_path):
    for rel in ("Dockerfile", "requirements/runtime.txt", images.constraints_file("5.2.3"),
                images.constraints_file("4.5.15")):  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((ROOT / rel).read_text())
    before = {v: images.context_hash(tmp_path, v) for v in ("5.2.3", "4.5.15")}
    path = tmp_path / images.constraints_file("4.5.15")
    path.write_text(path.read_text().replace("numpy==1.26.4", "numpy==1.26.3"))
    assert images.context_hash(tmp_path, "4.5.15") != before["4.5.15"]
    assert images.context_hash(tmp_path, "5.2.3") == before["5.2.3"]
