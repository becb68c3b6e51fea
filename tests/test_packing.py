"""Packing with blender-asset-tracer: a project with a linked library (which uses a
texture of its own), an image sequence, a sound, a font, a movie clip, an Alembic cache,
a VDB volume, a missing texture and a file outside the project folder, built with bpy
at test time. The packed file is opened in a real Blender after the original project
has been moved away."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import threading
import wave
import zlib
from pathlib import Path, PurePosixPath

import pytest

from addon.core.submit.options import MissingFilesError, SubmissionCancelled
from addon.core.submit.packing import PackingError, choose_project_root, pack_blend, sha256_file

BUILD_SCRIPT = r'''
import os, sys
import bpy

root, outside_png = sys.argv[1], sys.argv[2]
copy_dir = sys.argv[3] if len(sys.argv) > 3 else ""
proj = os.path.join(root, "project")

# the library: a collection with a mesh whose material uses the library's own texture
bpy.ops.wm.read_factory_settings(use_empty=True)
mesh = bpy.data.meshes.new("PropMesh")
mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
ob = bpy.data.objects.new("Prop", mesh)
coll = bpy.data.collections.new("Props")
coll.objects.link(ob)
bpy.context.scene.collection.children.link(coll)
img = bpy.data.images.load(os.path.join(proj, "lib", "tex", "libtex.png"))
img.filepath = "//tex/libtex.png"
mat = bpy.data.materials.new("PropMat")
mat.use_nodes = True
node = mat.node_tree.nodes.new("ShaderNodeTexImage")
node.image = img
mesh.materials.append(mat)
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(proj, "lib", "props.blend"), relative_remap=False)

# the main file
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
# an Alembic cache: export a triangle, import it back as a cache file
tri = bpy.data.meshes.new("Tri")
tri.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
tri_ob = bpy.data.objects.new("Tri", tri)
scene.collection.objects.link(tri_ob)
os.makedirs(os.path.join(proj, "cache"), exist_ok=True)
bpy.ops.wm.alembic_export(filepath=os.path.join(proj, "cache", "tri.abc"), start=1, end=1)
bpy.data.objects.remove(tri_ob)
bpy.ops.wm.alembic_import(filepath=os.path.join(proj, "cache", "tri.abc"), as_background_job=False)
bpy.data.cache_files[0].filepath = "//cache/tri.abc"
bpy.data.cache_files[0].use_fake_user = True
# a font: the smallest one Blender ships, copied into the project
import glob, shutil
fonts = bpy.utils.system_resource("DATAFILES", path="fonts")
src_font = min(glob.glob(os.path.join(fonts, "*.woff2")) + glob.glob(os.path.join(fonts, "*.ttf")), key=os.path.getsize)
os.makedirs(os.path.join(proj, "fonts"), exist_ok=True)
shutil.copyfile(src_font, os.path.join(proj, "fonts", "title.woff2"))
font = bpy.data.fonts.load(os.path.join(proj, "fonts", "title.woff2"))
font.filepath = "//fonts/title.woff2"
text = bpy.data.curves.new("Title", "FONT")
text.font = font
scene.collection.objects.link(bpy.data.objects.new("Title", text))
# a movie clip (made with ffmpeg by the test) and a VDB volume
clip = bpy.data.movieclips.load(os.path.join(proj, "clips", "clip.mp4"))
clip.filepath = "//clips/clip.mp4"
clip.use_fake_user = True
vol = bpy.data.volumes.new("Smoke")
vol.filepath = "//vdb/smoke.vdb"
scene.collection.objects.link(bpy.data.objects.new("Smoke", vol))
scene.frame_start, scene.frame_end = 1, 3
scene.render.resolution_x, scene.render.resolution_y = 32, 18
with bpy.data.libraries.load(os.path.join(proj, "lib", "props.blend"), link=True) as (src, dst):
    dst.collections = ["Props"]
inst = bpy.data.objects.new("PropsInstance", None)
inst.instance_type = "COLLECTION"
inst.instance_collection = dst.collections[0]
scene.collection.objects.link(inst)
bpy.data.libraries[0].filepath = "//lib/props.blend"

def image(name, path, source="FILE"):
    im = bpy.data.images.new(name, 4, 4)
    im.source = source
    im.filepath = path
    im.use_fake_user = True
    return im

image("wood", "//textures/wood.png")
image("uni", "//textures/ünïcode 木.png")
image("seq", "//seq/frame_0001.png", "SEQUENCE")
image("gone", "//textures/missing.png")
image("outside", outside_png)
snd = bpy.data.sounds.load(os.path.join(proj, "audio", "beep.wav"))
snd.filepath = "//audio/beep.wav"
snd.use_fake_user = True
cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
scene.collection.objects.link(cam)
scene.camera = cam
main = os.path.join(proj, "main.blend")
bpy.ops.wm.save_as_mainfile(filepath=main, relative_remap=False)
if copy_dir:
    # what the add-on does: a copy of the open scene in a temporary folder
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(copy_dir, "copy.blend"), copy=True, relative_remap=True)
'''

CHECK_SCRIPT = r'''
import json, os, sys
import bpy
bpy.ops.wm.open_mainfile(filepath=sys.argv[1], load_ui=False)
out = {"images": {}, "libraries": {}, "sounds": {}}
for im in bpy.data.images:
    if im.source in ("FILE", "SEQUENCE"):
        p = bpy.path.abspath(im.filepath, library=im.library)
        out["images"][im.name] = [im.filepath, os.path.exists(p)]
for lib in bpy.data.libraries:
    out["libraries"][lib.name] = [lib.filepath, os.path.exists(bpy.path.abspath(lib.filepath))]
for s in bpy.data.sounds:
    out["sounds"][s.name] = [s.filepath, os.path.exists(bpy.path.abspath(s.filepath))]
for kind, items in (("fonts", bpy.data.fonts), ("clips", bpy.data.movieclips),
                    ("caches", bpy.data.cache_files), ("volumes", bpy.data.volumes)):
    out[kind] = {i.name: [i.filepath, os.path.exists(bpy.path.abspath(i.filepath))]
                 for i in items if i.filepath != "<builtin>"}
out["linked_objects"] = sorted(o.name for o in bpy.data.objects if o.library is not None)
print("CHECK:" + json.dumps(out))
'''


def write_png(path: Path, rgb: tuple[int, int, int] = (200, 100, 50), size: int = 4) -> Path:
    """A tiny valid PNG, written without any imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


