"""The persistent timer on Blender's main thread: it drains the background threads'
messages, writes properties, tags a redraw, and schedules status polls.

Each tick handles messages for at most :data:`TICK_BUDGET_S` and never waits on the
network (polls run in a thread; see ``tasks.poll``). The poll interval starts at
:data:`POLL_MIN_S`, grows by :data:`POLL_BACKOFF` while nothing changes, up to
:data:`POLL_MAX_S`, and polling stops once every job has finished. The timer itself
unregisters when there is nothing left to do and is started again by whatever gives it
work (a submit, a refresh, a file with running jobs).

Timers do not fire in bpy-module mode (tests): tests call :func:`tick` directly.
"""

from __future__ import annotations

import logging
import queue
import time
from typing import Any

import bpy
from bpy.app.handlers import persistent

from ..core.backends.base import SubmissionRecord
from ..core.records import RecordStore
from . import background as bg
from . import config, job_rows, previews, statusbar, tasks

log = logging.getLogger(__name__)

TICK_BUDGET_S = 0.008
FAST_S = 0.1  # while threads run or messages wait
POLL_MIN_S = 2.0
POLL_MAX_S = 60.0
POLL_BACKOFF = 1.6


class _State:
    next_poll = 0.0  # time.monotonic() of the next poll
    interval = POLL_MIN_S
    changed = False  # did the last poll change anything visible?
    longest_tick = 0.0  # seconds, for the benchmark
    last_redraw = 0.0


STATE = _State()


# --- the timer ---------------------------------------------------------------------------


def tick() -> float | None:
    """Drain messages, maybe start a poll; seconds until the next tick, or None to stop."""
    started = time.perf_counter()
    try:
        wm = bpy.context.window_manager
        if wm is None:
            return 0.5
        rt = wm.awsbatch
        if rt.jobs_for != job_rows.current_blend() or not rt.get("_loaded"):
            reload_rows(rt)
        changed = False
        while time.perf_counter() - started < TICK_BUDGET_S:
            try:
                message = bg.MESSAGES.get_nowait()
            except queue.Empty:
                break
            try:
                changed |= dispatch(message, rt)
            except Exception:  # a bad message must not kill the timer
                log.exception("could not apply %r", message)
        maybe_poll(rt)
        if changed or (rt.submitting and time.monotonic() - STATE.last_redraw > 0.25):
            tag_redraw()  # while packing, also without news: the bar and its text stay alive
        return next_interval(rt)
    finally:
        STATE.longest_tick = max(STATE.longest_tick, time.perf_counter() - started)


def next_interval(rt: Any) -> float | None:
    if bg.busy() or not bg.MESSAGES.empty():
        return FAST_S
    if job_rows.unfinished(rt) and rt.polling:
        return max(FAST_S, min(STATE.next_poll - time.monotonic(), POLL_MAX_S))
    return None  # idle: the timer stops; ensure_running() restarts it


def ensure_running(first: float = 0.0) -> None:
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=first, persistent=True)


def stop() -> None:
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)


def tag_redraw() -> None:
    """Redraw the panels and the status bar (its AWS Batch item) in every window."""
    STATE.last_redraw = time.monotonic()
    wm = bpy.context.window_manager
    for window in getattr(wm, "windows", ()):
        for area in window.screen.areas:
            if area.type in ("PROPERTIES", "PREFERENCES", "STATUSBAR"):
                area.tag_redraw()


# --- polling -------------------------------------------------------------------------------


def poll_soon(rt: Any = None, delay: float = 0.0) -> None:
    """Poll the unfinished jobs after ``delay`` seconds, with the backoff reset."""
    rt = rt or job_rows.runtime()
    rt.polling = True
    STATE.interval = POLL_MIN_S
    STATE.next_poll = time.monotonic() + delay
    rt.poll_interval = STATE.interval
    ensure_running()


def maybe_poll(rt: Any) -> bool:
    """Start a poll thread when one is due; True when it started."""
    if not rt.polling or time.monotonic() < STATE.next_poll or bg.busy("poll"):
        return False
    rows = job_rows.unfinished(rt)
    if not rows:
        rt.polling = False
        return False
    ids = [r.submission_id for r in rows if r.backend == "local" or bpy.app.online_access]
    if len(ids) < len(rows):
        rt.last_report = "Online access is off: AWS job status is not refreshed (Preferences › System)"
    if not ids:
        rt.polling = False
        return False
    STATE.changed = False
    STATE.next_poll = time.monotonic() + STATE.interval
    return bg.start("poll", "poll", tasks.poll, ids, config.records_dir())


