"""No text of the AWS Batch panels is cut off at Blender's default Properties width.

The panels are drawn (in the bpy module, into a layout that records the tree) for the
states an artist meets: idle, packing, running on AWS and on this computer, failed with a
long error, finished and downloaded. Every label, button and property label is measured
with Blender's own text measuring (``blf.dimensions``, the UI font) against the room the
layout gives it (tests/gui/label_fit.py). The GUI tier (scripts/gui_tier.sh) runs the same
measurement inside a real Blender window on the drawn panel.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_addon_support import ensure_installed, mod, reset_addon_state, runtime

bpy = pytest.importorskip("bpy")
sys.path.insert(0, str(Path(__file__).parent / "gui"))
import label_fit  # noqa: E402

#: The Properties editor's WINDOW region in Blender's default layout (the "Layout"
#: workspace) at 1600x1000: about 245 px at interface scale 1.
DEFAULT_REGION_WIDTH = 245

#: (interface scale, region width) of real windows: scale 1, and the GUI tier's Xvfb
#: display at 75 DPI, where Blender 4.3 draws at 1.0417 in a 247 px region (5.2: 252 px).
#: The bpy module has no window (its scale reads 0), so the scale is set on the add-on's
#: and the measurement's text measuring alike.
WINDOWS = [(1.0, DEFAULT_REGION_WIDTH), (75 / 72, 247)]

LONG_ERROR = (
    "Online access is off, so nothing was sent to AWS. Turn on Preferences › System › Network › "
    "Allow Online Access (or start Blender with --online-mode), or render on 'This Computer'."
)


@pytest.fixture
def addon():
    ensure_installed()
    reset_addon_state()
    yield
    reset_addon_state()


def _row(rt, sid: str, backend: str, state: str, done: int, total: int, **values):
    row = rt.jobs.add()
    row.submission_id, row.backend, row.state = sid, backend, state
    row.frames_done, row.frames_total = done, total
    row.fraction = done / total
    row.finished = state in ("SUCCEEDED", "FAILED", "CANCELLED")
    for key, value in values.items():
        setattr(row, key, value)
    return row


def _fill(rt) -> None:
    rows = mod("blender.job_rows")
    _row(rt, "my-long-scene-name-20261201-231502-ab12cd", "local", "RUNNING", 60, 160, eta=75.0, elapsed=42.0,
         counts=rows.counts_text({"RUNNING": 2, "SUCCEEDED": 3, "RUNNABLE": 11}), preview_frame=60)
    _row(rt, "scene-20261201-230000-0a0b0c", "aws", "FAILED", 8, 12, elapsed=3725.0, vcpu_hours=1.25,
         failed_slices="3, 7", first_failed_slice=3, error=LONG_ERROR)
    _row(rt, "scene-20261130-101010-ffffff", "local", "SUCCEEDED", 24, 24, elapsed=17.0, video_uri="file:///v.mp4",
         downloaded="/home/artist/projects/shots/render/scene-20261130-101010-ffffff/scene.mp4",
         message="Downloaded 1 file(s) to /home/artist/projects/shots/render/scene-20261130-101010-ffffff")


@pytest.mark.parametrize("scale,width", WINDOWS, ids=lambda v: str(round(v, 3)))
@pytest.mark.parametrize("backend", ["LOCAL", "AWS"])
def test_no_label_is_cut_off_at_the_default_width(addon, backend, scale, width, monkeypatch):
    panel = mod("blender.panel")
    monkeypatch.setattr(mod("blender.textfit"), "ui_scale", lambda: scale)
    monkeypatch.setattr(label_fit, "ui_scale", lambda: scale)
    scene = bpy.context.scene
    scene.awsbatch.backend = backend
    scene.awsbatch_budget.use_max_cost = True  # its Max Cost and price fields show
    rt = runtime()
    _fill(rt)
    rt.submit_error = LONG_ERROR
    cut = label_fit.cut_labels(panel, width)
    assert cut == [], "\n".join(map(str, cut))
    rt.submit_error = ""
    rt.submitting, rt.submit_message, rt.submit_fraction = True, "Packing 3 of 5 files", 0.3
    cut = label_fit.cut_labels(panel, width)
    assert cut == [], "\n".join(map(str, cut))


def test_the_measurement_catches_a_cut_label(addon):
    """The old labels ("Chunks: Runnable 1 · Succeeded 1", the full id with its state) do not fit."""
    rt = runtime()
    old = "scene-20261201-231502-ab12cd  ·  Succeeded"
    rt.last_report = "x"  # drawn as one label by the old panel; the new one wraps it
    width = label_fit.text_width(old)
    assert width > DEFAULT_REGION_WIDTH - 40, width
    root = label_fit.Node("root")
    root.label(text=old, icon="CHECKMARK")
    out: list = []
    label_fit.measure(root, DEFAULT_REGION_WIDTH - 20, out)
    assert out and out[0]["text"] == old


def test_messages_wrap_to_whole_lines_that_fit(addon):
    textfit = mod("blender.textfit")
    lines = textfit.wrap(LONG_ERROR, 200)
    assert len(lines) > 3 and " ".join(lines) == LONG_ERROR
    assert all(textfit.text_width(line) <= 200 for line in lines)
