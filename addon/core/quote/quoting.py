"""One quote from a .blend: read the scene, scout-render it, price it (AWS) or not (local).

What the AWS side needs comes from the stack's parameters (``cloudformation:DescribeStacks``,
already in the submitter policy): the Spot instance types, the Spot vCPU ceiling and the
vCPUs of one render job; each can also be given directly. Prices: see :mod:`.prices`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..aws.errors import aws_errors
from ..aws.session import AwsSettings, client
from ..errors import AwsBatchRenderError
from .model import Measured, Quote, estimate
from .prices import PRICING_REGION, PriceTable, instance_types_for, on_demand_prices, spot_prices

log = logging.getLogger(__name__)

#: the stack's defaults (infra/stack.yaml), used when neither a stack nor a value is given
DEFAULT_SPOT_TYPES = "c7i,c6i,c6a,m7i,m6i,m6a"
DEFAULT_MAX_VCPUS = 256
DEFAULT_JOB_VCPUS = 8


class QuoteError(AwsBatchRenderError):
    exit_code = 2


@dataclass
class AwsCapacity:
    """What the compute environment offers a render: instance types, vCPU ceiling, job size."""

    instance_types: list[str]
    max_vcpus: int
    job_vcpus: int
    region: str
    on_demand_types: list[str] = field(default_factory=list)
    job_memory_mib: int = 0  # memory of one render job (the stack's RenderMemoryMiB; 0: unknown)
    source: str = ""  # where max_vcpus and job_vcpus came from (live_capacity.apply_live)

    @property
    def parallel(self) -> int:
        return max(1, self.max_vcpus // max(1, self.job_vcpus))


def capacity_from_stack(stack: dict[str, Any], region: str) -> AwsCapacity:
    """The Spot capacity a deployed stack's parameters describe."""
    params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []}
    return AwsCapacity(
        instance_types=(params.get("SpotInstanceTypes") or DEFAULT_SPOT_TYPES).split(","),
        max_vcpus=int(params.get("SpotMaxVcpus") or DEFAULT_MAX_VCPUS),
        job_vcpus=int(params.get("RenderVcpus") or DEFAULT_JOB_VCPUS),
        region=region,
        on_demand_types=(params.get("OnDemandInstanceTypes") or "").split(","),
        job_memory_mib=int(params.get("RenderMemoryMiB") or 0),
    )


def read_prices(capacity: AwsCapacity, settings: AwsSettings, pricing: Any = None) -> tuple[PriceTable, PriceTable]:
    """(Spot, on-demand) prices per vCPU-hour of the capacity's instance types."""
    try:
        types = instance_types_for(capacity.instance_types, capacity.job_vcpus)
    except ValueError as exc:
        raise QuoteError(str(exc)) from None
    if not types:
        raise QuoteError("No instance types to price: pass --instance-types (e.g. c7i,m7i) or --stack NAME.")
    with aws_errors("read Spot prices", permission="ec2:DescribeSpotPriceHistory", region=capacity.region):
        spot = spot_prices(client("ec2", settings), types)
    if pricing is None:
        pricing_settings = AwsSettings(
            profile=settings.profile, region=PRICING_REGION, endpoint_url=settings.endpoint_url
        )
        pricing = client("pricing", pricing_settings)
    demand = on_demand_prices(pricing, types, capacity.region)
    if not spot.per_vcpu_hour:  # no Spot offer for these types here: quote on-demand
        log.info("no Spot price for %s in %s", ", ".join(types), capacity.region)
        return demand, demand
    return spot, demand


def aws_quote(
    measured: Measured,
    frames: int,
    capacity: AwsCapacity,
    spot: PriceTable,
    demand: PriceTable,
    chunk_size: int | None = None,
    engine: str = "",
    memory_mib: int = 0,
    split_samples: int = 0,
) -> Quote:
    quote = estimate(
        measured, frames, parallel=capacity.parallel, job_threads=capacity.job_vcpus, chunk_size=chunk_size,
        price_per_vcpu_hour=spot.summary(), price_date=spot.date, price_source=spot.source, aws=True,
        engine=engine, memory_mib=memory_mib or capacity.job_memory_mib, split_samples=split_samples,
    )  # fmt: skip
    if quote.cost is not None and demand is not spot:
        on_demand = quote.vcpu_hours * demand.summary()[0]
        quote.assumptions.append(f"on-demand it would cost ≈ ${on_demand:.2f} ({demand.source})")
    source = f": {capacity.source}" if capacity.source else ""
    quote.assumptions.append(
        f"up to {capacity.parallel} jobs at once ({capacity.max_vcpus} vCPUs / {capacity.job_vcpus} per job{source}) "
        f"in {capacity.region}; instance types {', '.join(sorted(spot.per_vcpu_hour))}"
    )
    return quote