def _after_poll(rt: Any) -> None:
    if STATE.changed:
        STATE.interval = POLL_MIN_S
    else:
        STATE.interval = min(POLL_MAX_S, STATE.interval * POLL_BACKOFF)
    STATE.next_poll = time.monotonic() + STATE.interval
    rt.poll_interval = STATE.interval
    if not job_rows.unfinished(rt):
        rt.polling = False


# --- rows for the open file -----------------------------------------------------------------


def reload_rows(rt: Any = None) -> None:
    rt = rt or job_rows.runtime()
    blend = job_rows.current_blend()
    records = RecordStore(config.records_dir()).list(source_blend=blend)
    job_rows.load_rows(records, blend, rt)
    rt["_loaded"] = True
    if job_rows.unfinished(rt):
        poll_soon(rt)


@persistent
def on_load_post(*_args: Any) -> None:
    rt = job_rows.runtime()
    rt.jobs.clear()
    rt["_loaded"] = False
    ensure_running()


# --- applying messages -----------------------------------------------------------------------


def dispatch(message: Any, rt: Any) -> bool:
    """Apply one message; True when the panel should redraw."""
    handler = _HANDLERS.get(type(message))
    if handler is None:
        log.warning("unknown message %r", message)
        return False
    result = handler(message, rt)
    return True if result is None else bool(result)


def _submit_progress(m: bg.SubmitProgress, rt: Any) -> None:
    rt.submitting = True
    rt.submit_phase = m.phase
    rt.submit_fraction = min(1.0, m.done / m.total) if m.total else 0.0
    rt.submit_message = m.message or m.phase.capitalize()
    wm = bpy.context.window_manager
    wm.progress_update(int(rt.submit_fraction * 100))


def _submit_done(m: bg.SubmitDone, rt: Any) -> None:
    record = SubmissionRecord.from_json(m.record_json)
    rt.submitting = False
    rt.submit_fraction = 1.0
    rt.submit_message = m.summary
    rt.last_report = m.summary
    bpy.context.window_manager.progress_end()
    log.info("%s", m.summary)
    if record.source_blend == rt.jobs_for:
        job_rows.add_record(record, rt)
    poll_soon(rt, delay=0.5)


def _record_updated(m: bg.RecordUpdated, rt: Any) -> None:
    record = SubmissionRecord.from_json(m.record_json)
    row = job_rows.find(rt, record.submission_id)
    if row is not None:
        job_rows.fill_from_record(row, record)
        row.finished = False
        row.error = ""
        row.message = m.message
    rt.last_report = m.message
    poll_soon(rt)


def _status_update(m: bg.StatusUpdate, rt: Any) -> bool:
    row = job_rows.find(rt, m.submission_id)
    if row is None:
        return False
    was_finished = row.finished
    changed = job_rows.apply_status(row, m.status)
    row.error = ""
    STATE.changed |= changed
    fetch_preview(row)
    if row.finished and not was_finished:
        statusbar.announce(row)
    return changed


def fetch_preview(row: Any) -> None:
    """Fetch the latest frame as the thumbnail unless it is shown or being fetched; called
    again when a fetch ends, so the thumbnail never stays on an older frame."""
    if row.latest_frame < 0 or row.latest_frame == row.preview_frame or not row.latest_frame_uri:
        return
    key = f"preview:{row.submission_id}"
    if bg.busy(key):
        return
    record = RecordStore(config.records_dir()).load(row.submission_id)
    bg.start("preview", key, tasks.fetch_preview, record.to_json(), row.latest_frame, row.latest_frame_uri,
             config.preview_dir())


def _log_text(m: bg.LogText, rt: Any) -> None:
    name = f"AWS Batch {m.submission_id}" + (f" slice {m.slice_index}" if m.slice_index >= 0 else "")
    text = bpy.data.texts.get(name) or bpy.data.texts.new(name)
    text.clear()
    text.write(m.text or "(the log is empty)")
    row = job_rows.find(rt, m.submission_id)
    if row is not None:
        row.message = f"Log in the text block '{name}'"
    rt.last_report = f"Log in the text block '{name}'"


