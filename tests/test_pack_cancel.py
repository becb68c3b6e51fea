"""Esc while a large file is being copied into the pack stops within about a second: the
copier copies in parts and stops at the next part once cancelled (before, it finished the
whole file first: a 192 MB texture went on copying after Esc)."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from addon.core.submit.bat_packer import COPY_PART_BYTES
from addon.core.submit.options import SubmissionCancelled
from addon.core.submit.packing import pack_blend
from tests.helpers import make_scene

BIG = 160 * 1024 * 1024


def test_cancel_in_the_middle_of_a_large_file_stops_within_a_second(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    texture = project / "big.png"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=red:s=2x2", "-frames:v", "1",
                    str(texture)], check=True, timeout=60)
    blend = make_scene(project / "scene.blend", "--texture", str(texture), "--engine", "WORKBENCH")
    block = bytes(range(256)) * 4096  # 1 MiB; BAT copies bytes, it never decodes the image
    with open(texture, "wb") as fh:
        for _ in range(BIG // len(block)):
            fh.write(block)

    cancel = threading.Event()
    cancelled_at: list[float] = []

    def progress(done: int, total: int, message: str) -> None:
        if message.startswith("Copying") and done >= 2 * COPY_PART_BYTES and not cancel.is_set():
            cancelled_at.append(time.monotonic())
            cancel.set()

    with pytest.raises(SubmissionCancelled):
        pack_blend(blend, tmp_path / "pack", cancel=cancel, progress=progress)
    took = time.monotonic() - cancelled_at[0]
    assert took < 1.0, f"stopped {took:.2f} s after the cancel"
    copied = [p.stat().st_size for p in (tmp_path / "pack").rglob("big.png")]
    assert not copied or copied[0] < BIG // 2, copied  # stopped mid-file, not after it