def write_wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x10" * 800)
    return path


def run_bpy(script: str, *args: str, timeout: float = 120) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bpy child failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout


def build_project(root: Path, copy_dir: Path | None = None) -> dict[str, Path]:
    """project/{main.blend, lib/props.blend, lib/tex/libtex.png, textures/wood.png,
    seq/frame_0001..3.png, audio/beep.wav, fonts/title.woff2, clips/clip.mp4,
    cache/tri.abc, vdb/smoke.vdb} and outside/outside.png; textures/missing.png is
    referenced but absent. With ``copy_dir``, also the add-on's temporary copy."""
    proj = root / "project"
    write_png(proj / "lib" / "tex" / "libtex.png", (10, 200, 10))
    write_png(proj / "textures" / "wood.png", (120, 80, 20))
    write_png(proj / "textures" / "ünïcode 木.png", (1, 80, 20))
    for i in (1, 2, 3):
        write_png(proj / "seq" / f"frame_{i:04d}.png", (i * 50, 0, 0))
    write_wav(proj / "audio" / "beep.wav")
    (proj / "clips").mkdir(parents=True)
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=red:s=32x18:d=0.2:r=10",
         "-pix_fmt", "yuv420p", str(proj / "clips" / "clip.mp4")],
        check=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    (proj / "vdb").mkdir()
    (proj / "vdb" / "smoke.vdb").write_bytes(b"not really a VDB: the packer only copies it")
    outside = write_png(root / "outside" / "outside.png", (0, 0, 255))
    args = [str(root), str(outside)] + ([str(copy_dir)] if copy_dir else [])
    if copy_dir:
        copy_dir.mkdir(parents=True, exist_ok=True)
    run_bpy(BUILD_SCRIPT, *args)
    paths = {"root": root, "project": proj, "main": proj / "main.blend", "outside": outside}
    if copy_dir:
        paths["copy"] = copy_dir / "copy.blend"
    return paths