def _downloaded(m: bg.Downloaded, rt: Any) -> None:
    row = job_rows.find(rt, m.submission_id)
    summary = f"Downloaded {len(m.paths)} file(s) to {m.folder}"
    if row is not None:
        row.downloaded = m.paths[0] if len(m.paths) == 1 else m.folder
        row.download_folder = m.folder
        row.message = summary
        job_rows.remember(row, downloaded=row.downloaded, download_folder=row.download_folder)
    rt.last_report = summary


def _preview_ready(m: bg.PreviewReady, rt: Any) -> None:
    row = job_rows.find(rt, m.submission_id)
    if row is not None:
        row.preview_icon = previews.icon_for(f"{m.submission_id}-{m.frame}", m.path)
        row.preview_frame = m.frame
        job_rows.remember(row, preview_path=m.path, preview_frame=m.frame)


def _stack_connected(m: bg.StackConnected, rt: Any) -> None:
    p = config.prefs()
    if p is None:
        return
    o = m.outputs
    for name in ("bucket", "job_queue", "render_job_definition", "stitch_job_definition",
                 "gpu_job_queue", "repository_uri", "log_group"):
        setattr(p, name, str(o.get(name) or ""))
    if o.get("region") and not p.region:
        p.region = str(o["region"])
    p.image_tags = ", ".join(o.get("image_tags") or ())
    p.checking = False
    p.connection_ok = True
    p.connection_report = f"Connected to stack {p.stack_name}: bucket {p.bucket}"


def _connection_checked(m: bg.ConnectionChecked, rt: Any) -> None:
    p = config.prefs()
    if p is None:
        return
    p.checking = False
    p.connection_ok = m.ok
    p.connection_report = "\n".join(m.lines)


def _task_failed(m: bg.TaskFailed, rt: Any) -> None:
    log.warning("%s: %s", m.task, m.message)
    row = job_rows.find(rt, m.submission_id) if m.submission_id else None
    if row is not None:
        row.error = m.message
    elif m.task == "submit":
        rt.submitting = False
        rt.submit_error = m.message
        bpy.context.window_manager.progress_end()
    elif m.task in ("connect", "test"):
        p = config.prefs()
        if p is not None:
            p.checking = False
            p.connection_ok = False
            p.connection_report = m.message
    rt.last_report = m.message


def _task_ended(m: bg.TaskEnded, rt: Any) -> None:
    if m.task == "poll":
        _after_poll(rt)
    elif m.task == "preview" and ":" in m.key:
        row = job_rows.find(rt, m.key.split(":", 1)[1])
        if row is not None:
            fetch_preview(row)
    elif m.task == "submit":
        if rt.submitting:  # ended without SubmitDone or TaskFailed (should not happen)
            rt.submitting = False
    if ":" in m.key:
        row = job_rows.find(rt, m.key.split(":", 1)[1])
        if row is not None and row.busy == m.task:
            row.busy = ""


_HANDLERS = {
    bg.SubmitProgress: _submit_progress,
    bg.SubmitDone: _submit_done,
    bg.RecordUpdated: _record_updated,
    bg.StatusUpdate: _status_update,
    bg.LogText: _log_text,
    bg.Downloaded: _downloaded,
    bg.PreviewReady: _preview_ready,
    bg.StackConnected: _stack_connected,
    bg.ConnectionChecked: _connection_checked,
    bg.TaskFailed: _task_failed,
    bg.TaskEnded: _task_ended,
}


def add_handler(message_type: type, handler: Any) -> None:
    """Let another module apply its own message type (quote_panel's QuoteReady)."""
    _HANDLERS[message_type] = handler


# --- lifecycle -----------------------------------------------------------------------------


def register() -> None:
    statusbar.register()
    if on_load_post not in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.append(on_load_post)
    ensure_running(first=0.5)


def unregister() -> None:
    stop()
    for handler in list(bpy.app.handlers.load_post):
        if getattr(handler, "__name__", "") == "on_load_post" and handler.__module__ == __name__:
            bpy.app.handlers.load_post.remove(handler)
    bg.cancel_all()
    bg.drain_pending()
    previews.clear()
    statusbar.unregister()