def local_quote(
    measured: Measured, frames: int, parallel: int, job_threads: int, chunk_size: int | None, engine: str = "",
    split_samples: int = 0,
) -> Quote:
    return estimate(
        measured, frames, parallel=parallel, job_threads=job_threads, chunk_size=chunk_size, engine=engine,
        memory_mib=local_memory_mib(parallel), split_samples=split_samples,
    )  # fmt: skip


def local_memory_mib(parallel: int) -> float:
    """This computer's memory shared by the chunks that render at once, in MiB (0: unknown)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0.0
    return total / 2**20 / max(1, parallel)


def scene_frames(blend: Path, scene: str, frames_text: str) -> tuple[Any, list[int]]:
    """The scene snapshot and the frames a submit of it would render."""
    from ..submit.scene_reader import read_scene
    from ..submit.specbuild import scene_frames as frames_of

    snapshot = read_scene(blend, scene)
    return snapshot, frames_of(snapshot, frames_text)


def measured_chunk_size(
    blend: Path, snapshot: Any, frames: list[int], parallel: int, job_threads: int, aws: bool,
    blender_bin: str = "", cancel: Any = None,
) -> tuple[int, str, Measured]:
    """``submit --chunk auto``: scout-render the scene and size its chunks from the
    measurements (:func:`.model.auto_chunk_size`). Returns the size, why, and what was measured."""
    from .model import auto_chunk_size, chunk_overhead_s, frame_seconds_for
    from .scout import scout_frames, scout_render

    picks = [f for f in scout_frames(frames[0], frames[-1]) if f in set(frames)] or frames[:1]
    measured = scout_render(
        blend, picks, scene=snapshot.scene, engine=snapshot.engine, saved_by=snapshot.blender_version,
        blender_bin=blender_bin, cancel=cancel,
    )  # fmt: skip
    sized = measured.alone() if aws else measured  # AWS instances render alone (scout.py)
    frame_s = frame_seconds_for(sized, job_threads)
    load_s = sized.load_seconds + chunk_overhead_s(aws, sized)
    size, why = auto_chunk_size(len(frames), load_s, frame_s, parallel)
    return size, why, measured


def measured_chunk(
    backend: str, blend: Path, snapshot: Any, frames: list[int], *, threads: int = 0, concurrency: int = 0,
    vcpus: int = 0, blender_bin: str = "", cancel: Any = None, settings: AwsSettings | None = None,
    job_queue: str = "", job_definition: str = "",
) -> tuple[int, str, Measured]:
    """The measured chunk size of a submission as ``submit --chunk auto`` and the panel's
    "Auto Chunks" choose it: chunks at once and threads per chunk as the backend runs them
    (this computer: ``concurrency`` slots of ``threads``; AWS: the live compute environments'
    vCPU ceiling over the job definition's vCPUs, read from ``job_queue`` and
    ``job_definition``, else the stack template's figures, and the reason says which)."""
    from ..backends.local.state import default_concurrency

    source = ""
    if backend == "local":
        parallel = concurrency or default_concurrency(threads)
        job_threads = threads or max(1, (os.cpu_count() or 1) // parallel)
    else:
        capacity = live_aws_capacity(settings or AwsSettings(), job_queue, job_definition)
        if vcpus:  # --vcpus: the submit overrides the job definition's
            capacity.job_vcpus, capacity.source = vcpus, f"{capacity.source}; {vcpus} vCPUs per job given"
        job_threads = capacity.job_vcpus
        parallel = max(1, capacity.max_vcpus // job_threads)
        source = f" [{parallel} jobs at once: {capacity.source}]"
    size, why, measured = measured_chunk_size(
        blend, snapshot, frames, parallel, job_threads, aws=backend == "aws", blender_bin=blender_bin, cancel=cancel
    )
    return size, why + source, measured


def live_aws_capacity(
    settings: AwsSettings,
    job_queue: str = "",
    job_definition: str = "",
    base: AwsCapacity | None = None,
    fallback: str = "the stack template's defaults",
) -> AwsCapacity:
    """``base`` (else the template's defaults) with the vCPU ceiling and the job's vCPUs of
    the live compute environment behind ``job_queue`` and ``job_definition`` where they can be
    read (:mod:`.live_capacity`); ``capacity.source`` says which figures were used."""
    from .live_capacity import apply_live, read_live

    capacity = base or AwsCapacity(
        DEFAULT_SPOT_TYPES.split(","), DEFAULT_MAX_VCPUS, DEFAULT_JOB_VCPUS, settings.region or ""
    )
    apply_live(capacity, read_live(settings, job_queue, job_definition), fallback)
    return capacity
