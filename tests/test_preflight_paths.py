"""Preflight, the parts beyond the scene: the nested-library scene is not missing anything,
the worker renders a sequencer-only scene, and on AWS the stack's image and GPU queue."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from addon.cli import main
from addon.cli.check import preflight
from addon.core.aws import deploy
from addon.core.aws.session import client
from addon.core.exitcodes import CHECK_WARNINGS
from addon.core.storage import path_to_uri
from addon.core.submit.packing import pack_blend, verified_missing
from addon.core.submit.preflight_aws import image_tag
from addon.core.submit.scene_reader import read_scene
from tests.test_preflight import make
from tests.test_worker_render import frames_in_store, pack_job, png_size, run_worker, worker_env

STACK = "abr-check"
MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def test_nested_libraries_are_found_and_packed(tmp_path):
    blend = make(tmp_path / "project" / "shots" / "seq" / "scene.blend", "nested")
    snap = read_scene(blend)
    assert snap.missing_files == []
    packed = pack_blend(blend, tmp_path / "pack", blender_missing=snap.missing_files)
    assert packed.missing == []
    assert {"lib/chars/char.blend", "lib/props/prop.blend", "lib/props/tex/wood.png"} <= set(packed.files)


def test_bat_missing_libraries_are_checked_against_blender():
    lib, tex = "/p/lib/props/prop.blend", "/p/tex/wood.png"
    # Blender found the library BAT could not: not missing; a texture stays BAT's word
    assert verified_missing([lib, tex], []) == [tex]
    assert verified_missing([lib, tex], [lib]) == [lib, tex]
    assert verified_missing([lib], None) == [lib]


def test_worker_renders_a_sequencer_only_scene(tmp_path, capsys):
    blend = make(tmp_path / "seq" / "sequencer.blend", "sequencer")
    code = main(["check", str(blend), "--backend", "local"])
    out = capsys.readouterr().out
    assert code == CHECK_WARNINGS and "PYTHON_AUTORUN" in out and "NO_CAMERA" not in out, out
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, blend, [[1, 2]], engine="BLENDER_WORKBENCH")
    proc = run_worker(worker_env(spec_uri, 0))
    assert proc.returncode == 0, proc.stderr[-3000:]
    frames = frames_in_store(spec)
    assert sorted(frames) == [1, 2]
    assert png_size(frames[1]) == (64, 36)


@pytest.mark.slow
def test_the_worker_ends_after_rendering_a_scene_with_a_python_driver(tmp_path):
    """Auto-run is off on the worker, so the driver is skipped; Blender 4.5 then hung in its
    exit clean-up after the frames were written, until the job's timeout."""
    blend = make(tmp_path / "driven" / "driven.blend", "sequencer_driven")
    root = path_to_uri(tmp_path / "bucket", directory=True)
    spec, spec_uri = pack_job(root, blend, [[1]], engine="BLENDER_WORKBENCH")
    proc = run_worker(worker_env(spec_uri, 0), timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(frames_in_store(spec)) == [1]


@pytest.mark.slow
def test_aws_image_and_gpu_queue_come_from_the_stack(aws_settings, tmp_path):
    out = deploy.deploy_stack(STACK, aws_settings, poll_seconds=0).outputs
    snap = read_scene(make(tmp_path / "clean.blend", "clean"))
    args = argparse.Namespace(
        backend="aws", stack=STACK, device="GPU", allow_missing=False, gpu_queue="",
    )  # fmt: skip
    report = preflight(args, dataclasses.replace(snap, engine="CYCLES"), aws_settings)
    messages = {f.code: f.message for f in report.findings}
    exact = snap.blender_version  # the artist's exact version, not only its line
    assert f"`aws-batch-render publish-image --stack {STACK} --blender {exact} --region us-east-1`" in (
        messages["IMAGE_MISSING"]
    )
    assert "no GPU queue" in messages["NO_GPU_QUEUE"]

    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MEDIA_TYPE, "layers": [],
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                   "digest": "sha256:" + "c" * 64},
    })  # fmt: skip
    for tag in (image_tag(snap.blender_version), f"blender-{exact}"):  # as publish-image tags it
        client("ecr", aws_settings).put_image(
            repositoryName=out.repository_uri.split("/", 1)[1], imageManifest=manifest,
            imageManifestMediaType=MEDIA_TYPE, imageTag=tag,
        )  # fmt: skip
    args.device = "CPU"
    assert preflight(args, snap, aws_settings).findings == []
