"""The Estimate button's background work: scout-render the saved copy of the scene and
quote it (``core.quote.request``), like ``aws-batch-render estimate``.

Threading rule: **this runs in a background thread and never touches bpy.** It gets
plain data (the saved copy's path, the scene snapshot, a :class:`QuoteRequest`) and posts
one :class:`QuoteReady` through ``background.post``; the status timer applies it on the
main thread (``quote_panel``).
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import AwsBatchRenderError
from . import background as bg

log = logging.getLogger(__name__)


@dataclass
class QuoteReady:
    """The quote (``error`` empty) or why there is none."""

    line: str = ""
    assumptions: list[str] = field(default_factory=list)
    backend: str = ""
    price_per_vcpu_hour: float = 0.0
    price_source: str = ""
    error: str = ""
    chunk_size: int = 0  # the quote's chunk size
    chunk_reason: str = ""  # why that size ("chunk size given" when it was)
    chunk_key: str = ""  # what it was measured for (chunk_key): Render reuses it only for the same
    persistent_data: bool = False


def estimate(blend_copy: str, snapshot: Any, request: Any, temp_dir: str, *, cancel: threading.Event) -> None:
    """Scout and quote; ``temp_dir`` (holding the saved copy) is removed at the end."""
    from ..core.quote.request import answer_of, quote_blend

    try:
        quote, measured = quote_blend(Path(blend_copy), snapshot, request)
        answer = answer_of(quote, measured, 0)
        measured_for = chunk_key(request.backend, snapshot.scene, request.frames) if request.chunk_size is None else ""
        bg.post(
            QuoteReady(answer.line, answer.assumptions, request.backend, answer.price_per_vcpu_hour,
                       answer.price_source, error=memory_error(request, measured.peak_rss_mib),
                       chunk_size=answer.chunk_size, chunk_reason=answer.chunk_reason,
                       chunk_key=measured_for, persistent_data=quote.persistent_data)
        )  # fmt: skip
    except AwsBatchRenderError as exc:
        log.info("estimate failed: %s", exc)
        bg.post(QuoteReady(backend=request.backend, error=str(exc)))
    except Exception as exc:
        message = bg.translate(exc, "estimate")
        if message is None:
            raise
        bg.post(QuoteReady(backend=request.backend, error=message))
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def memory_error(request: Any, peak_mib: float) -> str:
    """The preflight check's memory finding, as ``estimate`` reports it: the scout's peak
    above a job's memory (the stack's RenderMemoryMiB; AWS with a stack only). "" when it fits."""
    if request.backend != "aws" or not request.stack_name:
        return ""
    from ..core.quote.request import aws_capacity
    from ..core.submit.preflight import CheckReport, memory_findings

    memory = aws_capacity(request.settings, request.stack_name).job_memory_mib
    return " ".join(CheckReport(memory_findings(peak_mib, memory or None)).lines())


def chunk_key(backend: str, scene: str, frames: list[int]) -> str:
    """What a measured chunk size holds for: the backend, the scene and its frames."""
    return f"{backend}:{scene}:{frames[0] if frames else ''}-{frames[-1] if frames else ''}:{len(frames)}"


def measure_for_submit(
    blend_copy: str, snapshot: Any, options: Any, backend: str, *, cancel: threading.Event, target: Any = None
) -> tuple[Any, str]:
    """The panel's Render with a measured chunk size and no Estimate yet: scout-render the
    saved copy (as ``submit --chunk auto`` does, ``core.quote.quoting.measured_chunk``) and
    return the options with the measured size (and Persistent Data when it fits, on this
    computer) and a note that says which size and why. Esc or Cancel stops the scout at once; nothing is submitted."""
    from dataclasses import replace

    from ..core.backends.local.state import default_concurrency
    from ..core.quote.model import persistent_data
    from ..core.quote.quoting import local_memory_mib, measured_chunk
    from ..core.quote.scout import ScoutCancelled
    from ..core.submit.options import SubmissionCancelled
    from ..core.submit.specbuild import scene_frames

    bg.post(bg.SubmitProgress("scout", 0, 1, "Scout render to size the chunks…"))
    frames = scene_frames(snapshot, options.frames)
    try:
        size, why, measured = measured_chunk(
            backend, Path(blend_copy), snapshot, frames, threads=options.threads, blender_bin=options.blender_bin,
            cancel=cancel, settings=getattr(target, "settings", None), job_queue=getattr(target, "job_queue", ""),
            job_definition=getattr(target, "render_job_definition", ""),
        )  # fmt: skip
    except ScoutCancelled:
        raise SubmissionCancelled("Submission cancelled during the scout render; nothing was started.") from None
    persist = False
    if backend == "local":
        persist, _ = persistent_data(
            snapshot.engine, size, measured.peak_rss_mib, local_memory_mib(default_concurrency(options.threads))
        )
    bg.post(bg.SubmitProgress("scout", 1, 1, f"Chunk size {size}: {why}"))
    note = f"measured chunk size {size}: {why}"
    return replace(options, chunk_size=size, persistent_data=persist or options.persistent_data), note
