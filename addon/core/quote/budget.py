"""The budget cap: a submission never spends more than ``--max-cost``.

The cap and the price it is counted in live in the submission record
(``record.jobs["budget"]``), so every follower (the CLI's refresh, the add-on's poll)
enforces the same cap. Spend so far = the status's vCPU-hours (finished and running
chunks) x the price per vCPU-hour the quote used. When the next step, every running
chunk rendering one more frame, would pass the cap, the submission is cancelled: pending
chunks never start, running ones are terminated, finished frames stay. The record then
says it was stopped by budget and at what cost; ``retry --max-cost USD`` continues it
with a new cap (only the missing frames render again).

This module never touches bpy; it runs on whatever thread refreshes the status.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from ..backends.status import ACTIVE_STATES, JobStatus
from ..errors import AwsBatchRenderError

log = logging.getLogger(__name__)


class BudgetError(AwsBatchRenderError):
    exit_code = 2


@dataclass
class Budget:
    max_cost: float  # USD
    price_per_vcpu_hour: float  # USD, the price the quote used
    job_vcpus: int  # vCPUs (threads) of one chunk
    price_source: str = ""
    stopped_at_cost: float | None = None  # set when the cap stopped the submission

    @classmethod
    def of(cls, record: Any) -> Budget | None:
        raw = (record.jobs or {}).get("budget")
        if not raw:
            return None
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)

    def save_to(self, record: Any) -> None:
        record.jobs["budget"] = asdict(self)

    def spent(self, status: JobStatus) -> float:
        return status.vcpu_hours * self.price_per_vcpu_hour

    def next_step(self, status: JobStatus) -> float:
        """Cost of every running chunk rendering one more frame."""
        running = sum(status.chunk_counts.get(s, 0) for s in ACTIVE_STATES)
        return running * (status.seconds_per_frame or 0.0) * self.job_vcpus * self.price_per_vcpu_hour / 3600


def new_budget(max_cost: float | None, price: float | None, job_vcpus: int, source: str) -> Budget | None:
    if max_cost is None:
        return None
    if max_cost <= 0:
        raise BudgetError(f"--max-cost {max_cost} must be more than 0 (US dollars).")
    if not price or price <= 0:
        raise BudgetError("A budget cap needs a price: pass --price-per-vcpu-hour USD (this computer's cost).")
    return Budget(max_cost=max_cost, price_per_vcpu_hour=price, job_vcpus=max(1, job_vcpus), price_source=source)


def enforce_budget(backend: Any, record: Any, status: JobStatus) -> JobStatus:
    """Stop the submission when its next step would pass its cap; say spend vs cap.
    Returns the status to show (refreshed after a stop). The record is changed in place:
    the caller saves it."""
    budget = Budget.of(record)
    if budget is None:
        return status
    spent = budget.spent(status)
    if budget.stopped_at_cost is None and not status.finished and spent + budget.next_step(status) >= budget.max_cost:
        log.info("%s: $%.4f spent, the next step passes the cap $%.2f: stopping", record.submission_id, spent,
                 budget.max_cost)  # fmt: skip
        backend.cancel(record)
        budget.stopped_at_cost = spent
        budget.save_to(record)
        status = backend.status(record)
        spent = max(spent, budget.spent(status))
    note = f"spent ≈ ${spent:.2f} of the ${budget.max_cost:.2f} cap"
    if budget.stopped_at_cost is not None:
        note = (
            f"stopped by budget: ≈ ${spent:.2f} spent of the ${budget.max_cost:.2f} cap; finished frames are kept, "
            f"'retry {record.submission_id} --max-cost USD' continues"
        )
    status.message = f"{status.message}; {note}" if status.message else note
    return status


def raise_cap(record: Any, max_cost: float | None) -> None:
    """``retry --max-cost``: a new cap (counted from the spend so far) for the same price."""
    budget = Budget.of(record)
    if max_cost is None:
        if budget is not None and budget.stopped_at_cost is not None:
            raise BudgetError(
                f"{record.submission_id} was stopped by its budget: give a new cap with --max-cost USD "
                f"(it has spent ≈ ${budget.stopped_at_cost:.2f})."
            )
        return
    if budget is None:
        raise BudgetError("This submission has no budget to raise: it was submitted without --max-cost.")
    if max_cost <= (budget.stopped_at_cost or 0.0):
        raise BudgetError(f"--max-cost {max_cost} is not above what was spent (≈ ${budget.stopped_at_cost:.2f}).")
    budget.max_cost, budget.stopped_at_cost = max_cost, None
    budget.save_to(record)
