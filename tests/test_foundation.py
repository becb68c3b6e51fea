"""The layout's promises: the core imports without Blender or boto3, the sample scene
is what the fixtures say, status and records behave."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from addon.core.backends.base import SubmissionRecord
from addon.core.backends.status import estimate_eta, format_duration, overall_state, summarize
from addon.core.progress import SliceProgress
from addon.core.records import RecordNotFoundError, RecordStore

ROOT = Path(__file__).resolve().parent.parent


def test_core_and_cli_import_without_bpy_and_without_loading_boto3():
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        sys.modules["bpy"] = None  # any `import bpy` now raises ImportError
        import addon, addon.core, addon.cli
        for mod in pkgutil.walk_packages(addon.core.__path__, "addon.core."):
            importlib.import_module(mod.name)
        import worker
        print("boto3" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False", "boto3 must be imported lazily"


def test_no_bpy_import_outside_the_blender_package():
    offenders = []
    for path in (ROOT / "addon").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("addon/blender/"):
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip().startswith(("import bpy", "from bpy")):
                offenders.append(rel)
    assert offenders == []


def test_tiny_scene_is_what_fixtures_promise(tiny_scene_master):
    code = textwrap.dedent(
        f"""
        import bpy, json
        bpy.ops.wm.open_mainfile(filepath={str(tiny_scene_master)!r})
        s = bpy.context.scene
        print("JSON" + json.dumps(dict(start=s.frame_start, end=s.frame_end, x=s.render.resolution_x,
              y=s.render.resolution_y, camera=s.camera is not None, engine=s.render.engine,
              animated=bpy.data.objects["Cube"].animation_data is not None)))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("JSON"))
    info = json.loads(line[4:])
    assert info == {"start": 1, "end": 24, "x": 64, "y": 36, "camera": True, "engine": "CYCLES",
                    "animated": True}


def test_status_summary_and_eta():
    records = [
        SliceProgress(index=0, frames_total=10, frames_done=10, seconds_per_frame=2.0, state="SUCCEEDED"),
        SliceProgress(index=1, frames_total=10, frames_done=5, seconds_per_frame=4.0),
    ]
    st = summarize(
        submission_id="s", backend="aws", frames_total=30, frames_done=15,
        chunk_counts={"SUCCEEDED": 1, "RUNNING": 1, "RUNNABLE": 1, "FAILED": 0},
        stitch_state="PENDING", records=records,
    )
    assert st.state == "RUNNING"
    assert st.chunk_counts == {"SUCCEEDED": 1, "RUNNING": 1, "RUNNABLE": 1}
    assert abs(st.seconds_per_frame - (2.0 * 10 + 4.0 * 5) / 15) < 1e-9
    assert abs(st.eta_seconds - 15 * st.seconds_per_frame / 1) < 1e-9
    assert st.fraction == 0.5
    assert not st.finished


def test_overall_state():
    assert overall_state({"SUCCEEDED": 3}, "SUCCEEDED", 9) == "SUCCEEDED"
    assert overall_state({"SUCCEEDED": 3}, "RUNNING", 9) == "STITCHING"
    assert overall_state({"SUCCEEDED": 2, "FAILED": 1}, "FAILED", 6) == "FAILED"
    assert overall_state({"SUCCEEDED": 2, "FAILED": 1, "RUNNING": 1}, "PENDING", 6) == "RUNNING"
    assert overall_state({"RUNNABLE": 3}, "PENDING", 0) == "RUNNABLE"
    assert overall_state({"CANCELLED": 3}, "CANCELLED", 0) == "CANCELLED"
    assert estimate_eta(0, None, 0, 0) == 0.0
    assert estimate_eta(10, None, 1, 0) is None
    assert estimate_eta(10, 3.0, 2, 0) == 15.0
    assert format_duration(95) == "1m 35s"
    assert format_duration(3700) == "1h 01m"
    assert format_duration(None) == "--"


def test_records_save_load_list(tmp_path):
    store = RecordStore(tmp_path)
    for i, blend in enumerate(["/a.blend", "/b.blend", "/a.blend"]):
        store.save(SubmissionRecord(
            submission_id=f"sub-{i}", backend="local", spec_uri="file:///x/spec.json",
            created_at=f"2026-01-0{i + 1}T00:00:00+00:00", source_blend=blend, frames_total=3, slice_count=1,
        ))
    assert [r.submission_id for r in store.list("/a.blend")] == ["sub-2", "sub-0"]
    assert store.load("sub-1").source_blend == "/b.blend"
    (tmp_path / "garbage.json").write_text("{not json")
    assert len(store.list()) == 3
    try:
        store.load("sub-")
    except RecordNotFoundError as exc:
        assert "matches 3 submissions" in str(exc)
    else:
        raise AssertionError("an ambiguous prefix must be refused")
    try:
        store.load("zzz")
    except RecordNotFoundError as exc:
        assert "aws-batch-render list" in str(exc)
    else:
        raise AssertionError("an unknown id must be refused")


def test_scene_snapshot_frame_rate_survives_float32_fps_base():
    import struct

    from addon.core.submit.scene import SceneSnapshot

    f32 = struct.unpack("f", struct.pack("f", 1.001))[0]  # how Blender stores fps_base
    snap = SceneSnapshot("5.2.3", "S", 1, 10, 1, 30, f32, 1920, 1080, 50, "CYCLES")
    assert (snap.fps_fraction.numerator, snap.fps_fraction.denominator) == (30000, 1001)
    assert (snap.width, snap.height) == (960, 540)
    assert SceneSnapshot.from_dict(snap.to_dict()) == snap


def test_every_error_class_that_sets_an_exit_code_has_its_own():
    """Scripts can tell failures apart by exit status; 2 (bad input) and 130 (cancelled by the
    user, wherever it happened: scout, packing, upload) are shared on purpose."""
    import importlib
    import pkgutil

    import addon.core
    from addon.core.errors import AwsBatchRenderError

    for mod in pkgutil.walk_packages(addon.core.__path__, "addon.core."):
        importlib.import_module(mod.name)
    seen: dict[int, str] = {}
    stack, visited = [AwsBatchRenderError], set()
    while stack:
        cls = stack.pop()
        if cls in visited:  # a class with two error bases is reached twice
            continue
        visited.add(cls)
        stack.extend(cls.__subclasses__())
        if cls is AwsBatchRenderError or "exit_code" not in cls.__dict__ or not cls.__module__.startswith("addon"):
            continue
        code = cls.exit_code
        assert code not in (0, 1), f"{cls.__name__}: 0 and 1 are success and unexpected failure"
        if code not in (2, 130):
            assert code not in seen, f"{cls.__name__} and {seen.get(code)} share exit code {code}"
            seen[code] = cls.__name__
    assert len(seen) >= 20