def check_packed(blend: Path) -> dict:
    out = run_bpy(CHECK_SCRIPT, str(blend))
    line = next(line for line in out.splitlines() if line.startswith("CHECK:"))
    return json.loads(line[len("CHECK:") :])


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("packing")
    return build_project(root, copy_dir=root / "addon-temp")


EXPECTED = {
    "project/main.blend",
    "project/lib/props.blend",
    "project/lib/tex/libtex.png",
    "project/textures/wood.png",
    "project/textures/ünïcode 木.png",
    "project/seq/frame_0001.png",
    "project/seq/frame_0002.png",
    "project/seq/frame_0003.png",
    "project/audio/beep.wav",
    "outside/outside.png",
    "project/fonts/title.woff2",
    "project/clips/clip.mp4",
    "project/cache/tri.abc",
    "project/vdb/smoke.vdb",
}


def test_missing_texture_aborts_by_default_naming_the_file(project, tmp_path):
    with pytest.raises(MissingFilesError) as info:
        pack_blend(project["main"], tmp_path / "pack")
    assert "textures/missing.png" in str(info.value)
    assert "allow missing" in str(info.value)
    assert [Path(p).name for p in info.value.missing] == ["missing.png"]
    assert not any((tmp_path / "pack").rglob("*.png"))  # aborted before copying anything


def test_pack_relocated_copy_brings_every_dependency_and_opens_elsewhere(project, tmp_path):
    """The add-on's path: a copy saved in a temp folder, packed as if it stood at the
    user's file; then the project is moved away and the pack opened in Blender."""
    hashes = []
    result = pack_blend(
        project["copy"], tmp_path / "pack", source_blend=str(project["main"]), allow_missing=True,
        progress=lambda done, total, name: hashes.append((done, total)),
    )  # fmt: skip
    assert result.project_root == str(project["root"].resolve())  # common ancestor, not '/'
    assert result.main_blend == "project/main.blend"
    assert set(result.files) == EXPECTED
    assert hashes[-1] == (len(EXPECTED), len(EXPECTED))
    for rel, digest in result.files.items():
        assert digest == sha256_file(result.pack_dir / rel)
        assert result.sizes[rel] == (result.pack_dir / rel).stat().st_size
    assert result.outside_project == [str(project["outside"].resolve())]
    assert [PurePosixPath(p).name for p in result.missing] == ["missing.png"]
    # unchanged assets are copied byte for byte
    assert result.files["project/textures/wood.png"] == sha256_file(project["project"] / "textures" / "wood.png")

    moved = tmp_path / "moved"
    shutil.copytree(result.pack_dir, moved)
    hidden = project["root"].parent / (project["root"].name + "-hidden")
    project["root"].rename(hidden)  # the originals are gone while Blender opens the pack
    try:
        found = check_packed(moved / "project" / "main.blend")
    finally:
        hidden.rename(project["root"])
    images = found["images"]
    for name in ("wood", "uni", "seq", "outside"):
        assert images[name][1], f"{name} does not resolve in the pack: {images[name][0]}"
        assert images[name][0].startswith("//"), images[name][0]
    assert images["gone"][1] is False
    assert images["libtex.png"][1], images["libtex.png"]  # the library's own texture
    assert list(found["libraries"].values()) == [["//lib/props.blend", True]]
    assert found["linked_objects"] == ["Prop"]
    for kind in ("sounds", "fonts", "clips", "caches", "volumes"):
        assert found[kind] and all(ok for _, ok in found[kind].values()), (kind, found[kind])


