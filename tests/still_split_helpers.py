"""Shared by the still-split tests and bench/still_split.py: scenes, packed split jobs,
running the worker, and reading images back with bpy in a child for PSNR."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

from addon.core.jobspec import SCHEMA_VERSION, InputManifest, JobSpec
from addon.core.still_split import StillSplit, split_slices
from addon.core.storage import join_uri, open_store

ROOT = Path(__file__).resolve().parent.parent

TUNE_SCENE = """
import bpy, sys
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
scene = bpy.context.scene
w, h, samples, denoise = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1"
scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = w, h, 100
scene.cycles.samples = samples
scene.cycles.seed = 11
scene.cycles.use_adaptive_sampling = False
scene.cycles.sampling_pattern = "TABULATED_SOBOL"  # count-independent: parts add up to the full render
scene.cycles.use_denoising = denoise
if hasattr(scene.cycles, "denoiser"):
    scene.cycles.denoiser = "OPENIMAGEDENOISE"
scene.frame_start = scene.frame_end = 1
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[2])
"""

READ_PIXELS = """
import bpy, sys, numpy as np
for src, dest in zip(sys.argv[1::2], sys.argv[2::2]):
    image = bpy.data.images.load(src)
    w, h = image.size
    np.save(dest, np.array(image.pixels[:], dtype=np.float32).reshape(h, w, image.channels))
"""


def tune_scene(src: Path, dest: Path, width: int, height: int, samples: int, denoise: bool) -> Path:
    subprocess.run(
        [sys.executable, "-c", TUNE_SCENE, str(src), str(dest), str(width), str(height), str(samples),
         "1" if denoise else "0"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return dest


def pack_job(root: str, blend: Path, frames: list[int], parts: int, *, image_format: str = "OPEN_EXR",
             submission_id: str = "still-1", threads: int = 1,
             size: tuple[int, int] = (64, 64)) -> tuple[JobSpec, str]:  # fmt: skip
    """A split spec (``parts`` < 2: an ordinary one-slice-per-frame spec) with ``blend`` packed.
    ``size`` is the scene's render size (the worker refuses frames of another size)."""
    from tests.helpers import make_spec

    data = blend.read_bytes()
    spec = make_spec(root, submission_id=submission_id)
    spec.schema_version = SCHEMA_VERSION
    spec.inputs = InputManifest(
        uri=join_uri(root, "inputs/"), files={"s.blend": hashlib.sha256(data).hexdigest()}, main_blend="s.blend"
    )
    spec.output.image_format = image_format
    spec.output.video = None
    spec.render.engine = "CYCLES"
    spec.render.threads = threads
    spec.render.width, spec.render.height = size
    if parts >= 2:
        spec.slices = split_slices(frames, parts)
        spec.still_split = StillSplit(parts=parts, frames=list(frames))
    else:
        spec.slices = [[f] for f in frames]
    spec.validate()
    store = open_store(root)
    store.put_bytes(data, spec.input_uri("s.blend"))
    spec_uri = join_uri(root, f"submissions/{submission_id}/spec.json")
    store.put_bytes(spec.to_json().encode(), spec_uri)
    return spec, spec_uri


def worker(command: str, spec_uri: str, index: int | None = None, timeout: float = 300,
           **extra: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_BATCH_")}
    env["JOB_SPEC_URI"] = spec_uri
    if index is not None:
        env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
    env.update(extra)
    return subprocess.run([sys.executable, "-m", "worker", command], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)  # fmt: skip


def pixels(*paths: Path) -> list:
    """Each image's pixels as a numpy array (h, w, channels), read by bpy in one child Blender."""
    import numpy as np

    outs = [p.with_suffix(f".{i}.npy") for i, p in enumerate(paths)]
    argv = [str(x) for pair in zip(paths, outs) for x in pair]
    subprocess.run([sys.executable, "-c", READ_PIXELS, *argv], check=True, capture_output=True, timeout=120)
    return [np.load(o) for o in outs]


def psnr(a, b) -> float:
    """PSNR in dB of two float images, clipped to [0, 1] (peak 1)."""
    import numpy as np

    a, b = np.clip(a[..., :3], 0, 1), np.clip(b[..., :3], 0, 1)
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def local_path(uri: str) -> Path:
    from addon.core.storage import parse_uri

    return Path(parse_uri(uri).path)


__all__ = ["json", "local_path", "pack_job", "pixels", "psnr", "tune_scene", "worker"]
