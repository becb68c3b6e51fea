"""prepare_submission end to end: a scene built with bpy, packed with BAT, uploaded to a
file:// root and to a moto S3 bucket, the spec written under the submission's prefix."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_packing import write_png

from addon.core.errors import StorageURIError
from addon.core.jobspec import JobSpec
from addon.core.storage import FileStore, S3Store, path_to_uri
from addon.core.submit.options import MissingFilesError, Progress, SubmissionCancelled, SubmitOptions
from addon.core.submit.pipeline import prepare_submission
from addon.core.submit.scene import SceneSnapshot
from addon.core.submit.scene_reader import read_scene
from tests.helpers import make_scene

#: what the add-on does on Submit: save a copy of the open (edited, unsaved) scene in a
#: temporary folder and snapshot it, without touching the user's file
ADDON_SCRIPT = r'''
import json, os, sys
import bpy
sys.path.insert(0, sys.argv[3])
from addon.blender.snapshot import snapshot_scene
bpy.ops.wm.open_mainfile(filepath=sys.argv[1], load_ui=False)
bpy.context.scene.frame_end = 12  # an unsaved edit
out = []
for i in range(2):  # two submissions of the same open scene
    copy = os.path.join(sys.argv[2], f"copy{i}", "scene.blend")
    os.makedirs(os.path.dirname(copy))
    bpy.ops.wm.save_as_mainfile(filepath=copy, copy=True, relative_remap=True)
    snap = snapshot_scene(bpy.context.scene, blend_path=bpy.data.filepath, is_dirty=bpy.data.is_dirty)
    out.append({"copy": copy, "snapshot": snap.to_dict()})
print("ADDON:" + json.dumps(out))
'''


@pytest.fixture(scope="module")
def textured_master(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("textured")
    tex = write_png(folder / "textures" / "wood.png", (90, 60, 30), size=64)
    return make_scene(folder / "textured.blend", "--frames", "6", "--size", "32x18", "--texture", str(tex))


@pytest.fixture
def textured(textured_master, tmp_path) -> Path:
    """A private copy of the project (the .blend refers to its texture by absolute path)."""
    import shutil

    dest = tmp_path / "project"
    shutil.copytree(textured_master.parent, dest)
    return dest / "textured.blend"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_file_root_round_trip_and_resubmit_uploads_nothing(textured, tmp_path):
    root = path_to_uri(tmp_path / "bucket", directory=True)
    snapshot = read_scene(textured)
    messages: list[Progress] = []
    threads: set[str] = set()

    def progress(p: Progress) -> None:
        messages.append(p)
        threads.add(threading.current_thread().name)

    options = SubmitOptions(chunk_size=4)
    spec, spec_uri, report = prepare_submission(textured, snapshot, options, root, progress=progress)

    store = FileStore()
    sid = spec.submission_id
    assert spec_uri == f"{root}submissions/{sid}/spec.json"
    assert JobSpec.from_json(store.get_bytes(spec_uri)) == spec
    assert spec.output.frames_uri == f"{root}frames/{sid}/"
    assert spec.slices == [[1, 2, 3, 4], [5, 6]]
    assert spec.inputs.main_blend == report.main_blend
    assert report.main_blend.endswith("textured.blend")
    assert any(rel.endswith("textures/wood.png") for rel in spec.inputs.files)
    for rel, sha in spec.inputs.files.items():  # every input is stored under its own hash
        assert digest(store.get_bytes(spec.input_uri(rel))) == sha
    assert report.files_uploaded == len(set(spec.inputs.files.values()))
    assert report.bytes_uploaded == report.bytes_total > 0
    assert {m.phase for m in messages} == {"pack", "upload", "spec"}
    assert messages[-1] == Progress("spec", 1, 1, spec_uri)

    again, again_uri, report2 = prepare_submission(textured, snapshot, options, root)
    assert again.submission_id != sid and again_uri != spec_uri  # a new prefix every time
    assert again.inputs.files == spec.inputs.files  # packing is deterministic
    assert (report2.bytes_uploaded, report2.files_uploaded) == (0, 0)  # only the new spec
    assert store.exists(spec_uri) and store.exists(again_uri)


def test_addon_copy_of_an_edited_scene_reuploads_no_assets(textured, tmp_path):
    """The add-on's flow: copies saved from memory into temp folders, packed as if they
    stood at the user's file. Measures whether two saves of one scene are byte-equal."""
    user_sha = digest(textured.read_bytes())
    root_dir = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-c", ADDON_SCRIPT, str(textured), str(tmp_path / "tmp"), str(root_dir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("ADDON:"))[6:])
    assert digest(textured.read_bytes()) == user_sha  # the user's file is untouched

    root = path_to_uri(tmp_path / "bucket", directory=True)
    results = []
    for run in runs:
        snapshot = SceneSnapshot.from_dict(run["snapshot"])
        assert snapshot.frame_end == 12 and snapshot.blend_path == str(textured)
        results.append(prepare_submission(Path(run["copy"]), snapshot, SubmitOptions(chunk_size=5), root))
    (spec1, _, first), (spec2, _, second) = results
    assert spec1.frames == list(range(1, 13))  # the unsaved edit is what renders
    assert spec1.inputs.main_blend == "textured.blend"  # the user's name, not the copy's
    assert first.bytes_uploaded == first.bytes_total
    # no asset is uploaded again; the .blend only if the two saves differ byte-wise
    assets = {rel: sha for rel, sha in spec2.inputs.files.items() if rel != spec2.inputs.main_blend}
    assert assets == {rel: sha for rel, sha in spec1.inputs.files.items() if rel != spec1.inputs.main_blend}
    blend_same = spec1.inputs.files["textured.blend"] == spec2.inputs.files["textured.blend"]
    blend_size = (tmp_path / "bucket" / "inputs" / spec2.inputs.files["textured.blend"]).stat().st_size
    assert (second.files_uploaded, second.bytes_uploaded) == ((0, 0) if blend_same else (1, blend_size))
    print(f"two saves of the same scene are byte-identical after packing: {blend_same}")


