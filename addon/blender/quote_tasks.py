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


def estimate(blend_copy: str, snapshot: Any, request: Any, temp_dir: str, *, cancel: threading.Event) -> None:
    """Scout and quote; ``temp_dir`` (holding the saved copy) is removed at the end."""
    from ..core.quote.request import answer_of, quote_blend

    try:
        quote, measured = quote_blend(Path(blend_copy), snapshot, request)
        answer = answer_of(quote, measured, 0)
        bg.post(
            QuoteReady(answer.line, answer.assumptions, request.backend, answer.price_per_vcpu_hour,
                       answer.price_source, error=memory_error(request, measured.peak_rss_mib))
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
