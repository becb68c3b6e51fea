"""The quote's arithmetic, pure: chunk size from the measured start-up and frame time,
the schedule of chunks on the available slots, and the one-line quote.

Assumptions, stated in every quote (``Quote.assumptions``):

* one vCPU of an instance renders as fast as one thread of this computer (the part of a
  frame that ran on all the scout's threads scales with the thread count of a job, the
  serial rest does not: :func:`frame_seconds_for`); the range widens the time by -25% / +50%;
* on AWS each chunk also pays :data:`AWS_CHUNK_OVERHEAD_S` (container start, inputs
  download) and the job waits :data:`AWS_BOOT_S` for the first instances; on this
  computer each chunk pays the worker's own :data:`LOCAL_CHUNK_OVERHEAD_S` (measured:
  bench/chunk_overhead.py) beyond the scout's Blender start-up and load;
* billing is per vCPU-second of the chunks (instances kept full), at the median Spot
  price of the compute environment's instance types; the range runs from the cheapest
  type at the low time to the dearest at the high time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

#: per-chunk start-up share the automatic chunk size stays under
OVERHEAD_SHARE = 0.10
MAX_CHUNKS = 10_000
MAX_CHUNK_SECONDS = 3600.0
AWS_CHUNK_OVERHEAD_S = 20.0
#: the worker's own time per chunk on this computer, beyond Blender starting and loading (which
#: the scout measures): ``python -m worker`` starting, copying the inputs, checking and storing
#: each frame. bench/quote_accuracy.py measured 0.1-0.3 s per chunk beyond the scout's start-up+load
#: (a chunk's wall time less its frames' render time, from the progress records), 2 shared cores.
LOCAL_CHUNK_OVERHEAD_S = 0.3
AWS_BOOT_S = 150.0
TIME_LOW, TIME_HIGH = 0.75, 1.5
#: Persistent Data keeps the scene's render data between a chunk's frames: the scout's peak
#: times this must fit a chunk's memory
PERSISTENT_HEADROOM = 1.5
#: a split still's merge job: Blender starts and loads (the scout's start-up), then reads and
#: merges each part's multilayer EXR, about this long per part of a frame
MERGE_PART_S = 0.5


@dataclass
class Measured:
    """What the scout render measured on this computer."""

    load_seconds: float  # Blender start-up + scene load (+ the first frame's extra cost)
    seconds_per_frame: float
    peak_rss_mib: float
    threads: int  # render threads the scout used
    frames: list[int] = field(default_factory=list)
    #: the same as they would have been with this computer to itself, without the CPU other
    #: programs took during the scout (0: as timed); AWS quotes use these (scout.py)
    alone_load_seconds: float = 0.0
    alone_seconds_per_frame: float = 0.0
    others_cores: float = 0.0  # cores other programs kept busy while the scout rendered
    #: the child's CPU seconds per frame after the first (0: unknown): how much of a frame ran
    #: on all its threads, so the frame time can be scaled to another thread count (frame_seconds_for)
    cpu_per_frame: float = 0.0

    def alone(self) -> Measured:
        """The figures with this computer to itself."""
        return replace(
            self, load_seconds=self.alone_load_seconds or self.load_seconds,
            seconds_per_frame=self.alone_seconds_per_frame or self.seconds_per_frame,
        )  # fmt: skip


@dataclass
class Quote:
    frames: int
    chunk_size: int
    chunks: int
    chunk_reason: str
    parallel: int  # chunks at once (instances on AWS, slots on this computer)
    wall_seconds: float
    wall_low: float
    wall_high: float
    vcpu_hours: float = 0.0
    cost: float | None = None  # None: the local backend (time only)
    cost_low: float | None = None
    cost_high: float | None = None
    price_date: str = ""
    price_source: str = ""
    assumptions: list[str] = field(default_factory=list)
    persistent_data: bool = False  # Cycles Persistent Data in multi-frame chunks
    split_samples: int = 0  # 2+: a still split in this many sample ranges per frame, then merged

    def line(self) -> str:
        """``≈ $1.84 ($1.40–$2.60) · ≈ 22 min with 48 chunks on up to 12 instances · Spot prices of 2026-12-01``."""
        when = f"≈ {duration_text(self.wall_seconds)} ({duration_text(self.wall_low)}–{duration_text(self.wall_high)})"
        chunks = f"{self.chunks} chunk{'s' if self.chunks != 1 else ''} of {self.chunk_size} frame(s)"
        if self.split_samples > 1:
            chunks = f"{self.chunks} parts ({self.split_samples} per frame) and a merge"
        if self.cost is None:
            return f"{when} with {chunks}, {self.parallel} at a time on this computer"
        money = f"≈ {money_text(self.cost)} ({money_text(self.cost_low)}–{money_text(self.cost_high)})"
        source = f"{self.price_source} prices" + (f" of {self.price_date}" if self.price_date else "")
        return f"{money} · {when} with {chunks} on up to {self.parallel} instances · {source}"


def frame_seconds_for(measured: Measured, job_threads: int) -> float:
    """Seconds per frame with ``job_threads`` threads. A frame is a serial part s (scene
    sync, BVH build, image write) and a part P that spreads over the threads; with n threads
    its wall time is s + P/n and its CPU time s + P. The scout timed both (alone: without the
    CPU other programs took), so s and P are known and the scout's time is scaled by
    (s + P/job_threads) / (s + P/n). Without the CPU figure (or with one thread) every second
    is taken to spread over the threads, as a linear speed-up."""
    n, timed = max(1, measured.threads), measured.seconds_per_frame
    linear = timed * n / max(1, job_threads)
    wall = measured.alone_seconds_per_frame or timed
    cpu = measured.cpu_per_frame
    if cpu <= 0 or n < 2 or wall <= 0:
        return linear
    spread = min(cpu, max(0.0, cpu - wall) * n / (n - 1))
    serial = max(0.0, cpu - spread)
    if serial + spread / n <= 0:
        return linear
    return timed * (serial + spread / max(1, job_threads)) / (serial + spread / n)


def chunk_overhead_s(aws: bool, measured: Measured | None = None) -> float:
    """What a chunk spends beyond the scout's start-up+load: on AWS the container and
    inputs download, on this computer the worker's own start, copies and checks. On a
    computer other programs keep busy, the worker's own CPU work no longer overlaps Blender's
    start-up on a free core: it takes as much longer as the scout's start-up took against its
    CPU seconds alone (``load_seconds / alone_load_seconds``, 1 on an idle computer)."""
    if aws:
        return AWS_CHUNK_OVERHEAD_S
    return LOCAL_CHUNK_OVERHEAD_S * (contention(measured) if measured is not None else 1.0)


def contention(measured: Measured) -> float:
    """How much longer the scout's start-up took than it would have alone (>= 1)."""
    if measured.alone_load_seconds <= 0 or measured.load_seconds <= 0:
        return 1.0
    return max(1.0, measured.load_seconds / measured.alone_load_seconds)


