"""Any Blender with a bpy wheel gets a worker image: the wheel's Python (and so the Debian
base) comes from its tag on the real package index, cached per version; "X.Y" means the
newest patch; the constraints files say the Python they were resolved for."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from addon.core.aws import bpy_wheels, image_versions, images

ROOT = Path(__file__).resolve().parent.parent


def test_python_comes_from_the_linux_wheel_tag():
    names = ["bpy-5.3.0-cp313-cp313-macosx_13_0_arm64.whl", "bpy-5.3.0-cp313-cp313-manylinux_2_28_x86_64.whl",
             "bpy-5.3.0-cp313-cp313-win_amd64.whl"]  # fmt: skip
    assert bpy_wheels.python_from_wheels(names) == "3.13"
    assert bpy_wheels.python_from_wheels(["bpy-4.2.23-cp311-cp311-manylinux_2_28_x86_64.whl"]) == "3.11"
    assert bpy_wheels.python_from_wheels(["bpy-4.2.0-cp311-cp311-win_amd64.whl"]) == ""  # no Linux wheel
    assert bpy_wheels.debian_suite("3.11") == "bookworm" and bpy_wheels.debian_suite("3.13") == "trixie"
    with pytest.raises(bpy_wheels.BpyWheelError, match=r"No Debian base with Python 3\.12.*python-3\.12 stage"):
        bpy_wheels.debian_suite("3.12")


def test_the_real_index_maps_versions_to_python_and_caches_them(tmp_path):
    cache = tmp_path / "wheels.json"
    # the oldest supported line, the LTS lines, the last cp311 line, the first cp313 line, the newest
    want = {"4.2.23": "3.11", "4.5.15": "3.11", "5.0.1": "3.11", "5.1.0": "3.13", "5.3.0": "3.13"}
    assert {v: bpy_wheels.wheel_python(v, cache=cache) for v in want} == want
    assert json.loads(cache.read_text()) == want

    def offline(url):
        raise AssertionError(f"asked the index again: {url}")

    assert bpy_wheels.wheel_python("4.2.23", cache=cache, fetch=offline) == "3.11"  # cached
    with pytest.raises(bpy_wheels.BpyWheelError, match=r"no Linux bpy wheel for Blender 4\.1\.0"):
        bpy_wheels.wheel_python("4.1.0", cache=cache)
    newest = bpy_wheels.full_version("4.2")
    assert newest.startswith("4.2.") and int(newest.split(".")[2]) >= 23
    with pytest.raises(bpy_wheels.BpyWheelError, match=r"older than the oldest supported, 4\.2"):
        bpy_wheels.full_version("3.6")


def test_publish_takes_python_from_the_constraints_file_then_the_index(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    text = (ROOT / "Dockerfile").read_text()
    # committed versions: no index needed; "5.2" is the newest committed 5.2.x
    monkeypatch.setattr(bpy_wheels, "fetch_json", lambda url: pytest.fail(f"asked the index: {url}"))
    assert image_versions.build_version("5.2", ROOT, text) == ("5.2.3", "3.13")
    assert image_versions.build_version("4.2.23", ROOT, text) == ("4.2.23", "3.11")
    assert image_versions.build_version("5.3", ROOT, text) == ("5.3.0", "3.13")
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # a version without a constraints file: one line with the exact command that makes it
    with pytest.raises(images.ImagePublishError) as err:
        image_versions.build_version("5.1.2", ROOT, text)
    assert str(err.value) == (
        "No requirements/constraints-bpy-5.1.2.txt yet: make it with `python scripts/make_constraints.py 5.1.2` "
        "(pins everything the image installs), then run publish-image again."
    )
    with pytest.raises(images.ImagePublishError, match=r"not X\.Y .*or X\.Y\.Z"):
        image_versions.build_version("latest", ROOT, text)


@pytest.mark.slow
def test_make_constraints_resolves_a_new_version_for_its_wheels_python(tmp_path):
    """scripts/make_constraints.py against the real index, for the oldest supported version:
    the same closed set of packages as the committed file, for Python 3.11."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import make_constraints
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    pins = make_constraints.resolve("4.2.23")
    committed = make_constraints.read_pins(ROOT / images.constraints_file("4.2.23"))
    assert pins["bpy"] == "4.2.23" and set(pins) == set(committed)
    text = make_constraints.render("4.2.23", pins, bpy_wheels.wheel_python("4.2.23"))
    assert image_versions.constraints_python(text) == "3.11"