def test_s3_round_trip_and_resubmit(textured, aws_settings, s3_bucket):
    snapshot = read_scene(textured)
    root = f"s3://{s3_bucket}/"
    spec, spec_uri, report = prepare_submission(textured, snapshot, SubmitOptions(), root, settings=aws_settings)
    store = S3Store(aws_settings)
    assert spec_uri == f"s3://{s3_bucket}/submissions/{spec.submission_id}/spec.json"
    assert JobSpec.from_json(store.get_bytes(spec_uri)) == spec
    assert spec.inputs.uri == f"s3://{s3_bucket}/inputs/"
    keys = {info.uri.rsplit("/", 1)[1] for info in store.list(spec.inputs.uri)}
    assert keys == set(spec.inputs.files.values())
    assert report.bytes_uploaded == report.bytes_total

    _, _, again = prepare_submission(textured, snapshot, SubmitOptions(), root, settings=aws_settings)
    assert (again.bytes_uploaded, again.files_uploaded) == (0, 0)

    # a changed texture uploads only that file
    tex = next(textured.parent.rglob("wood.png"))
    write_png(tex, (1, 2, 3), size=64)
    spec3, _, changed = prepare_submission(textured, snapshot, SubmitOptions(), root, settings=aws_settings)
    assert changed.files_uploaded == 1 and changed.bytes_uploaded == tex.stat().st_size
    assert spec3.inputs.files != spec.inputs.files


def test_missing_texture_aborts_unless_allowed(textured, tmp_path):
    next(textured.parent.rglob("wood.png")).unlink()
    snapshot = read_scene(textured)
    assert [Path(p).name for p in snapshot.missing_files] == ["wood.png"]
    root = path_to_uri(tmp_path / "bucket", directory=True)
    with pytest.raises(MissingFilesError, match=r"wood\.png") as info:
        prepare_submission(textured, snapshot, SubmitOptions(), root)
    assert info.value.exit_code != 0 and not (tmp_path / "bucket").exists()  # nothing uploaded

    spec, _, report = prepare_submission(textured, snapshot, SubmitOptions(allow_missing=True), root)
    assert [Path(p).name for p in report.missing] == ["wood.png"]
    assert list(spec.inputs.files) == [report.main_blend]


def test_cancel_during_upload_writes_no_spec(textured, tmp_path):
    snapshot = read_scene(textured)
    cancel = threading.Event()

    def progress(p: Progress) -> None:
        if p.phase == "upload":
            cancel.set()

    root = path_to_uri(tmp_path / "bucket", directory=True)
    with pytest.raises(SubmissionCancelled):
        prepare_submission(textured, snapshot, SubmitOptions(), root, progress=progress, cancel=cancel)
    assert not list((tmp_path / "bucket").rglob("spec.json"))


def test_bad_root_fails_before_any_work(textured):
    snapshot = SceneSnapshot("5.2.3", "S", 1, 2, 1, 24, 1.0, 64, 36, 100, "CYCLES", blend_path=str(textured))
    with pytest.raises(StorageURIError):
        prepare_submission(textured, snapshot, SubmitOptions(), "bucket/without/scheme")


def test_pipeline_errors_have_their_own_exit_codes():
    from addon.core.errors import AwsBatchRenderError
    from addon.core.submit.packing import PackingError
    from addon.core.submit.scene_reader import SceneReadError

    kinds = (MissingFilesError, PackingError, SceneReadError, SubmissionCancelled)
    assert all(issubclass(k, AwsBatchRenderError) for k in kinds)
    assert len({k.exit_code for k in kinds}) == len(kinds) and all(k.exit_code > 1 for k in kinds)
