"""The scene's sound without Blender's audio: a Blender built without Audaspace (the bpy
4.2 wheel) cannot mix down, so the child lists the sound strips instead
(``<wav>.strips.json``, addon/blender/snapshot.py) and ffmpeg mixes them here: each strip's
file trimmed to its visible part, delayed to its first frame, scaled by its volume.
Animated volume, pitch and speakers are not reproduced (the full Blender mixes those)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RATE = 48000


def plan_path(dest: Path) -> Path:
    return Path(str(dest) + ".strips.json")


def mix_argv(plan: dict[str, Any], dest: Path, ffmpeg: str = "ffmpeg") -> list[str] | None:
    """ffmpeg argv mixing the plan's strips over its frames into a 16-bit stereo WAV; None
    when no strip sounds within them."""
    fps = float(plan["fps"])
    first, end = int(plan["frame_start"]), int(plan["frame_end"]) + 1
    argv = [ffmpeg, "-v", "error", "-y"]
    chains, labels = [], []
    for strip in plan["strips"]:
        start, stop = max(int(strip["start"]), first), min(int(strip["end"]), end)
        if stop <= start or float(strip["volume"]) <= 0:
            continue
        seek = float(strip["offset"]) + (start - int(strip["start"])) / fps
        i = len(labels)
        argv += ["-ss", f"{seek:.6f}", "-t", f"{(stop - start) / fps:.6f}", "-i", str(strip["path"])]
        delay = round((start - first) / fps * 1000)
        chains.append(
            f"[{i}:a]aresample={RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
            f"volume={float(strip['volume']):.6f},adelay={delay}:all=1[a{i}]"
        )
        labels.append(f"[a{i}]")
    if not labels:
        return None
    total = (end - first) / fps
    chains.append(f"{''.join(labels)}amix=inputs={len(labels)}:normalize=0,apad,atrim=0:{total:.6f}[mix]")
    return [*argv, "-filter_complex", ";".join(chains), "-map", "[mix]", "-ar", str(RATE), "-ac", "2",
            "-c:a", "pcm_s16le", str(dest)]  # fmt: skip


def mix_strips(dest: Path, timeout: float = 600) -> str:
    """Mix the strips listed next to ``dest`` into ``dest``; "" when done, else why the video
    stays silent (one clause)."""
    listed = plan_path(dest)
    try:
        plan = json.loads(listed.read_text(encoding="utf-8"))
    finally:
        listed.unlink(missing_ok=True)  # not an input of the job
    ffmpeg = shutil.which("ffmpeg")
    argv = mix_argv(plan, dest, ffmpeg or "ffmpeg")
    skipped = ", ".join(plan.get("skipped") or [])
    if argv is None:
        why = f" (packed or missing files: {skipped})" if skipped else ""
        return f"no sound strip with a file ffmpeg can read plays in the frames{why}"
    if ffmpeg is None:
        return "ffmpeg, which mixes the sound without it, is not installed"
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"ffmpeg could not mix the sound strips ({exc})"
    if proc.returncode != 0 or not dest.is_file():
        return f"ffmpeg could not mix the sound strips ({proc.stderr.strip()[-200:]})"
    if skipped:
        log.warning("sound strips left out of the ffmpeg mixdown (packed or missing files): %s", skipped)
    return ""
