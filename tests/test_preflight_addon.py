"""The panel's Check button and the check on submit, on the installed extension: the open
scene's findings land in the panel; a scene with errors is refused before a copy is saved
or anything reaches the store."""

from __future__ import annotations

import json

import pytest
from test_addon_support import FakePanel, configure_prefs, ensure_installed, mod, reset_addon_state, runtime

bpy = pytest.importorskip("bpy")


@pytest.fixture
def addon():
    ensure_installed()
    reset_addon_state()
    yield
    reset_addon_state()


def _codes() -> list[str]:
    return [f["code"] for f in json.loads(runtime().check_findings)["findings"]]


def test_check_button_stores_findings_the_panel_draws(addon, tiny_scene):
    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    configure_prefs("http://127.0.0.1:9", "abr-test", {}, backend="LOCAL")
    assert bpy.ops.awsbatch.check() == {"FINISHED"}
    assert _codes() == []
    panel = FakePanel()
    mod("blender.panel").AWSBATCH_PT_output.draw(panel, bpy.context)
    assert "awsbatch.check" in [c["args"][0] for c in panel.layout.operators()]
    assert "Check: nothing to fix" in panel.layout.texts()

    # unsaved edits count: an unbaked cloth and the missing-file fix named for the panel
    scene = bpy.context.scene
    cube = next(o for o in scene.objects if o.type == "MESH")
    cube.modifiers.new("Cloth", "CLOTH")
    img = bpy.data.images.new("wood", 4, 4)
    img.source, img.filepath = "FILE", "/nonexistent/abr/wood.png"
    img.use_fake_user = True
    assert bpy.ops.awsbatch.check() == {"FINISHED"}
    assert _codes() == ["MISSING_FILES", "SIM_NOT_BAKED"]
    panel = FakePanel()
    mod("blender.panel").AWSBATCH_PT_output.draw(panel, bpy.context)
    texts = panel.layout.texts()
    assert any("bake first" in t and "[SIM_NOT_BAKED]" in t for t in texts), texts
    assert any("'Allow missing files'" in t for t in texts), texts


def test_submit_runs_the_check_and_stops_before_saving_anything(addon, tiny_scene):
    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    configure_prefs("http://127.0.0.1:9", "abr-test", {}, backend="LOCAL")
    cube = next(o for o in bpy.context.scene.objects if o.type == "MESH")
    cube.modifiers.new("Cloth", "CLOTH")
    with pytest.raises(RuntimeError, match="bake first"):
        bpy.ops.awsbatch.submit()
    assert "SIM_NOT_BAKED" in _codes()
    assert "bake first" in runtime().submit_error
    assert not mod("blender.background").busy()  # no thread was started: nothing packed or uploaded


def test_check_names_settings_of_an_addon_the_worker_lacks(addon, tiny_scene):
    """A property group registered by an add-on outside Blender's own scripts, stored on the
    scene, is named; this add-on's own settings (on the scene too by now) are not."""
    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    configure_prefs("http://127.0.0.1:9", "abr-test", {}, backend="LOCAL")

    class AbrThirdPartySettings(bpy.types.PropertyGroup):
        level: bpy.props.IntProperty()

    bpy.utils.register_class(AbrThirdPartySettings)
    bpy.types.Scene.abr_third_party = bpy.props.PointerProperty(type=AbrThirdPartySettings)
    try:
        assert bpy.ops.awsbatch.check() == {"FINISHED"}
        assert _codes() == []
        bpy.context.scene.abr_third_party.level = 2
        assert bpy.ops.awsbatch.check() == {"FINISHED"}
        assert _codes() == ["ADDON_PROPS"]
        (finding,) = json.loads(runtime().check_findings)["findings"]
        assert finding["severity"] == "warning"
        assert f"Scene {bpy.context.scene.name}: abr_third_party" in finding["message"]
    finally:
        del bpy.types.Scene.abr_third_party
        bpy.utils.unregister_class(AbrThirdPartySettings)


def test_panel_reads_packed_bakes_from_the_saved_file_and_not_past_unsaved_edits(addon, tiny_scene, tmp_path):
    """A simulation zone with the default (packed) bake target: the saved file says it holds
    no bake (an error); with unsaved edits the file cannot tell (a warning)."""
    from preflight_scenes import gn_simulation

    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    configure_prefs("http://127.0.0.1:9", "abr-test", {}, backend="LOCAL")
    cube = next(o for o in bpy.context.scene.objects if o.type == "MESH")
    name = cube.name
    assert gn_simulation(cube).bake_target == "PACKED"
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "sim.blend"))
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "sim.blend"))
    if bpy.data.is_dirty:  # the bpy 4.5 module marks every file it opens as edited
        assert bpy.app.version < (5, 0)
    else:
        assert bpy.ops.awsbatch.check() == {"FINISHED"}
        assert _codes() == ["SIM_NOT_BAKED"]
        bpy.data.objects[name].location.x += 1
        bpy.ops.ed.undo_push(message="Move")  # as an edit in the window does: the file is dirty
        assert bpy.data.is_dirty
    assert bpy.ops.awsbatch.check() == {"FINISHED"}
    assert _codes() == ["SIM_PACKED_BAKE"]
