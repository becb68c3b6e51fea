"""The progress record a worker writes per slice as it renders, and what counts as a
rendered frame in an output listing: read by both backends' status, the stitch and the
worker's resume (the definition itself is :mod:`.framecheck`'s). Part of the contract
between the add-on and the worker, like :mod:`.jobspec`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from .framecheck import listed_frame_done
from .jobspec import frame_file_name, frame_from_name


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
    message: str = ""  # a FAILED slice's one-line reason
    exit_code: int | None = None  # a FAILED slice's worker exit code (65: content error, 75: retryable)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> SliceProgress:
        raw = json.loads(data)
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


def frames_done_from_listing(
    objects: Iterable[tuple[str, int]], expected: Iterable[int], image_format: str
) -> tuple[dict[int, str], int | None, str]:
    """Frames of ``expected`` done in a listing of ``(uri, size)`` pairs: named as the spec
    names them (``frame_000042.png`` for PNG) and big enough to be a valid image (see
    :func:`.framecheck.listed_frame_done`; empty and stub files never count). Returns
    frame -> URI, the latest frame and its URI."""
    wanted = set(expected)
    found: dict[int, str] = {}
    for uri, size in objects:
        frame = frame_from_name(uri)
        if (
            frame is not None
            and frame in wanted
            and uri.rsplit("/", 1)[-1] == frame_file_name(frame, image_format)
            and listed_frame_done(size, image_format)
        ):
            found[frame] = uri
    latest = max(found) if found else None
    return found, latest, found.get(latest, "") if latest is not None else ""
