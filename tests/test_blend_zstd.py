"""Zstandard-compressed .blend files where Python has no ``zstandard`` module.

Blender 5 compresses every file it saves by default. Debian's Blender 5.2 (sid, Python
3.14) has no ``zstandard`` module, and its Render failed on a never-saved scene: "Cannot
read untitled.blend to find its files: File is compressed with ZStandard, install the
`zstandard` module". Here the bpy wheel brings ``zstandard``, so these tests take it away
from blender-asset-tracer as such a Blender lacks it; in the GUI tier (scripts/gui_tier.sh)
they run inside Debian's own Blenders, where it is really missing: 4.3 on Python 3.13, and
5.2 on Python 3.14, whose standard library reads Zstandard (``compression.zstd``).
"""

from __future__ import annotations

import sys

import pytest
from test_addon_support import configure_prefs, ensure_installed, local_store_addon, render_and_follow  # noqa: F401

from addon.core.submit.bat_zstd import zstd_readable
from addon.core.submit.packing import PackingError, pack_blend

bpy = pytest.importorskip("bpy")
STDLIB_ZSTD = sys.version_info >= (3, 14)
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@pytest.fixture
def no_zstandard(monkeypatch):
    """blender-asset-tracer as it is in a Blender without the ``zstandard`` module."""
    from blender_asset_tracer.blendfile import magic_compression

    monkeypatch.setattr(magic_compression, "has_zstandard", False)
    monkeypatch.setattr(magic_compression, "zstandard", None, raising=False)


def _compressed_scene(path) -> None:
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=True)
    assert path.read_bytes()[:4] == ZSTD_MAGIC


def test_a_zstd_blend_packs_with_the_standard_library_or_gets_one_line(no_zstandard, tmp_path):
    blend = tmp_path / "shot.blend"
    _compressed_scene(blend)
    if STDLIB_ZSTD:
        result = pack_blend(blend, tmp_path / "pack")
        assert result.main_blend == "shot.blend" and result.sizes["shot.blend"] > 0
        assert zstd_readable()
        return
    with pytest.raises(PackingError) as err:
        pack_blend(blend, tmp_path / "pack")
    message = str(err.value)
    assert "\n" not in message and message.startswith("shot.blend (or a library it links) is compressed")
    assert "Compress File off" in message
    assert not zstd_readable()


def test_render_of_a_never_saved_scene_with_compression_on(addon, no_zstandard, tmp_path, monkeypatch):
    bpy.ops.wm.read_homefile(use_empty=True)
    ensure_installed()  # reading the home file must not lose the add-on
    monkeypatch.setattr(bpy.context.preferences.filepaths, "use_file_compression", True)
    scene = bpy.context.scene
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    scene.render.resolution_x, scene.render.resolution_y = 32, 18
    # Cycles on the CPU without a denoiser: a background Blender in the GUI tier's chroot has no
    # EGL (EEVEE and Workbench abort there), and Debian's 4.3 has no OpenImageDenoise
    scene.render.engine = "CYCLES"
    scene.cycles.samples, scene.cycles.use_denoising = 1, False
    scene.frame_start, scene.frame_end = 1, 2
    # what Render saved before: a Zstandard copy, which the packer could not read
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "before.blend"), copy=True, check_existing=False)
    assert (tmp_path / "before.blend").read_bytes()[:4] == ZSTD_MAGIC
    configure_prefs("", "", {}, backend="LOCAL")
    row = render_and_follow(120, 240)
    assert row.state == "SUCCEEDED" and row.frames_done == 2, (row.state, row.error, row.message)
    assert bpy.data.filepath == ""  # still a new, unsaved document
