"""The panel's measured chunk size ("Auto Chunks"), driven through the installed
extension's operators with the real bpy and the local backend: Estimate measures the size
(the same code as ``submit --chunk auto``) and the panel says which and why; Render uses
it; without an Estimate, Render runs the scout first in its background thread (the
operator returns at once, Esc/Cancel stops it); an explicit Chunk Size still wins."""

from __future__ import annotations

import math
import re
import sys
import time
from pathlib import Path

import pytest
from test_addon_support import (  # local_store_addon: the ``addon`` fixture
    FakePanel,
    configure_prefs,
    drain,
    local_store_addon,  # noqa: F401
    mod,
    runtime,
)

bpy = pytest.importorskip("bpy")
sys.path.insert(0, str(Path(__file__).parent / "gui"))
import label_fit  # noqa: E402


def _measured_scene(path, frames: str, chunk: int = 0):
    bpy.ops.wm.open_mainfile(filepath=str(path))
    configure_prefs("", "", {}, backend="LOCAL")
    scene = bpy.context.scene
    s = scene.awsbatch
    s.use_frames_override, s.frames, s.chunk_size = True, frames, chunk
    scene.awsbatch_budget.measured_chunk = True
    return scene


def _panel_texts() -> list[str]:
    fake = FakePanel()
    mod("blender.panel").AWSBATCH_PT_output.draw(fake, bpy.context)
    return fake.layout.texts()


def _records():
    return mod("core.records").RecordStore(mod("blender.config").records_dir()).list()


def _wait_submitted(timeout: float = 240) -> None:
    drain(timeout=timeout, until=lambda: not runtime().submitting and not mod("blender.background").busy("submit"))
    drain(timeout=10)


def test_estimate_measures_the_chunk_size_and_render_uses_it(addon, tiny_scene):
    _measured_scene(tiny_scene, "1-6")
    bg = mod("blender.background")
    assert bpy.ops.awsbatch.estimate() == {"FINISHED"}
    drain(timeout=180, until=lambda: not bg.busy("estimate") and bg.MESSAGES.empty())
    drain(timeout=10)
    q = bpy.context.window_manager.awsbatch_quote
    assert q.error == "", q.error
    size = q.chunk_size
    assert size >= 1 and q.chunk_key and q.chunk_reason != "chunk size given", (size, q.chunk_reason)
    assert re.search(rf"\bchunks? of {size} frame\(s\)", q.line), q.line
    assert f"chunk size {size}: {q.chunk_reason}" in q.assumptions
    assert f"Chunk size {size}: {q.chunk_reason}" in " ".join(_panel_texts())  # wrapped to whole lines

    started = time.perf_counter()
    assert bpy.ops.awsbatch.submit() == {"FINISHED"}
    assert time.perf_counter() - started < 5
    assert runtime().submit_message.startswith("Packing"), runtime().submit_message  # no scout again
    _wait_submitted()
    rt = runtime()
    assert rt.submit_error == "", rt.submit_error
    assert "measured chunk size" not in rt.last_report  # the Estimate's size, not a new scout
    (record,) = _records()
    assert record.slice_count == math.ceil(6 / size), (record.slice_count, size)


def test_render_without_an_estimate_runs_the_scout_in_the_background(addon, tiny_scene):
    _measured_scene(tiny_scene, "1-6")
    bg = mod("blender.background")
    started = time.perf_counter()
    assert bpy.ops.awsbatch.submit() == {"FINISHED"}
    assert time.perf_counter() - started < 5  # saving the copy only: the scout runs in the thread
    assert bg.busy("submit")
    assert runtime().submit_message == "Scout render to size the chunks…"
    _wait_submitted()
    rt = runtime()
    assert rt.submit_error == "", rt.submit_error
    found = re.search(r"in (\d+) chunks.*\(measured chunk size (\d+): (.+)\)$", rt.last_report)
    assert found, rt.last_report
    (record,) = _records()
    chunks, size = int(found[1]), int(found[2])
    assert record.slice_count == chunks == math.ceil(6 / size)


