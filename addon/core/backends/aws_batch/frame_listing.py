"""Which frames of a submission are in the bucket, without listing every key each refresh.

A frame once listed stays done (nothing deletes frames while a job runs), so the lister
remembers the frames it has seen and lists only where new ones can appear:

* the listing starts just before the lowest frame (in key order) still *open*: not seen
  yet, and not in a chunk that failed for good (a retry reopens it);
* when a page ends and the keys after it up to the next open frame are all seen ones,
  the next request jumps there with ``StartAfter`` instead of paging through them;
* once every render job had ended before a listing, the frames cannot change any more
  and later refreshes list nothing.

Batch starts array children in index order, so the open frames sit in one window (the
running chunks); a steady refresh lists ``ceil(w / 1000)`` pages, where ``w`` is the count
of frames already rendered by the running chunks (one or two pages for up to a dozen
chunks of 100 frames), whatever the frame count of the job. A chunk stuck early while
later ones finish costs one more page, not a page per thousand frames between. Key order is S3's
(byte order of the names), which is not numeric order for negative frame numbers: the
lister works on names, never on frame numbers.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from ...framecheck import listed_frame_done
from ...jobspec import JobSpec, frame_from_name
from ...storage import parse_uri

#: ListObjectsV2 returns at most this many keys per call
PAGE = 1000


@dataclasses.dataclass
class FrameListing:
    """What one submission's lister knows: frames seen -> upload time (unix seconds)."""

    frames_uri: str
    names: list[str]  # every wanted frame's key name, sorted in S3 key order
    frame_of: dict[str, int]  # key name -> frame
    image_format: str = ""  # a listed key counts only when big enough to be a valid image
    seen: dict[int, float] = dataclasses.field(default_factory=dict)
    settled: bool = False  # listed after every render job had ended: nothing more will come
    calls: int = 0  # list calls made by the last refresh

    @classmethod
    def for_spec(cls, spec: JobSpec) -> FrameListing:
        frame_of = {spec.frame_name(f): f for f in spec.frames}
        return cls(spec.output.frames_uri, sorted(frame_of), frame_of, spec.output.image_format)

    def refresh(
        self,
        list_page: Callable[..., dict[str, Any]],
        closed: Iterable[int] = (),
        jobs_ended: bool = False,
    ) -> dict[int, float]:
        """List what can have changed; ``list_page(**kwargs)`` is one ListObjectsV2 call.

        ``closed``: frames that cannot appear (chunks failed for good). ``jobs_ended``: every
        render job had ended before this call, so after this listing nothing will change.
        """
        self.calls = 0
        if self.settled:
            return self.seen
        loc = parse_uri(self.frames_uri)
        prefix = loc.key
        shut = set(closed)
        open_names = [n for n in self.names if self.frame_of[n] not in self.seen and self.frame_of[n] not in shut]
        if open_names:
            start = self._before(open_names[0])
            while True:
                kwargs: dict[str, Any] = {"Bucket": loc.bucket, "Prefix": prefix, "MaxKeys": PAGE}
                if start:
                    kwargs["StartAfter"] = prefix + start
                page = list_page(**kwargs)
                self.calls += 1
                contents = page.get("Contents") or []
                for obj in contents:
                    self._saw(obj)
                if not page.get("IsTruncated") or not contents:
                    break
                last = contents[-1]["Key"][len(prefix) :]
                later = open_names[bisect.bisect_right(open_names, last) :]
                nxt = next((n for n in later if self.frame_of[n] not in self.seen), None)
                if nxt is None:
                    break  # every key after this page is one seen before
                start = max(last, self._before(nxt))
        if jobs_ended:
            self.settled = True
        return self.seen

    def _before(self, name: str) -> str:
        """The wanted name just before ``name`` in key order ('' for the first): listing
        after it returns ``name`` first if it exists."""
        i = bisect.bisect_left(self.names, name)
        return self.names[i - 1] if i > 0 else ""

    def _saw(self, obj: dict[str, Any]) -> None:
        name = obj["Key"].rsplit("/", 1)[-1]
        frame = self.frame_of.get(name)
        # the shared definition of a done frame (addon.core.framecheck): empty or stub objects never count
        big_enough = listed_frame_done(int(obj.get("Size", 0)), self.image_format)
        if frame is not None and frame_from_name(name) == frame and big_enough:
            self.seen[frame] = _timestamp(obj.get("LastModified"))


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return 0.0