def auto_chunk_size(
    frames: int,
    load_seconds: float,
    seconds_per_frame: float,
    parallel: int,
    max_chunk_seconds: float = MAX_CHUNK_SECONDS,
    max_chunks: int = MAX_CHUNKS,
) -> tuple[int, str]:
    """Frames per chunk so the per-chunk start-up stays within 10% of the chunk's render
    time (so a chunk's wall time is at most 1.10 x its frames' render time; 10% of the whole
    chunk's time would allow 1/0.9 = 1.11), in chunks of equal size (no short last chunk
    that pays a whole start-up for a few frames), within: enough chunks for every slot, at
    most ``max_chunks`` chunks, and chunks no longer than ``max_chunk_seconds``. Returns the
    size and why it was chosen."""
    if frames < 1:
        return 1, "no frames"
    frame_s = max(seconds_per_frame, 1e-3)
    load = max(load_seconds, 0.0)
    # load <= share * c * F  <=>  c >= load / (share * F)
    least = max(1, math.ceil(load / (OVERHEAD_SHARE * frame_s) - 1e-9))
    why = f"start-up {load:.0f} s ≤ 10% of a chunk's frames ({least}+ × {frame_s:.1f} s per frame)"
    longest = max(1, math.floor((max_chunk_seconds - load) / frame_s))
    size = whole_chunks(frames, least, min(longest, math.ceil(frames / max(1, parallel))))
    if size > longest:
        size, why = longest, f"chunks of at most {duration_text(max_chunk_seconds)} (a Spot reclaim loses little)"
    spread = max(1, math.ceil(frames / max(1, parallel)))
    if size > spread:
        size, why = spread, f"enough chunks for {parallel} at once"
    fewest = math.ceil(frames / max_chunks)
    if size < fewest:
        size, why = fewest, f"at most {max_chunks:,} chunks"
    return min(size, frames), why