def test_user_file_packed_in_place_keeps_its_bytes(project, tmp_path):
    """The CLI's path: the user's own file, nothing to rewrite in the main .blend."""
    result = pack_blend(project["main"], tmp_path / "pack", allow_missing=True)
    assert set(result.files) == EXPECTED
    # only the outside texture needs a new path: the main file is rewritten for it
    again = pack_blend(project["main"], tmp_path / "pack2", allow_missing=True)
    assert again.files == result.files  # packing is deterministic: same bytes, same hashes


def test_explicit_project_root_puts_outside_files_under_outside_project(project, tmp_path):
    result = pack_blend(project["main"], tmp_path / "pack", allow_missing=True, project_root=project["project"])
    assert result.main_blend == "main.blend"
    outside = [rel for rel in result.files if rel.startswith("_outside_project/")]
    assert len(outside) == 1 and outside[0].endswith("outside/outside.png")
    assert "lib/props.blend" in result.files and "seq/frame_0003.png" in result.files


def test_choose_project_root_never_climbs_to_the_filesystem_root():
    blend_dir = Path("/home/ann/films/shot1")
    assert choose_project_root(blend_dir, [Path("/home/ann/films/tex/a.png")]) == Path("/home/ann/films")
    assert choose_project_root(blend_dir, [Path("/home/ann/lib.blend")]) == Path("/home/ann")
    assert choose_project_root(blend_dir, [Path("/mnt/assets/a.png")]) == blend_dir
    assert choose_project_root(blend_dir, [Path("/home/bob/a.png")]) == blend_dir
    assert choose_project_root(blend_dir, []) == blend_dir


def test_cancel_before_packing_raises_cancelled(project, tmp_path):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(SubmissionCancelled):
        pack_blend(project["main"], tmp_path / "pack", allow_missing=True, cancel=cancel)


@pytest.mark.parametrize("step", ["Found", "Copying", "project/"])
def test_cancel_while_tracing_copying_or_hashing_stops(project, tmp_path, step):
    cancel = threading.Event()
    seen = []

    def progress(done: int, total: int, message: str) -> None:
        seen.append(message)
        if message.startswith(step):
            cancel.set()

    with pytest.raises(SubmissionCancelled):
        pack_blend(project["main"], tmp_path / "pack", allow_missing=True, cancel=cancel, progress=progress)
    assert any(m.startswith(step) for m in seen)
    assert len([m for m in seen if m.startswith("project/")]) <= 1  # stopped, not finished


def test_unreadable_blend_is_a_packing_error(tmp_path):
    bad = tmp_path / "bad.blend"
    bad.write_bytes(b"this is not a blend file" * 10)
    with pytest.raises(PackingError, match=r"bad\.blend"):
        pack_blend(bad, tmp_path / "pack")
    with pytest.raises(PackingError, match="does not exist"):
        pack_blend(tmp_path / "nope.blend", tmp_path / "pack")


def test_normalize_gzip_header_makes_recompressed_blends_hash_the_same(tmp_path):
    import gzip

    data = b"BLENDER-v502" + bytes(range(256)) * 50
    paths = []
    for name, mtime in (("bat-abc-main.blend", 1_700_000_000), ("bat-xyz-main.blend", 1_800_000_000)):
        path = tmp_path / name
        with open(path, "wb") as raw, gzip.GzipFile(name, "wb", fileobj=raw, mtime=mtime) as gz:
            gz.write(data)
        paths.append(path)
    assert sha256_file(paths[0]) != sha256_file(paths[1])
    from addon.core.submit.packing import normalize_gzip_header

    assert all(normalize_gzip_header(p) for p in paths)
    assert sha256_file(paths[0]) == sha256_file(paths[1])
    assert gzip.decompress(paths[0].read_bytes()) == data
    assert normalize_gzip_header(paths[0]) is False  # already deterministic
    plain = tmp_path / "plain.blend"
    plain.write_bytes(data)
    assert normalize_gzip_header(plain) is False and plain.read_bytes() == data
