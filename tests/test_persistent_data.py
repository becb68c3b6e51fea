"""Cycles Persistent Data for multi-frame chunks: the rule (Cycles, 2+ frames a chunk, the
scout's peak memory x1.5 within a chunk's memory), the quote saying it, the spec carrying
it only when on (older workers read the specs without it), and the worker's Blender
rendering with it."""

from __future__ import annotations

import json

import pytest
from helpers import make_spec

from addon.core.exitcodes import SUCCESS
from addon.core.jobspec import JobSpec
from addon.core.quote.model import Measured, estimate, persistent_data
from addon.core.storage import path_to_uri


def test_the_rule():
    assert persistent_data("CYCLES", 4, 100, 150)[0]
    on, why = persistent_data("CYCLES", 4, 100, 149)
    assert not on and why == "Cycles Persistent Data off: peak 100 MiB x1.5 passes 149 MiB"
    assert persistent_data("CYCLES", 1, 100, 4096) == (False, "Persistent Data off: one frame per chunk")
    assert persistent_data("BLENDER_EEVEE", 4, 100, 4096) == (False, "Persistent Data off: Cycles only")
    assert persistent_data("CYCLES", 4, 100, 0) == (False, "Persistent Data off: a chunk's memory is unknown")


def test_the_quote_says_it():
    m = Measured(load_seconds=10, seconds_per_frame=1, peak_rss_mib=500, threads=2)
    q = estimate(m, 40, parallel=1, job_threads=2, chunk_size=10, engine="CYCLES", memory_mib=2048)
    assert q.persistent_data
    assert "Cycles Persistent Data on: peak 500 MiB x1.5 fits 2048 MiB of a chunk" in q.assumptions
    q = estimate(m, 40, parallel=1, job_threads=2, chunk_size=10, engine="CYCLES", memory_mib=600)
    assert not q.persistent_data and any("Persistent Data off" in a for a in q.assumptions)


def test_the_spec_carries_it_only_when_on():
    spec = make_spec("file:///tmp/store/")
    assert "persistent_data" not in json.loads(spec.to_json())["render"]  # readable by older workers
    spec.render.persistent_data = True
    data = json.loads(spec.to_json())
    assert data["render"]["persistent_data"] is True
    assert JobSpec.from_json(spec.to_json()).render.persistent_data is True


def test_specbuild_turns_it_on_for_cycles_multi_frame_chunks_only():
    from addon.core.submit.options import SubmitOptions
    from tests.test_specbuild import build, snap

    assert build(options=SubmitOptions(chunk_size=5, persistent_data=True)).render.persistent_data
    assert not build(options=SubmitOptions(chunk_size=5)).render.persistent_data
    assert not build(options=SubmitOptions(chunk_size=1, persistent_data=True)).render.persistent_data
    eevee = snap(engine="BLENDER_EEVEE")
    assert not build(eevee, SubmitOptions(chunk_size=5, persistent_data=True)).render.persistent_data


@pytest.mark.slow
def test_the_worker_renders_a_chunk_with_persistent_data(tmp_path, tiny_scene):
    from tests.test_worker_render import frames_in_store, pack_job, run_worker, worker_env

    root = path_to_uri(tmp_path / "store", directory=True)
    spec, _ = pack_job(root, tiny_scene, [[1, 2, 3]], submission_id="sub-persist")
    spec.render.persistent_data = True
    from addon.core.storage import join_uri, open_store

    spec_uri = join_uri(root, "submissions/sub-persist/spec.json")
    open_store(root).put_bytes(spec.to_json().encode(), spec_uri)
    proc = run_worker(worker_env(spec_uri, 0))
    assert proc.returncode == SUCCESS, proc.stderr[-3000:]
    assert sorted(frames_in_store(spec)) == [1, 2, 3]


@pytest.mark.slow
@pytest.mark.parametrize("persist", [True, False])
def test_the_inner_blender_turns_it_on_when_the_job_asks(tmp_path, tiny_scene, persist):
    import os
    import subprocess

    from addon.core.backends.local.processes import import_root
    from addon.core.quote.scout import inner_argv

    job = {"blend": str(tiny_scene), "engine": "CYCLES", "threads": 1, "out_dir": str(tmp_path), "image_format": "PNG",
           "frames": [1, 2], "persistent_data": persist}  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(import_root())}
    proc = subprocess.run(inner_argv(), input=json.dumps(job) + "\n", capture_output=True, text=True, timeout=120,
                          env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert ("thread(s), Persistent Data" in proc.stdout) is persist, proc.stdout[-2000:]
