"""Drive the add-on in a real Blender window (run by scripts/gui_tier.sh, not by pytest).

    blender scene.blend -p 0 0 1600 1000 --python drive.py -- OUT_DIR BIG_FILE

A generator of steps runs from a persistent ``bpy.app.timers`` callback, so Blender's own
event loop runs between steps: the add-on's timer fires, modal operators get real events
(Esc and Return are typed with xdotool into the X server), and panels are drawn. Operators
are called with a real window/area/region context (``INVOKE_DEFAULT``). Every check is an
assertion on what the panel's properties say; screenshots are taken with ImageMagick's
``import``. The result lands in OUT_DIR/results.json ("ok": true/false) and the process
exits 0 only when every step passed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import traceback

import bpy

ARGS = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
OUT = ARGS[0] if ARGS else "/tmp/gui-out"
BIG_FILE = ARGS[1] if len(ARGS) > 1 else ""
os.makedirs(OUT, exist_ok=True)
RESULTS: dict = {"ok": False, "steps": [], "blender": bpy.app.version_string, "timings": {}}
T0 = time.monotonic()

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import label_fit  # noqa: E402  (beside this file)


def log(msg: str) -> None:
    line = f"[drive {time.monotonic() - T0:6.1f}s] {msg}"
    print(line, flush=True)
    RESULTS["steps"].append(line)


def addon():
    for name, mod in sys.modules.items():
        if name.endswith(".aws_batch_render") and name.startswith("bl_ext."):
            return mod
    raise AssertionError("the extension is not loaded: " + ", ".join(bpy.context.preferences.addons.keys()))


def blender_module(name: str):
    return sys.modules[addon().__name__ + ".blender." + name]


def props_area():
    window = bpy.context.window_manager.windows[0]
    for area in window.screen.areas:
        if area.type == "PROPERTIES":
            region = next(r for r in area.regions if r.type == "WINDOW")
            return window, area, region
    raise AssertionError("no Properties editor in the default layout")


def call(op_path: str, *args, **kwargs):
    """Call ``bpy.ops.<op_path>`` with the Properties editor as its context."""
    window, area, region = props_area()
    op = bpy.ops
    for part in op_path.split("."):
        op = getattr(op, part)
    with bpy.context.temp_override(window=window, area=area, region=region):
        return op(*args, **kwargs)


def xdo(*args: str) -> None:
    subprocess.run(["xdotool", *args], check=True, timeout=20)


def screen_xy(area, region, x: int, y_from_top: int) -> tuple[int, int]:
    """Region coordinates (y from the region's top) to X screen coordinates."""
    window = bpy.context.window_manager.windows[0]
    return region.x + x, window.height - (region.y + region.height) + y_from_top


def scroll(down: bool) -> None:
    """Scroll the Properties editor to its end (or back), as a user does to see the rows."""
    _w, area, region = props_area()
    x, y = screen_xy(area, region, region.width // 2, region.height // 2)
    xdo("mousemove", str(x), str(y), "click", "--repeat", "25", "--delay", "20", "5" if down else "4")


def shot(name: str) -> None:
    path = os.path.join(OUT, f"{name}.png")
    subprocess.run(["import", "-window", "root", path], check=True, timeout=60)
    # the Properties editor alone, for the docs
    _w, area, _r = props_area()
    window = bpy.context.window_manager.windows[0]
    top = window.height - (area.y + area.height)
    crop = f"{area.width}x{area.height}+{area.x}+{top}"
    subprocess.run(["convert", path, "-crop", crop, "+repage", os.path.join(OUT, f"{name}-properties.png")],
                   check=True, timeout=60)
    log(f"screenshot {name}.png")


def wait_for(cond, timeout: float, what: str):
    """Yield (give Blender's loop time) until ``cond()`` is true."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        yield 0.25


def rows():
    return bpy.context.window_manager.awsbatch.jobs


DRAWS = [0]  # how often the AWS Batch panel was drawn
CANCELLED_AT: list[float] = []  # when the submit operator's Esc handler asked to cancel


def watch_cancel() -> None:
    """Note when the modal operator's Esc handler cancels (it calls the module's function)."""
    ops_submit = blender_module("ops_submit")
    original = ops_submit.cancel_submission

    def cancel_submission():
        CANCELLED_AT.append(time.monotonic())
        return original()

    ops_submit.cancel_submission = cancel_submission


def count_draws() -> None:
    """Wrap the panel's draw() (Blender looks it up on the class at every redraw)."""
    cls = blender_module("panel").AWSBATCH_PT_output
    if getattr(cls.draw, "_counted", False):
        return
    original = cls.draw

    def draw(self, context):
        DRAWS[0] += 1
        return original(self, context)

    draw._counted = True
    cls.draw = draw


def open_panel():
    """Open the (closed by default) AWS Batch panel the way a user does: Ctrl+click on its
    header, which also collapses every other panel. First every panel is collapsed
    (Ctrl+click the first header: it alone stays open; click it shut); then the add-on's
    panel is the last header of the stack, found by clicking up from below the stack until
    its draw() runs."""
    window, area, region = props_area()
    area.spaces.active.context = "OUTPUT"
    # No window manager runs on the Xvfb display: give Blender's window the keyboard focus
    # itself, or key presses (Ctrl, Esc, Return) never reach it.
    xdo("search", "--name", "Blender", "windowfocus")
    yield 1.0
    scale = bpy.context.preferences.system.ui_scale
    log(f"window {window.width}x{window.height}; Properties region x={region.x} y={region.y} "
        f"{region.width}x{region.height}; ui scale {scale}; draws so far {DRAWS[0]}")
    first, pitch = int(53 * scale), 28 * scale  # the first header's centre; collapsed header pitch
    x, y = screen_xy(area, region, 60, first)
    xdo("mousemove", str(x), str(y), "sleep", "0.5", "keydown", "Control_L", "sleep", "0.3", "click", "1",
        "sleep", "0.3", "keyup", "Control_L")
    yield 1.5
    xdo("click", "1")
    yield 2.5
    shot("collapsed")
    for y_top in range(int(first + 10 * pitch), first, -int(pitch / 2)):
        before = DRAWS[0]
        x, y = screen_xy(area, region, 60, y_top)
        xdo("mousemove", str(x), str(y), "sleep", "0.3", "click", "1")
        end = time.monotonic() + 3.0  # one redraw takes up to ~1.5 s on 2 software-GL cores
        while DRAWS[0] == before and time.monotonic() < end:
            yield 0.2
        if DRAWS[0] > before:
            log(f"panel opened by Ctrl+click at region y={y_top}")
            xdo("mousemove", str(window.width // 2), str(window.height // 2))  # no tooltip in the shots
            return
    raise AssertionError("could not open the AWS Batch panel by clicking its header")


def check_labels(tag: str) -> None:
    """No label drawn by the panel is wider than the room it gets (blf, the UI font)."""
    _w, _a, region = props_area()
    cut = label_fit.cut_labels(blender_module("panel"), region.width)
    RESULTS.setdefault("label_checks", {})[tag] = {"region_width": region.width, "cut": cut}
    assert not cut, f"labels cut off at {region.width} px ({tag}): {cut}"
    log(f"labels fit at {region.width} px ({tag})")


def scenario():
    yield 2.0
    mod = addon()
    log(f"add-on {mod.__name__} loaded in Blender {bpy.app.version_string}")
    # the point of this tier: this Blender cannot import requests at all (Debian packages
    # none), and every step below (submit, render, cancel, download, reopen) works anyway
    assert importlib.util.find_spec("requests") is None, "requests is importable in this Blender"
    RESULTS["requests_importable"] = False
    assert "requests" not in sys.modules, "requests was imported (Debian's Blender has none)"
    scene = bpy.context.scene
    scene.awsbatch.backend = "LOCAL"
    rt = bpy.context.window_manager.awsbatch
    count_draws()
    watch_cancel()
    yield from open_panel()
    yield 1.5
    shot("idle")
    check_labels("idle")

    # 1. Esc during packing: a big file makes the copy last; Esc must stop it within ~1 s.
    if BIG_FILE:
        image = bpy.data.images.new("big-texture", 4, 4)
        image.source = "FILE"
        image.filepath = BIG_FILE
        image.use_fake_user = True
        result = call("awsbatch.submit", "INVOKE_DEFAULT")
        assert result == {"RUNNING_MODAL"}, result
        # Esc at once: the pack of the 192 MB file takes about a second on a fast disk, and
        # Blender handles the key after its next redraw (0.5-1.5 s on 2 software-GL cores)
        t = time.monotonic()
        _window, area, region = props_area()
        x, y = screen_xy(area, region, region.width // 2, region.height // 2)
        xdo("mousemove", str(x), str(y), "key", "Escape")
        bg = blender_module("background")
        yield from wait_for(lambda: bool(CANCELLED_AT), 60, "Esc to reach the operator")
        yield from wait_for(lambda: not bg.busy("submit"), 30, "the submission thread to stop")
        stopped = time.monotonic()
        yield from wait_for(lambda: not rt.submitting, 30, "the panel to show the cancel")
        timings = RESULTS["timings"]
        timings["esc_to_cancel_s"] = round(CANCELLED_AT[0] - t, 2)  # Blender's event loop on this machine
        timings["cancel_to_stopped_s"] = round(stopped - CANCELLED_AT[0], 2)  # the add-on's part
        log(f"Esc reached the operator after {timings['esc_to_cancel_s']} s; the thread stopped "
            f"{timings['cancel_to_stopped_s']} s later: {rt.last_report!r}")
        assert "cancelled" in rt.last_report.lower(), rt.last_report
        assert len(rows()) == 0, "a cancelled submission left a row"
        assert timings["cancel_to_stopped_s"] < 5.0  # thread start-up and tracing check between steps
        bpy.data.images.remove(image)
        yield 1.0

    # 2. Render: the timer fills the row until the video is there.
    t = time.monotonic()
    assert call("awsbatch.submit", "INVOKE_DEFAULT") == {"RUNNING_MODAL"}
    yield 0.3
    assert rt.submitting and rt.submit_message, "no feedback right after the click"
    yield from wait_for(lambda: len(rows()) == 1, 120, "the submission's row")
    row = rows()[0]
    sid = row.submission_id
    yield from wait_for(lambda: row.frames_done > 0 or row.finished, 120, "the first frame")
    scroll(True)
    yield 1.5
    shot("running")
    check_labels("running")
    yield from wait_for(lambda: row.finished, 300, "the render to finish")
    RESULTS["timings"]["render_s"] = round(time.monotonic() - t, 1)
    assert row.state == "SUCCEEDED", (row.state, row.error, row.message)
    assert row.frames_done == row.frames_total == scene.frame_end - scene.frame_start + 1
    assert row.video_uri, "no video"
    assert row.latest_frame == scene.frame_end, f"latest frame {row.latest_frame} is stale"
    log(f"{sid}: {row.state} {row.frames_done}/{row.frames_total} in {RESULTS['timings']['render_s']} s")

    # 3. Download the video; opening it fails here (no system opener) and says so in the panel.
    assert call("awsbatch.download", submission_id=sid, what="VIDEO") == {"FINISHED"}
    yield from wait_for(lambda: bool(row.downloaded), 60, "the download")
    assert os.path.isfile(row.downloaded) and os.path.getsize(row.downloaded) > 0, row.downloaded
    RESULTS["video"] = row.downloaded
    yield from wait_for(lambda: row.preview_icon > 0, 30, "the thumbnail")
    try:
        call("awsbatch.open_result", submission_id=sid)
    except RuntimeError as exc:  # the operator reports an error: bpy.ops raises it here
        log(f"open video: {exc}")
    yield 1.0
    log(f"open video -> row.error={row.error!r}")
    assert row.error, "opening the video without a system opener showed nothing in the panel"
    scroll(True)
    yield 1.5
    shot("finished")
    check_labels("finished")

    # 4. Cancel a running job, through the confirmation popup (Return confirms).
    scene.frame_end = 400
    assert call("awsbatch.submit", "INVOKE_DEFAULT") == {"RUNNING_MODAL"}
    yield from wait_for(lambda: len(rows()) == 2 and rows()[0].state == "RUNNING", 180, "the second job to run")
    row2 = rows()[0]
    sid2 = row2.submission_id  # rows are replaced when the file is reopened: keep the id
    result = call("awsbatch.cancel_job", "INVOKE_DEFAULT", submission_id=row2.submission_id)
    yield 1.5
    shot("cancel-confirm")
    xdo("key", "Return")
    yield from wait_for(lambda: row2.finished, 60, "the cancel")
    assert row2.state == "CANCELLED", row2.state
    log(f"cancelled {row2.submission_id} at {row2.frames_done}/{row2.frames_total} ({result})")
    yield 1.0

    # 5. Reopen the file: the history, the downloaded video and the thumbnail are back.
    bpy.ops.wm.open_mainfile(filepath=bpy.data.filepath)
    yield 2.0
    yield from wait_for(lambda: len(rows()) == 2, 30, "the history after reopening")
    again = {r.submission_id: r for r in rows()}
    assert set(again) == {sid, sid2}, set(again)
    done = again[sid]
    assert done.state == "SUCCEEDED" and done.downloaded == RESULTS["video"], (done.state, done.downloaded)
    yield from wait_for(lambda: done.preview_icon > 0, 30, "the thumbnail after reopening")
    assert again[sid2].state == "CANCELLED"
    yield from open_panel()
    scroll(True)
    yield 1.5
    shot("reopened")
    assert "requests" not in sys.modules, "requests was imported (Debian's Blender has none)"
    RESULTS["ok"] = True
    log("all steps passed")


_STEPS = scenario()


def _tick():
    try:
        return next(_STEPS)
    except StopIteration:
        return _finish(0)
    except Exception:
        RESULTS["error"] = traceback.format_exc()
        print(RESULTS["error"], flush=True)
        try:
            shot("failure")
        except Exception:
            pass
        return _finish(1)


def _finish(code: int):
    RESULTS["seconds"] = round(time.monotonic() - T0, 1)
    with open(os.path.join(OUT, "results.json"), "w") as fh:
        json.dump(RESULTS, fh, indent=2)
    sys.stdout.flush()
    os._exit(code)  # quit_blender() always exits 0


bpy.app.timers.register(_tick, first_interval=3.0, persistent=True)
