"""The panel's "Split still across N machines" option, on the installed extension with the
real bpy: when the row shows, its one-line refusals (drawn, and on Render before any
packing), and a split still rendered on This Computer through to the merged image, with
the same spec the CLI's ``submit --split-samples N`` builds."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_addon_support import (
    FakePanel,
    configure_prefs,
    ensure_installed,
    mod,
    render_and_follow,
    reset_addon_state,
    runtime,
)

bpy = pytest.importorskip("bpy")


@pytest.fixture
def addon(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # the local store lives there
    ensure_installed()
    reset_addon_state()
    configure_prefs("", "", {}, backend="LOCAL")
    yield
    reset_addon_state()


def _draw() -> list[dict]:
    fake = FakePanel()
    mod("blender.panel").AWSBATCH_PT_output.draw(fake, bpy.context)
    return fake.layout.calls


def _split_row(calls: list[dict]) -> dict | None:
    """The row holding the option, with its heading; None when the panel has no such row."""
    rows = [c for c in calls if c["name"] == "row" and c.get("heading", "").startswith("Split")]
    props = [c["args"][1] for c in calls if c["name"] == "prop" and c["args"][1].startswith("split_")]
    assert len(rows) <= 1 and (props == ["split_still", "split_parts"] if rows else not props), (rows, props)
    return rows[0] if rows else None


def _errors(calls: list[dict]) -> list[str]:
    return [c["text"] for c in calls if c["name"] == "label" and c.get("icon") == "ERROR"]


def _errors_text(calls: list[dict]) -> str:
    # draw_lines wraps to the region's width (0 headless: a word a line); the first carries the icon
    labels = [c for c in calls if c["name"] == "label"]
    first = next((i for i, c in enumerate(labels) if c.get("icon") == "ERROR"), None)
    if first is None:
        return ""
    words = [labels[first]["text"]]
    words += [c["text"] for c in labels[first + 1 :] if c.get("icon") == "BLANK1"]
    return " ".join(words)


def test_the_option_shows_for_a_still_and_short_lists_only(addon, tiny_scene):
    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))  # 24 frames
    s = bpy.context.scene.awsbatch
    assert _split_row(_draw()) is None  # an animation: no split
    s.use_frames_override, s.frames = True, "12"
    assert _split_row(_draw())["heading"] == "Split Still"
    s.frames = "1, 5-7"
    assert _split_row(_draw())["heading"] == "Split Each Frame"
    s.frames = "1-17"
    assert _split_row(_draw()) is None  # more than 16 frames
    s.split_still = True  # left on: the row stays, with the reason it cannot run
    calls = _draw()
    assert _split_row(calls) is not None
    assert "Split Still splits stills: 17 frames is more than 16. Pick at most 16 frames in the Frame List" in (
        _errors_text(calls)
    )
    s.frames = "1"
    assert _errors(_draw()) == []  # Cycles, 4 samples, 4 machines (the default): fine
    assert mod("blender.ops_submit").build_options(bpy.context.scene, None).split_samples == 4
    s.split_still = False
    assert mod("blender.ops_submit").build_options(bpy.context.scene, None).split_samples == 0


@pytest.mark.parametrize(
    ("engine", "parts", "message"),
    [
        ("BLENDER_WORKBENCH", 2, "Split Still needs Cycles (it splits the sample range); this scene renders with "
                                 "Workbench. Switch the render engine to Cycles, or untick Split Still."),
        ("EEVEE", 2, "this scene renders with EEVEE"),
        ("CYCLES", 6, "Split across 6 machines is more parts than the scene's 4 samples: use at most 4 machines"),
    ],
)  # fmt: skip
def test_refusals_show_in_the_panel_and_stop_render_before_packing(addon, tiny_scene, engine, parts, message):
    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    scene = bpy.context.scene
    if engine == "EEVEE":  # BLENDER_EEVEE_NEXT in 4.5, BLENDER_EEVEE in 5.x
        engine = next(e for e in ("BLENDER_EEVEE_NEXT", "BLENDER_EEVEE") if _engine_ok(scene, e))
    scene.render.engine = engine
    s = scene.awsbatch
    s.use_frames_override, s.frames, s.split_still, s.split_parts = True, "3", True, parts
    assert message in _errors_text(_draw())
    with pytest.raises(RuntimeError, match="Split"):
        bpy.ops.awsbatch.submit()
    assert message in runtime().submit_error
    assert "\n" not in runtime().submit_error  # one line
    assert not runtime().submitting and not mod("blender.background").busy()
    assert mod("core.records").RecordStore(mod("blender.config").records_dir()).list() == []  # nothing submitted


def _engine_ok(scene, engine: str) -> bool:
    return engine in {i.identifier for i in scene.render.bl_rna.properties["engine"].enum_items}


def test_split_still_from_the_panel_renders_and_merges_on_this_computer(addon, tiny_scene):
    from addon.core.jobspec import JobSpec
    from addon.core.storage import open_store, parse_uri
    from addon.core.submit.options import SubmitOptions
    from addon.core.submit.specbuild import build_spec
    from worker.exr_header import check_part

    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    s = bpy.context.scene.awsbatch
    s.use_frames_override, s.frames, s.split_still, s.split_parts = True, "5", True, 2
    row = render_and_follow(90, 240)
    assert row.state == "SUCCEEDED", (row.state, row.message, row.error)
    assert (row.frames_done, row.frames_total) == (1, 1)

    record = mod("core.records").RecordStore(mod("blender.config").records_dir()).list(str(tiny_scene))[0]
    spec = JobSpec.from_json(open_store(record.spec_uri).get_bytes(record.spec_uri))
    # what the CLI's `submit --split-samples 2 --frames 5` puts in the spec, from the same snapshot
    snapshot = mod("blender.snapshot").snapshot_scene(bpy.context.scene, blend_path=str(tiny_scene))
    cli = build_spec(snapshot, SubmitOptions(split_samples=2, frames="5"), {"s.blend": "0" * 64}, "s.blend",
                     "file:///tmp/x/", "x", "2026-12-01T00:00:00+00:00", "0")  # fmt: skip
    assert (spec.still_split.parts, spec.still_split.frames, spec.slices) == (2, [5], [[5], [5]])
    assert (spec.still_split, spec.slices, spec.output.video, spec.output.image_format) == (
        cli.still_split, cli.slices, cli.output.video, cli.output.image_format
    )
    from addon.core.still_split import merged_uri, part_uri

    for uri in (part_uri(spec, 5, 0), part_uri(spec, 5, 1), merged_uri(spec, 5)):
        check_part(Path(parse_uri(uri).path).read_bytes())  # whole multilayer EXRs
    final = Path(parse_uri(spec.frame_uri(5)).path)
    data = final.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (64, 36)


def test_a_split_still_row_shows_its_parts_as_progress(addon):
    rt = runtime()
    row = rt.jobs.add()
    row.submission_id, row.backend, row.frames_total = "poster-20261202-000000-ab12cd", "aws", 1
    status = {"state": "RUNNING", "frames_total": 1, "frames_done": 0, "parts_total": 8, "parts_done": 3,
              "chunk_counts": {"RUNNING": 5, "SUCCEEDED": 3}}  # fmt: skip
    assert mod("blender.job_rows").apply_status(row, status)
    assert row.counts == "1 frame, 3 of 8 parts"
    assert row.fraction == pytest.approx(0.95 * 3 / 8)  # not 0 until the merge
    fake = FakePanel()
    mod("blender.panel").AWSBATCH_PT_jobs.draw(fake, bpy.context)
    assert "1 frame, 3 of 8 parts" in fake.layout.texts()
    status.update(state="SUCCEEDED", frames_done=1, parts_done=8)
    mod("blender.job_rows").apply_status(row, status)
    assert row.fraction == 1.0 and row.finished


def test_the_split_row_and_its_refusal_fit_the_default_width(addon):
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "gui"))
    import label_fit
    from test_addon_labels import DEFAULT_REGION_WIDTH

    scene = bpy.context.scene
    engine, frames = scene.render.engine, (scene.frame_start, scene.frame_end)
    try:
        scene.frame_end = scene.frame_start  # a still
        scene.awsbatch.split_still, scene.awsbatch.split_parts = True, 8
        scene.render.engine = "BLENDER_WORKBENCH"
        assert "needs Cycles" in mod("blender.split_panel").refusal(scene)
        row = runtime().jobs.add()
        row.submission_id, row.backend, row.state = "poster-20261202-000000-ab12cd", "aws", "RUNNING"
        row.frames_total = 1
        row.counts = "1 frame, 13 of 16 parts"
        cut = label_fit.cut_labels(mod("blender.panel"), DEFAULT_REGION_WIDTH)
        assert cut == [], "\n".join(map(str, cut))
    finally:
        scene.render.engine, (scene.frame_start, scene.frame_end) = engine, frames
        scene.awsbatch.split_still = False
