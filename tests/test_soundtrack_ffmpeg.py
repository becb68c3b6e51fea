"""The soundtrack when the submitting Blender has no audio (the bpy 4.2 wheel is built
without Audaspace): ffmpeg mixes the sound strips the child listed, each trimmed to its
visible frames, delayed to its start and scaled by its volume (real ffmpeg, real WAVs).
The whole path, from a no-audio bpy to the video's audio stream, runs in the smoke tier
(tests/test_version_smoke.py on bpy 4.2.23)."""

from __future__ import annotations

import array
import json
import subprocess
import wave
from pathlib import Path

from addon.core.submit.soundtrack_ffmpeg import mix_strips, plan_path


def _tone(path: Path, seconds: float = 2.0) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                    "-ar", "48000", str(path)], check=True, timeout=60)  # fmt: skip
    return path


def _write_plan(dest: Path, strips: list[dict], first: int = 1, last: int = 48, skipped=()) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    plan = {"fps": 24.0, "frame_start": first, "frame_end": last, "strips": strips, "skipped": list(skipped)}
    plan_path(dest).write_text(json.dumps(plan))


def _samples(path: Path) -> tuple[int, int, array.array]:
    with wave.open(str(path)) as w:
        assert (w.getsampwidth(), w.getframerate()) == (2, 48000)
        data = array.array("h", w.readframes(w.getnframes()))
        return w.getnchannels(), w.getnframes(), data


def test_strips_are_trimmed_delayed_and_scaled(tmp_path):
    tone = _tone(tmp_path / "tone.wav")
    loud = max(abs(v) for v in _samples(tone)[2])
    dest = tmp_path / "pack" / "_audio" / "soundtrack.wav"
    # frames 1-60 (2.5 s at 24 fps); the 2 s strip starts at frame 13 (0.5 s) and plays from
    # 0.25 s into its file, which runs out at 2.25 s; a second strip ends before the frames begin
    _write_plan(dest, [
        {"name": "tone", "path": str(tone), "start": 13, "end": 61, "offset": 0.25, "volume": 0.5},
        {"name": "early", "path": str(tone), "start": -60, "end": 0, "offset": 0.0, "volume": 1.0},
    ], last=60)  # fmt: skip
    assert mix_strips(dest) == ""
    assert not plan_path(dest).exists()  # not packed with the job
    channels, frames, data = _samples(dest)
    assert channels == 2 and abs(frames - 120000) <= 48  # the frames' 2.5 s, not the file's 2 s
    silent = data[: 2 * 23900]  # until frame 13
    assert max(abs(v) for v in silent) == 0
    # 0.5 s .. 2.25 s: the tone's last 1.75 s at half volume; a mono file plays at -3 dB on
    # each side, as Blender's own mixdown does (measured: 2895 of 4095 for this tone in 5.2)
    playing = data[2 * 24100 : 2 * 107000]
    assert 0.45 * 0.7071 * loud < max(abs(v) for v in playing) < 0.55 * 0.7071 * loud
    assert min(max(abs(v) for v in data[2 * n : 2 * (n + 2400)]) for n in range(24100, 105000, 2400)) > 0
    assert max(abs(v) for v in data[2 * 108500 :]) == 0  # the file ran out at 2.25 s


def test_nothing_to_mix_says_why_in_one_clause(tmp_path):
    dest = tmp_path / "soundtrack.wav"
    _write_plan(dest, [{"name": "late", "path": str(tmp_path / "x.wav"), "start": 100, "end": 200, "offset": 0.0,
                        "volume": 1.0}], skipped=["packed-strip"])  # fmt: skip
    why = mix_strips(dest)
    assert why == (
        "no sound strip with a file ffmpeg can read plays in the frames (packed or missing files: packed-strip)"
    )
    assert not dest.exists() and not plan_path(dest).exists()
