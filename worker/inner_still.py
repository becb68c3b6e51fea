"""Inside Blender, for a still split by sample ranges: set up a part, or merge the parts.

Two uses, both inside a Blender child (stdlib + bpy only, like ``inner_render.py``):

* ``setup_part(scene, part)`` — called by ``inner_render.py`` before it renders a part:
  a subset of the scene's own samples (``use_sample_subset``, ``sample_offset``,
  ``sample_subset_length``), no render denoising but its
  data passes stored when the scene denoises, adaptive sampling and the compositor off, a 32-bit multilayer EXR.
* ``python inner_still.py -- --job -`` (or ``blender -b --python inner_still.py -- --job -``):
  the merge. The job (one JSON line on stdin) names the .blend, the scene and, per frame,
  the part files. Parts are merged pairwise with ``cycles.merge_images`` (weighted by the
  sample counts Cycles stores in each EXR), denoised once with
  ``cycles.denoise_animation`` when the scene asked for denoising, and the final image is
  written with ``save_render`` in the scene's colour management (view transform, look,
  exposure, gamma) and the job's image format. One ``ABR_FRAME`` line per finished frame.
* ``merge_after_part(job)`` — the same merge, run by ``inner_render.py`` in the Blender that
  rendered the last part, when the worker hands it a merge job after the part
  (``ABR_WAITING``; see worker/merge.py: ``merge_after_part``).

Why adaptive sampling and the compositor are off per part: see worker/README.md.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from typing import Any

FRAME_TAG = "ABR_FRAME"
WARNING_TAG = "ABR_WARNING"
ERROR_TAG = "ABR_ERROR"
CONTENT_ERROR = 65
NO_JOB = 3


class ContentProblem(Exception):
    """Something no retry can fix."""


def emit(tag: str, **payload: Any) -> None:
    sys.stdout.write(f"{tag} {json.dumps(payload, sort_keys=True)}\n")
    sys.stdout.flush()


def part_range(samples: int, parts: int, index: int) -> tuple[int, int]:
    """Same as ``addon.core.still_split.part_range`` (a bare blender binary runs this file
    without the project on its path; a test checks the two agree)."""
    if samples < parts:
        raise ValueError(f"{samples} samples cannot be split in {parts} parts")
    k = samples // parts
    return index * k, (samples - k * (parts - 1) if index == parts - 1 else k)


def setup_part(scene: Any, part: dict[str, Any]) -> list[str]:
    """Prepare ``scene`` to render part ``part["index"]`` of ``part["parts"]``; returns warnings."""
    import bpy

    if scene.render.engine != "CYCLES":
        raise ContentProblem(
            f"Splitting a still by samples needs Cycles; scene {scene.name!r} renders with "
            f"{scene.render.engine}. Submit without --split-samples."
        )
    cycles = scene.cycles
    parts, index = int(part["parts"]), int(part["index"])
    samples = int(cycles.samples)
    if parts > samples:
        raise ContentProblem(
            f"--split-samples {parts} is more than the scene's {samples} samples (Render > Sampling > "
            "Max Samples): use at most that many parts."
        )
    layers = [vl for vl in scene.view_layers if vl.use]
    if len(layers) != 1:
        raise ContentProblem(
            f"A split still renders one view layer; scene {scene.name!r} renders {len(layers)} "
            "(View Layer > Use for Rendering): keep one, or submit without --split-samples."
        )
    if _compositor_in_use(scene):
        raise ContentProblem(
            "The compositor (Output > Post Processing > Compositing, with a node tree) cannot run on "
            "separate sample ranges and is not run on the merged image: turn Compositing off, or "
            "submit without --split-samples."
        )
    warnings = []
    if cycles.use_adaptive_sampling:
        warnings.append(
            "Adaptive sampling (Render > Sampling > Noise Threshold) is off for the split parts: each "
            f"part renders its full sample range, so every pixel gets all {samples} samples."
        )
    if getattr(cycles, "sampling_pattern", "TABULATED_SOBOL") != "TABULATED_SOBOL":
        warnings.append(
            f"Sampling pattern {cycles.sampling_pattern} depends on the sample count: the parts render "
            "with Classic (Tabulated Sobol), whose sample ranges add up to one full render (Render > "
            "Sampling > Advanced > Pattern: set Classic to match a single-machine render exactly)."
        )
        cycles.sampling_pattern = "TABULATED_SOBOL"
    offset, count = part_range(samples, parts, index)
    cycles.use_adaptive_sampling = False
    # Samples stay the total (the sequence is the full render's); the subset picks this range.
    cycles.use_sample_subset = True
    cycles.sample_offset = offset
    cycles.sample_subset_length = count
    _PART_SAMPLES["count"] = count  # what the part's EXR must say it holds (check_part_file)
    if cycles.use_denoising:
        # Denoised once, after the merge. Cycles' file denoiser wants the data passes and the
        # Vector pass beside the noisy Combined; Vector does not exist with motion blur.
        if scene.render.use_motion_blur:
            raise ContentProblem(
                "A split still is denoised after the merge, which needs the Vector pass, and Cycles "
                "writes no Vector pass with motion blur (Render > Motion Blur): turn one of motion "
                "blur or Render > Sampling > Denoise off, or submit without --split-samples."
            )
        layers[0].use_pass_vector = True
        _WANTS_DENOISE["on"] = True
    # The data passes cost every sample and every part's EXR: only a denoised still reads them.
    layers[0].cycles.denoising_store_passes = bool(cycles.use_denoising)
    cycles.use_denoising = False
    scene.render.use_compositing = False
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):
        settings.media_type = "MULTI_LAYER_IMAGE"
    settings.file_format = "OPEN_EXR_MULTILAYER"
    settings.color_depth = "32"  # the merge averages; half floats would add their own error
    settings.exr_codec = "ZIP"
    if hasattr(settings, "use_exr_interleave"):
        # Blender 5.x writes one EXR part per pass unless interleaved, and cycles.merge_images
        # keeps only the first part (Combined): the merged file would lose the denoising passes.
        settings.use_exr_interleave = True
    sys.stdout.write(f"Part {index + 1}/{parts}: samples {offset}..{offset + count - 1} of {samples}\n")
    del bpy
    return warnings


_WANTS_DENOISE: dict[str, bool] = {}
_PART_SAMPLES: dict[str, int] = {}


def check_part_file(path: str) -> None:
    """After the part is written: make it say how many samples it holds (Cycles records the
    scene's total, and the merge weights each part by it); refuse it early when the merge
    could not denoise it."""
    import bpy
    from exr_header import BadExr, read_header, with_samples  # a sibling: stdlib only

    try:
        with open(path, "rb") as fh:
            data = fh.read(1 << 20)  # the header and the offset table; the pixels are copied as they are
            head = read_header(data)
            count = _PART_SAMPLES.get("count")
            if count and head.samples not in (None, count):
                with open(path + ".part", "wb") as out:
                    out.write(with_samples(data, count))
                    shutil.copyfileobj(fh, out, 8 << 20)
                os.replace(path + ".part", path)
    except (OSError, BadExr):
        return  # the outer process checks the whole file and says what is wrong
    if not _WANTS_DENOISE.get("on"):
        return
    if not (head.has_pass("Denoising Albedo") and head.has_pass("Vector")):
        raise ContentProblem(
            f"Blender {bpy.app.version_string} wrote no denoising data or Vector pass into the part's "
            "multilayer EXR, so the merged image cannot be denoised: turn Render > Sampling > Denoise "
            "off for the split, or render this still without --split-samples."
        )


def _compositor_in_use(scene: Any) -> bool:
    if not scene.render.use_compositing:
        return False
    tree = getattr(scene, "compositing_node_group", None)  # 5.x
    if tree is None and getattr(scene, "use_nodes", False):
        tree = getattr(scene, "node_tree", None)  # 4.x
    if tree is None:
        return False
    kinds = {n.bl_idname for n in tree.nodes}
    # Render Layers straight into the output changes nothing: not "in use"
    return bool(kinds - {"CompositorNodeRLayers", "CompositorNodeComposite", "NodeGroupOutput", "CompositorNodeViewer"})


def merge_pair(a: str, b: str, out: str) -> None:
    import bpy

    if os.path.exists(out):
        os.unlink(out)
    bpy.ops.cycles.merge_images(input_filepath1=a, input_filepath2=b, output_filepath=out)
    if not os.path.exists(out):  # the operator reports its errors and still returns FINISHED
        raise ContentProblem(f"Cycles could not merge {os.path.basename(a)} and {os.path.basename(b)}.")


def merge_parts(paths: list[str], work: str) -> str:
    """Merge pairwise, level by level (a tree: each part is read log2(N) times, not N)."""
    level = list(paths)
    step = 0
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            out = os.path.join(work, f"merge-{step}-{i}.exr")
            merge_pair(level[i], level[i + 1], out)
            nxt.append(out)
        if len(level) % 2:
            nxt.append(level[-1])
        level, step = nxt, step + 1
    return level[0]


def denoise(scene: Any, src: str, out: str) -> None:
    import bpy

    layer = next(vl for vl in scene.view_layers if vl.use)
    try:
        with bpy.context.temp_override(scene=scene, view_layer=layer):
            bpy.ops.cycles.denoise_animation(input_filepath=src, output_filepath=out)
    except RuntimeError:
        pass  # the operator's error report; judged by the file below
    if not os.path.exists(out):
        raise ContentProblem(
            "Denoising the merged image failed: it has no denoising data passes (this Blender did not "
            "write them with the parts). Turn Render > Sampling > Denoise off, or submit without "
            "--split-samples."
        )


def write_final(scene: Any, src: str, out: str, image_format: str) -> None:
    """The final image in the scene's colour management and the job's file format."""
    import bpy

    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):
        settings.media_type = "IMAGE"
    settings.file_format = image_format
    if image_format == "OPEN_EXR":
        settings.color_depth = "32"
    image = bpy.data.images.load(src, check_existing=False)
    try:
        image.save_render(out, scene=scene)
    finally:
        bpy.data.images.remove(image)
    if not os.path.exists(out):
        raise ContentProblem(f"Blender could not write the final image {os.path.basename(out)}.")


def run_merge(job: dict[str, Any]) -> None:
    import bpy

    bpy.ops.wm.open_mainfile(filepath=job["blend"], load_ui=False)
    scene = bpy.data.scenes.get(job["scene"]) if job.get("scene") else bpy.context.scene
    if scene is None:
        raise ContentProblem(f"The .blend has no scene named {job['scene']!r}.")
    want_denoise = bool(scene.cycles.use_denoising)
    for item in job["frames"]:
        started = time.perf_counter()
        work = item["work"]
        os.replace(merge_parts(item["parts"], work), item["merged"])
        source = item["merged"]
        if want_denoise:
            source = os.path.join(work, "denoised.exr")
            denoise(scene, item["merged"], source)
        write_final(scene, source, item["final"], job["image_format"])
        emit(
            FRAME_TAG, frame=int(item["frame"]), path=item["final"], merged=item["merged"],
            denoised=want_denoise, seconds=round(time.perf_counter() - started, 4),
        )  # fmt: skip


def merge_after_part(job: dict[str, Any]) -> None:
    """The merge, in the Blender that just rendered the last part (no second ``import bpy``).
    Best effort: the part is already uploaded, so a failure here only leaves the merge to the
    merge job, which then reports it; it never fails the part."""
    try:
        run_merge(job)
    except Exception as exc:  # any failure: the merge job merges and says why
        text = str(exc).strip().splitlines()
        sys.stdout.write(f"The merge after the part failed ({text[-1] if text else type(exc).__name__}); "
                         "the merge job merges.\n")  # fmt: skip


def main(argv: list[str]) -> int:
    try:
        import bpy  # noqa: F401
    except ImportError:
        emit(ERROR_TAG, kind="setup", message=f"{sys.executable} has no bpy module: set BLENDER_BIN or BLENDER_PYTHON.")
        return CONTENT_ERROR
    line = sys.stdin.readline()
    if not line.strip():
        return NO_JOB
    try:
        run_merge(json.loads(line))
    except ContentProblem as exc:
        emit(ERROR_TAG, kind="content", message=str(exc))
        return CONTENT_ERROR
    except RuntimeError as exc:  # an operator's error report
        emit(ERROR_TAG, kind="content", message=f"Merging failed: {str(exc).strip().splitlines()[-1]}")
        return CONTENT_ERROR
    return 0


if __name__ == "__main__":
    code = main(sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without Blender's exit clean-up: bpy 4.5 can hang there (after a scene whose
    # Python driver was skipped, a fluid domain), after every frame was written.
    os._exit(code)