def whole_chunks(frames: int, least: int, most: int) -> int:
    """The smallest chunk size from ``least`` up to ``most`` whose last chunk also holds at
    least ``least`` frames (a short last chunk pays a whole start-up for a few frames);
    else as many chunks of ``least`` or more as fit, of about equal size."""
    if least >= frames:
        return frames
    for size in range(least, min(most, frames, least + 10_000) + 1):
        if frames % size == 0 or frames % size >= least:
            return size
    return math.ceil(frames / max(1, frames // least))


def persistent_data(engine: str, chunk_size: int, peak_mib: float, memory_mib: float) -> tuple[bool, str]:
    """Whether a chunk renders with Cycles Persistent Data (the scene's data kept between its
    frames, not synced again each frame), and why: only Cycles, only chunks of 2+ frames, and
    only when the scout's peak memory x :data:`PERSISTENT_HEADROOM` fits a chunk's memory."""
    if engine != "CYCLES":
        return False, "Persistent Data off: Cycles only"
    if chunk_size < 2:
        return False, "Persistent Data off: one frame per chunk"
    if not memory_mib or not peak_mib:
        return False, "Persistent Data off: a chunk's memory is unknown"
    fits = peak_mib * PERSISTENT_HEADROOM <= memory_mib
    word, verb = ("on", "fits") if fits else ("off", "passes")
    need = f"peak {peak_mib:.0f} MiB x{PERSISTENT_HEADROOM}"
    return fits, f"Cycles Persistent Data {word}: {need} {verb} {memory_mib:.0f} MiB"


def schedule_seconds(frames: int, chunk_size: int, load_s: float, frame_s: float, parallel: int) -> tuple[float, float]:
    """(wall seconds, sum of chunk seconds) of ``frames`` cut into chunks, on ``parallel``
    slots, longest chunks first (greedy list scheduling)."""
    sizes = [chunk_size] * (frames // chunk_size) + ([frames % chunk_size] if frames % chunk_size else [])
    slots = [0.0] * max(1, min(parallel, len(sizes) or 1))
    total = 0.0
    for n in sizes:
        t = load_s + n * frame_s
        total += t
        i = slots.index(min(slots))
        slots[i] += t
    return max(slots), total


def estimate(
    measured: Measured,
    frames: int,
    *,
    parallel: int,
    job_threads: int,
    chunk_size: int | None = None,
    price_per_vcpu_hour: tuple[float, float, float] | None = None,
    price_date: str = "",
    price_source: str = "Spot",
    aws: bool = False,
    engine: str = "",
    memory_mib: float = 0.0,
    split_samples: int = 0,
) -> Quote:
    """The quote for ``frames`` frames. ``price_per_vcpu_hour``: (median, lowest, highest)
    over the instance types; None quotes time only (the local backend)."""
    timed = measured
    if aws:  # instances render alone: without the CPU other programs took from the scout
        measured = measured.alone()
    frame_s = frame_seconds_for(measured, job_threads)
    load_s = measured.load_seconds + chunk_overhead_s(aws, measured)
    if split_samples > 1:  # each part renders 1/N of the samples of one frame, then one merge job
        size, why = 1, f"{split_samples} parts per frame, each rendering 1/{split_samples} of the samples"
        wall, busy = schedule_seconds(frames * split_samples, 1, load_s, frame_s / split_samples, parallel)
        merge = load_s + frames * split_samples * MERGE_PART_S
        wall, busy = wall + merge, busy + merge
        why += f"; the merge ≈ {duration_text(merge)} after the last part (render time scales with samples)"
    elif chunk_size:
        size, why = min(chunk_size, max(1, frames)), "chunk size given"
    else:
        size, why = auto_chunk_size(frames, load_s, frame_s, parallel)
    if split_samples <= 1:
        wall, busy = schedule_seconds(frames, size, load_s, frame_s, parallel)
    wall += AWS_BOOT_S if aws else 0.0
    chunks = (frames * split_samples if split_samples > 1 else math.ceil(frames / size)) if frames else 0
    contended = ""
    if timed.seconds_per_frame > measured.seconds_per_frame * 1.02:  # AWS: the figures alone
        contended = (f" (timed {timed.seconds_per_frame:.2f} s while other programs kept "
                     f"{measured.others_cores:.1f} core(s) busy)")  # fmt: skip
    elif measured.others_cores >= 0.25:
        contended = f" (other programs kept {measured.others_cores:.1f} core(s) busy; assumed to go on)"
    assumptions = [
        f"scout on this computer: start-up+load {measured.load_seconds:.1f} s, {measured.seconds_per_frame:.2f} s per "
        f"frame with {measured.threads} thread(s){contended}, peak memory {measured.peak_rss_mib:.0f} MiB",
        f"chunk size {size}: {why}",
    ]
    persist, persist_why = persistent_data(engine, size, measured.peak_rss_mib, memory_mib)
    assumptions.append(persist_why + " of a chunk")
    if aws:
        assumptions.append(
            f"one instance vCPU renders like one thread of this computer ({job_threads} vCPUs per job: "
            f"{frame_s:.2f} s per frame); +{AWS_CHUNK_OVERHEAD_S:.0f} s per chunk, +{AWS_BOOT_S:.0f} s for instances"
        )
    else:
        busy = contention(measured)
        slower = f": {LOCAL_CHUNK_OVERHEAD_S:.1f} s x{busy:.1f}, the scout's start-up under load" if busy > 1 else ""
        assumptions.append(
            f"+{chunk_overhead_s(False, measured):.1f} s per chunk for the worker (start, inputs, frame checks){slower}"
        )
    quote = Quote(
        frames=frames, chunk_size=size, chunks=chunks, chunk_reason=why, parallel=parallel,
        wall_seconds=wall, wall_low=wall * TIME_LOW, wall_high=wall * TIME_HIGH, assumptions=assumptions,
        persistent_data=persist, split_samples=split_samples if split_samples > 1 else 0,
    )  # fmt: skip
    if price_per_vcpu_hour is not None:
        median, low, high = price_per_vcpu_hour
        quote.vcpu_hours = busy * job_threads / 3600
        quote.cost = quote.vcpu_hours * median
        quote.cost_low = quote.vcpu_hours * TIME_LOW * low
        quote.cost_high = quote.vcpu_hours * TIME_HIGH * high
        quote.price_date, quote.price_source = price_date, price_source
        assumptions.append(
            f"{quote.vcpu_hours:.2f} vCPU-hours at ${median:.4f} per vCPU-hour ({price_source} median; "
            f"${low:.4f}–${high:.4f} over the instance types)"
        )
    return quote


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def money_text(value: float | None) -> str:
    if value is None:
        return "?"
    return f"${value:.2f}" if value >= 0.1 else f"${value:.4f}"
