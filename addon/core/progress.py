"""The progress record a worker writes per slice as it renders, and what counts as a
rendered frame in an output listing: read by both backends' status and by the worker's
resume. Part of the contract between the add-on and the worker, like :mod:`.jobspec`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from .jobspec import frame_from_name


@dataclass
class SliceProgress:
    """What a worker writes per slice (``progress/slice-NNNNN.json``) as it goes."""

    index: int
    frames_total: int
    frames_done: int
    seconds_per_frame: float | None = None  # mean render time of frames rendered so far
    attempt: int = 1
    state: str = "RUNNING"  # RUNNING, SUCCEEDED or FAILED
    updated_at: float = 0.0  # unix time
    started_at: float = 0.0
    message: str = ""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> SliceProgress:
        raw = json.loads(data)
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


def frames_done_from_listing(uris: Iterable[str], expected: Iterable[int]) -> tuple[set[int], int | None, str]:
    """Frames of ``expected`` present in a listing, the latest of them, and its URI."""
    wanted = set(expected)
    found: dict[int, str] = {}
    for uri in uris:
        frame = frame_from_name(uri)
        if frame is not None and frame in wanted:
            found[frame] = uri
    latest = max(found) if found else None
    return set(found), latest, found.get(latest, "") if latest is not None else ""
