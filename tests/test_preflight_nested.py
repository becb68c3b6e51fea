"""Preflight, linked libraries two levels deep: a library the main file names at an old
place, which Blender finds through the library that links it, is not missing and renders
on the worker; a texture that is truly missing inside the deepest library is reported
with its real path, by the check and by the packer."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from addon.cli import main
from addon.core.exitcodes import CHECK_ERRORS, SUCCESS
from addon.core.records import RecordStore
from addon.core.submit.options import MissingFilesError
from addon.core.submit.packing import pack_blend
from addon.core.submit.scene_reader import read_scene
from tests.test_preflight import make

MAIN = Path("shots/seq/sh010/scene.blend")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nested") / "project"
    make(root / MAIN, "nested_moved")
    return root


def bat_missing(blend: Path) -> list[str]:
    from blender_asset_tracer import trace

    from addon.core.submit.bat_packer import fix_bat_node_trees, fix_bat_sequencer_root_paths

    fix_bat_node_trees()
    fix_bat_sequencer_root_paths()
    return sorted(str(u.abspath) for u in trace.deps(blend) if not u.abspath.exists())


def test_a_moved_nested_library_is_not_missing_and_renders_on_the_worker(project, tmp_path, capsys, monkeypatch):
    blend = project / MAIN
    # the reproduction: BAT follows the main file's stale record of the props library
    assert bat_missing(blend) == [str(project / "lib/props_old/prop.blend")]
    snap = read_scene(blend)
    assert snap.missing_files == []  # was [<project>/../lib/props/prop.blend]: two folders up
    packed = pack_blend(blend, tmp_path / "pack", blender_missing=snap.missing_files)
    assert packed.missing == []
    assert {"lib/chars/char.blend", "lib/props/prop.blend", "lib/props/tex/wood.png"} <= set(packed.files)

    assert main(["check", str(blend), "--backend", "local"]) == SUCCESS, capsys.readouterr().out
    capsys.readouterr()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    records = tmp_path / "records"
    code = main([
        "submit", str(blend), "--backend", "local", "--frames", "1-2", "--chunk", "2", "--concurrency", "1",
        "--watch", "--interval", "0.2", "--records", str(records), "--store", (tmp_path / "store").as_uri() + "/",
    ])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:] + out.out[-3000:]
    (record,) = RecordStore(records).list()
    assert record.last_status["frames_done"] == 2


def test_a_missing_texture_inside_the_deepest_library_is_reported_with_its_path(project, tmp_path, capsys):
    copy = tmp_path / "project"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("*.blend1"))
    texture = copy / "lib/props/tex/wood.png"
    texture.unlink()
    blend = copy / MAIN
    snap = read_scene(blend)
    assert snap.missing_files == [str(texture)]
    code = main(["check", str(blend), "--backend", "local"])
    out = capsys.readouterr().out
    assert code == CHECK_ERRORS, out
    (line,) = [x for x in out.splitlines() if x.endswith("[MISSING_FILES]")]
    assert line.startswith("error: 1 file(s)") and "wood.png" in line and "--allow-missing" in line
    with pytest.raises(MissingFilesError) as caught:
        pack_blend(blend, tmp_path / "pack", blender_missing=snap.missing_files)
    assert caught.value.missing == [str(texture)]


def test_a_missing_library_two_levels_deep_is_reported_where_it_was_looked_for(project, tmp_path):
    """Blender and the packer agree on the one library that is gone; the main file's stale
    record of it (BAT reports that one too) is not counted."""
    copy = tmp_path / "project"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("*.blend1"))
    library = copy / "lib/props/prop.blend"
    library.unlink()
    blend = copy / MAIN
    snap = read_scene(blend)
    assert snap.missing_files == [str(library)]
    assert str(copy / "lib/props_old/prop.blend") in bat_missing(blend)
    with pytest.raises(MissingFilesError) as caught:
        pack_blend(blend, tmp_path / "pack", blender_missing=snap.missing_files)
    assert caught.value.missing == [str(library)]
