"""A quote and a budget from plain facts, for callers that already read the scene: the
add-on's Estimate button (in a thread) and its budget on submit. The CLI's ``estimate``
and ``submit --max-cost`` share the pieces (:func:`aws_capacity`, :func:`spot_price`).

No bpy here; the network calls (stack, Spot prices) run on whatever thread calls them:
the add-on calls them only from its background threads.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..aws.session import AwsSettings
from .budget import Budget, BudgetError, new_budget
from .model import Measured, Quote

log = logging.getLogger(__name__)


@dataclass
class QuoteRequest:
    """What a quote of a submission needs besides the scene: where it renders and how."""

    backend: str  # "aws" or "local"
    frames: list[int]
    chunk_size: int | None = None  # None: from the measurements
    threads: int = 0  # local: render threads per chunk (0: this computer's cores / chunks at once)
    stack_name: str = ""
    settings: AwsSettings = field(default_factory=AwsSettings)
    job_queue: str = ""  # AWS: the queue and render job definition whose live capacity sizes the chunks
    job_definition: str = ""
    blender_bin: str = ""  # a Blender binary for the scout ("" : this Python's bpy)


@dataclass
class QuoteAnswer:
    """The quote as plain data (a thread hands it to the main thread)."""

    line: str
    assumptions: list[str]
    peak_rss_mib: float
    price_per_vcpu_hour: float = 0.0  # the quote's median price (0: local, time only)
    price_source: str = ""
    job_vcpus: int = 0
    chunk_size: int = 0  # the chunk size the quote chose (or was given)
    chunk_reason: str = ""  # why ("chunk size given" when it was)


def aws_capacity(
    settings: AwsSettings, stack_name: str = "", job_vcpus: int = 0, job_queue: str = "", job_definition: str = ""
) -> Any:
    """The stack's Spot capacity (its parameters), else the stack template's defaults; the
    vCPU ceiling and the job's vCPUs from the live compute environment behind the job queue
    (``job_queue``, else the stack's) where it can be read (``capacity.source`` says which)."""
    from .quoting import (
        DEFAULT_JOB_VCPUS,
        DEFAULT_MAX_VCPUS,
        DEFAULT_SPOT_TYPES,
        AwsCapacity,
        capacity_from_stack,
        live_aws_capacity,
    )

    region = settings.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "")
    stack = None
    if stack_name:
        from ..aws.stack import describe_stack

        stack = describe_stack(stack_name, settings)
    if stack:
        capacity, fallback = capacity_from_stack(stack, region), "the stack's parameters"
        outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}
        job_queue = job_queue or outputs.get("JobQueue", "")
        job_definition = job_definition or outputs.get("RenderJobDefinition", "")
    else:
        capacity = AwsCapacity(DEFAULT_SPOT_TYPES.split(","), DEFAULT_MAX_VCPUS, DEFAULT_JOB_VCPUS, region)
        fallback = "the stack template's defaults"
    live_aws_capacity(settings, job_queue, job_definition, capacity, fallback)
    if job_vcpus:
        capacity.job_vcpus = job_vcpus
    return capacity


def spot_price(settings: AwsSettings, stack_name: str = "", job_vcpus: int = 0) -> tuple[float, str]:
    """(median price per vCPU-hour, where it came from) of the stack's instance types."""
    from .quoting import read_prices

    spot, _ = read_prices(aws_capacity(settings, stack_name, job_vcpus), settings)
    return spot.summary()[0], f"{spot.source} median of {spot.date}"


def quote_blend(blend: Path, snapshot: Any, request: QuoteRequest) -> tuple[Quote, Measured]:
    """Scout-render ``blend`` (a saved copy of the scene) and quote ``request``."""
    from ..backends.local.state import default_concurrency
    from .quoting import aws_quote, local_quote, read_prices
    from .scout import scout_frames, scout_render

    frames = request.frames
    picks = [f for f in scout_frames(frames[0], frames[-1]) if f in set(frames)] or frames[:1]
    measured = scout_render(
        blend, picks, scene=snapshot.scene, engine=snapshot.engine, saved_by=snapshot.blender_version,
        blender_bin=request.blender_bin,
    )  # fmt: skip
    if request.backend == "local":
        parallel = default_concurrency(request.threads)
        threads = request.threads or max(1, measured.threads // parallel)
        quote = local_quote(measured, len(frames), parallel, threads, request.chunk_size, engine=snapshot.engine)
        return quote, measured
    capacity = aws_capacity(
        request.settings, request.stack_name, job_queue=request.job_queue, job_definition=request.job_definition
    )
    spot, demand = read_prices(capacity, request.settings)
    quote = aws_quote(measured, len(frames), capacity, spot, demand, request.chunk_size, engine=snapshot.engine)
    return quote, measured


def answer_of(quote: Quote, measured: Measured, job_vcpus: int) -> QuoteAnswer:
    median = quote.cost / quote.vcpu_hours if quote.cost is not None and quote.vcpu_hours else 0.0
    source = f"{quote.price_source} median of {quote.price_date}" if quote.cost is not None else ""
    return QuoteAnswer(
        quote.line(), list(quote.assumptions), measured.peak_rss_mib, median, source, job_vcpus, quote.chunk_size,
        quote.chunk_reason,
    )  # fmt: skip


@dataclass
class BudgetRequest:
    """The panel's cap, checked on the main thread; its price is found in the submit thread."""

    max_cost: float
    price_per_vcpu_hour: float  # 0: the Spot price (AWS) of the quote or read now
    price_source: str
    job_vcpus: int


def budget_request(
    backend: str, max_cost: float, price: float, job_vcpus: int, quoted_price: float = 0.0, quoted_source: str = ""
) -> BudgetRequest:
    """The panel's cap and price, refused at once (one line, what to do) when it cannot be counted."""
    if max_cost <= 0:
        raise BudgetError("The budget cap must be more than $0: set Max Cost, or untick Budget Cap.")
    if price > 0:
        return BudgetRequest(max_cost, price, "given", job_vcpus)
    if backend == "local":
        raise BudgetError(
            "A budget cap on this computer needs a price: set $/vCPU-hour (what an hour of one "
            "thread costs you), or untick Budget Cap."
        )
    return BudgetRequest(max_cost, quoted_price, quoted_source or "Spot", job_vcpus)


def resolve_budget(request: BudgetRequest | None, settings: AwsSettings, stack_name: str = "") -> Budget | None:
    """The budget to keep in the record; an AWS cap without a price reads the Spot price now."""
    if request is None:
        return None
    price, source = request.price_per_vcpu_hour, request.price_source
    if price <= 0:
        price, source = spot_price(settings, stack_name, request.job_vcpus)
    return new_budget(request.max_cost, price, request.job_vcpus, source)
