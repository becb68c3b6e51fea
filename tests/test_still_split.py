"""A still split by sample ranges, end to end with real bpy and real Cycles (64x64).

Parts render with ``python -m worker render`` (one process per array child), the merge
with ``python -m worker merge``; stores are file:// folders. PSNR figures are printed
(run with ``-s`` to see them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from still_split_helpers import local_path, pack_job, pixels, psnr, tune_scene, worker

from addon.core.exitcodes import CONTENT_ERROR, SUCCESS
from addon.core.still_split import merged_uri, part_uri
from addon.core.storage import path_to_uri
from tests.helpers import make_scene
from worker.exr_header import check_part, read_header

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = 32

REFERENCE_DENOISED = """
import bpy, sys
sys.path.insert(0, sys.argv[1])
import inner_still
bpy.ops.wm.open_mainfile(filepath=sys.argv[2])
scene = bpy.context.scene
inner_still.setup_part(scene, {"index": 0, "parts": 1})  # every sample in one process
scene.render.filepath = sys.argv[3] + "/full.exr"
bpy.ops.render.render(write_still=True)
inner_still.denoise(scene, sys.argv[3] + "/full.exr", sys.argv[3] + "/denoised.exr")
inner_still.write_final(scene, sys.argv[3] + "/denoised.exr", sys.argv[3] + "/final.exr", "OPEN_EXR")
"""


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("still")
    src = make_scene(d / "src.blend", "--frames", "1", "--size", "64x64")
    return {
        "plain": tune_scene(src, d / "plain.blend", 64, 64, SAMPLES, denoise=False),
        "denoise": tune_scene(src, d / "denoise.blend", 64, 64, SAMPLES, denoise=True),
    }


def render_all(spec_uri: str, count: int) -> None:
    for i in range(count):
        proc = worker("render", spec_uri, i)
        assert proc.returncode == SUCCESS, proc.stderr[-3000:]


def split_and_merge(root: str, blend: Path, parts: int, submission_id: str):
    spec, uri = pack_job(root, blend, [1], parts, submission_id=submission_id)
    render_all(uri, parts)
    proc = worker("merge", uri)
    assert proc.returncode == SUCCESS, proc.stderr[-3000:]
    return spec, uri, proc


@pytest.fixture(scope="module")
def reference(scenes, tmp_path_factory):
    """One process rendering every sample (an ordinary worker render, EXR)."""
    root = path_to_uri(tmp_path_factory.mktemp("ref"), directory=True)
    spec, uri = pack_job(root, scenes["plain"], [1], 1, submission_id="single")
    render_all(uri, 1)
    return local_path(spec.frame_uri(1))


@pytest.mark.parametrize("parts", [2, 3, 4])
def test_merged_parts_match_a_single_render(parts, scenes, reference, tmp_path):
    root = path_to_uri(tmp_path, directory=True)
    spec, _, _ = split_and_merge(root, scenes["plain"], parts, f"split-{parts}")
    merged, reference = pixels(local_path(spec.frame_uri(1)), reference)
    value = psnr(merged, reference)
    print(f"\nPSNR merged N={parts} vs single process, {SAMPLES} samples: {value:.1f} dB")
    assert merged.shape == reference.shape == (64, 64, 4)
    # the same samples, each weighted once: the single render up to float rounding (79 dB for
    # N = 2, 3 and 4; N = 3 gave 61 dB while its uneven parts, 10, 10 and 12 of 32, each said
    # they held 32 samples and cycles.merge_images weighted them alike)
    assert value >= 70.0
    counts = [check_part(local_path(part_uri(spec, 1, i)).read_bytes()).samples for i in range(parts)]
    assert sum(counts) == SAMPLES and counts[:-1] == [SAMPLES // parts] * (parts - 1), counts
    assert check_part(local_path(merged_uri(spec, 1)).read_bytes()).samples == SAMPLES
    assert local_path(merged_uri(spec, 1)).stat().st_size > 0  # the merged EXR is uploaded too
    # no denoise asked: the parts carry no denoising data (it costs every sample and every EXR)
    head = read_header(local_path(part_uri(spec, 1, 0)).read_bytes()[: 1 << 20])
    assert head.has_pass("Combined") and not head.has_pass("Denoising Albedo") and not head.has_pass("Vector")


def test_denoised_once_after_the_merge(scenes, tmp_path):
    root = path_to_uri(tmp_path / "store", directory=True)
    spec, _, _proc = split_and_merge(root, scenes["denoise"], 2, "split-dn")
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    subprocess.run(
        [sys.executable, "-c", REFERENCE_DENOISED, str(ROOT / "worker"), str(scenes["denoise"]), str(ref_dir)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    head = read_header(local_path(part_uri(spec, 1, 1)).read_bytes()[: 1 << 20])
    assert head.has_pass("Denoising Albedo") and head.has_pass("Denoising Normal") and head.has_pass("Vector")
    final, reference = pixels(local_path(spec.frame_uri(1)), ref_dir / "final.exr")
    value = psnr(final, reference)
    print(f"\nPSNR denoised merge N=2 vs single render denoised the same way: {value:.1f} dB")
    assert value >= 40.0


def test_faults_killed_part_retried_missing_or_corrupt_part_refused_merge_run_twice(scenes, tmp_path):
    root = path_to_uri(tmp_path, directory=True)
    spec, uri = pack_job(root, scenes["plain"], [1], 2, submission_id="split-faults")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_BATCH_")}
    env.update(JOB_SPEC_URI=uri, AWS_BATCH_JOB_ARRAY_INDEX="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "render"], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:
        if "Rendering part 2/2" in line:
            os.killpg(proc.pid, signal.SIGKILL)  # worker and Blender, mid-part (a reclaimed host)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    part = local_path(part_uri(spec, 1, 1))
    assert not part.exists()  # nothing half-written is in the store

    render_all(uri, 1)  # part 0 only
    refused = worker("merge", uri)
    assert refused.returncode == CONTENT_ERROR
    assert "1 of 2 part(s) of frame 1 are missing (parts 1)" in refused.stderr

    first_part = local_path(part_uri(spec, 1, 0))
    whole = first_part.read_bytes()
    first_part.write_bytes(whole[: len(whole) // 2])  # a truncated part
    # The retry of the killed part is the last part: it would merge, but refuses the truncated one.
    retry = worker("render", uri, 1, AWS_BATCH_JOB_ATTEMPT="2")
    assert retry.returncode == SUCCESS, retry.stderr[-2000:]
    assert part.exists() and "Part 0 of frame 1" in retry.stderr and "the merge job merges it" in retry.stderr
    proc2 = worker("merge", uri)
    assert proc2.returncode == CONTENT_ERROR
    assert "Part 0 of frame 1" in proc2.stderr and "cut short" in proc2.stderr
    assert not local_path(spec.frame_uri(1)).exists()  # nothing counted as done

    first_part.write_bytes(whole)
    first = worker("merge", uri)
    assert first.returncode == SUCCESS, first.stderr[-2000:]
    final = local_path(spec.frame_uri(1))
    stamp = final.stat().st_mtime_ns
    second = worker("merge", uri)
    assert second.returncode == SUCCESS
    assert "already merged: nothing to do" in second.stderr
    assert final.stat().st_mtime_ns == stamp


def test_the_last_part_merges_and_the_merge_job_only_checks_it(scenes, tmp_path):
    """The part that finds every other part in the store merges in its own Blender; the merge
    job then starts no Blender. A merged EXR that is not whole is merged again."""
    root = path_to_uri(tmp_path, directory=True)
    spec, uri = pack_job(root, scenes["plain"], [1], 3, submission_id="split-last")
    render_all(uri, 2)
    final, merged = local_path(spec.frame_uri(1)), local_path(merged_uri(spec, 1))
    assert not final.exists() and not merged.exists()  # parts 0 and 1 saw part 2 missing
    last = worker("render", uri, 2)
    assert last.returncode == SUCCESS, last.stderr[-3000:]
    assert "merging it in this part's Blender" in last.stderr and "merged from 3 parts" in last.stderr
    assert final.stat().st_size > 0 and read_header(merged.read_bytes()[: 1 << 20]).has_pass("Combined")
    stamp = final.stat().st_mtime_ns

    check = worker("merge", uri)
    assert check.returncode == SUCCESS, check.stderr[-3000:]
    assert "already merged: nothing to do" in check.stderr and "Started Blender" not in check.stderr
    assert final.stat().st_mtime_ns == stamp

    whole = merged.read_bytes()
    merged.write_bytes(whole[: len(whole) // 2])  # a merged EXR cut short: the frame is not done
    redo = worker("merge", uri)
    assert redo.returncode == SUCCESS, redo.stderr[-3000:]
    assert "is unusable" in redo.stderr and "merged from 3 parts" in redo.stderr
    assert check_part(merged.read_bytes()).has_pass("Combined") and final.stat().st_mtime_ns != stamp


def test_on_s3_the_last_part_merges_and_a_merged_exr_cut_short_is_merged_again(scenes, s3_bucket):
    """The same on S3 (moto): the last part downloads the other parts and merges; the merge
    job checks the merged EXR it downloads, and merges again when it is cut short."""
    from addon.core.storage import open_store

    spec, uri = pack_job(f"s3://{s3_bucket}/", scenes["plain"], [1], 2, submission_id="split-s3")
    store = open_store(uri)
    render_all(uri, 1)
    assert not store.exists(spec.frame_uri(1))
    last = worker("render", uri, 1)
    assert last.returncode == SUCCESS, last.stderr[-3000:]
    assert "merged from 2 parts" in last.stderr
    whole = store.get_bytes(merged_uri(spec, 1))
    assert check_part(whole).has_pass("Combined") and store.exists(spec.frame_uri(1))

    check = worker("merge", uri)
    assert check.returncode == SUCCESS, check.stderr[-3000:]
    assert "already merged: nothing to do" in check.stderr and "Started Blender" not in check.stderr

    store.put_bytes(whole[: len(whole) // 2], merged_uri(spec, 1))
    redo = worker("merge", uri)
    assert redo.returncode == SUCCESS, redo.stderr[-3000:]
    assert "is unusable" in redo.stderr and "merged from 2 parts" in redo.stderr
    assert check_part(store.get_bytes(merged_uri(spec, 1))).has_pass("Combined")


def test_more_parts_than_samples_is_refused_by_the_part(scenes, tmp_path):
    root = path_to_uri(tmp_path, directory=True)
    spec, uri = pack_job(root, scenes["plain"], [1], SAMPLES + 1, submission_id="split-too-many")
    proc = worker("render", uri, 0)
    assert proc.returncode == CONTENT_ERROR
    assert f"--split-samples {SAMPLES + 1} is more than the scene's {SAMPLES} samples" in proc.stderr
    assert not local_path(part_uri(spec, 1, 0)).exists()