def test_cancel_stops_the_scout_and_submits_nothing(addon, tiny_scene):
    _measured_scene(tiny_scene, "1-6")
    assert bpy.ops.awsbatch.submit() == {"FINISHED"}
    started = time.perf_counter()
    assert mod("blender.ops_submit").cancel_submission()  # what Esc in the modal operator calls
    _wait_submitted(timeout=60)
    assert time.perf_counter() - started < 30
    assert "cancelled during the scout render" in runtime().submit_error, runtime().submit_error
    assert _records() == []


def test_an_explicit_chunk_size_still_wins(addon, tiny_scene):
    scene = _measured_scene(tiny_scene, "1-6", chunk=3)
    q = bpy.context.window_manager.awsbatch_quote
    q.chunk_key, q.chunk_size, q.chunk_reason = "local:Scene:1-6:6", 2, "enough chunks"  # a measured size
    qp, ops = mod("blender.quote_panel"), mod("blender.ops_submit")
    snapshot = mod("blender.snapshot").snapshot_scene(scene, blend_path=bpy.data.filepath, is_dirty=False)
    options = ops.build_options(scene, mod("blender.config").prefs(bpy.context))
    target = mod("blender.config").target(scene, bpy.context)
    chosen, measure = qp.chunk_for_submit(bpy.context, target, snapshot, options)
    assert (chosen.chunk_size, measure) == (3, False)
    assert not any(t.startswith("Chunk size") or t.startswith("Render runs a scout") for t in _panel_texts())
    scene.awsbatch.chunk_size = 0  # no size given: the measured one, when it was for these frames
    q.chunk_key = mod("blender.quote_tasks").chunk_key("local", snapshot.scene, list(range(1, 7)))
    chosen, measure = qp.chunk_for_submit(bpy.context, target, snapshot, ops.build_options(scene, None))
    assert (chosen.chunk_size, measure) == (2, False)
    scene.awsbatch.frames = "1-8"  # other frames: measure again
    snapshot = mod("blender.snapshot").snapshot_scene(scene, blend_path=bpy.data.filepath, is_dirty=False)
    chosen, measure = qp.chunk_for_submit(bpy.context, target, snapshot, ops.build_options(scene, None))
    assert measure


@pytest.mark.parametrize("estimated", [False, True])
def test_the_measured_chunk_lines_fit_the_default_width(addon, estimated):
    scene = bpy.context.scene
    scene.awsbatch.backend, scene.awsbatch.chunk_size = "LOCAL", 0
    scene.awsbatch_budget.measured_chunk = True
    if estimated:
        q = bpy.context.window_manager.awsbatch_quote
        q.chunk_key, q.chunk_size = "local:Scene:1-250:250", 12
        q.chunk_reason = "start-up 3 s ≤ 10% of a chunk (12 × 2.6 s per frame)"
    cut = label_fit.cut_labels(mod("blender.panel"), 245)
    assert cut == [], "\n".join(map(str, cut))
    texts = _panel_texts()
    assert any(t.startswith("Chunk size 12" if estimated else "Render runs a scout") for t in texts), texts


@pytest.mark.parametrize("after", [0.0, 2.0])
def test_a_cancelled_scout_stops_its_blender(tiny_scene, after):
    """Cancelled before the child Blender reads its job, or while it renders: it is killed at once."""
    import threading

    from addon.core.quote.scout import ScoutCancelled, scout_render

    cancel = threading.Event()
    timer = threading.Timer(after, cancel.set)
    timer.start()
    started = time.perf_counter()
    with pytest.raises(ScoutCancelled, match="cancelled"):
        scout_render(tiny_scene, list(range(1, 301)), engine="CYCLES", cancel=cancel)
    assert time.perf_counter() - started < after + 8
