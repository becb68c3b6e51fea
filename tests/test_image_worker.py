"""The real worker image, built by scripts/image_tier.sh with buildah (marker ``image``:
the main suite leaves these out; the image tier of .ci/run runs them).

Inside each image, as its USER (uid 10001): ``python -m worker render`` for two slices with
Cycles and with EEVEE (Mesa llvmpipe) against a file:// store bind-mounted in, then
``python -m worker stitch``, then ffprobe on the video. Plus: pip freeze in the image equals
requirements/constraints-bpy-<VERSION>.txt, apt left no cache, and the image's size stays
within 10% of tests/image_sizes.json.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from addon.core.storage import path_to_uri
from tests.helpers import stage_submission
from tests.image_helpers import ROOT, VERSIONS, container, image_ref, image_size, run_in

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(2400)]

SIZES = ROOT / "tests" / "image_sizes.json"
EEVEE_ONE_SAMPLE = (
    "import bpy, sys\n"
    "bpy.ops.wm.open_mainfile(filepath=sys.argv[1])\n"
    "bpy.context.scene.eevee.taa_render_samples = 1\n"
    "bpy.ops.wm.save_as_mainfile(filepath=sys.argv[2])\n"
)


@pytest.fixture
def store_dir():
    """A folder the image's uid 10001 can write, mounted at the same path inside."""
    path = Path(tempfile.mkdtemp(prefix="abr-image-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def _ok(proc: subprocess.CompletedProcess[str], what: str) -> str:
    assert proc.returncode == 0, f"{what} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def _ffprobe(video: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(video)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return json.loads(out)


@pytest.mark.parametrize("version", list(VERSIONS))
def test_render_two_slices_cycles_and_eevee_then_stitch_inside_the_image(version, store_dir):
    ref = image_ref(version)
    (store_dir / "make_scene.py").write_text((ROOT / "demo" / "make_scene.py").read_text())
    (store_dir / "eevee.py").write_text(EEVEE_ONE_SAMPLE)
    with container(ref) as ctr:
        assert _ok(run_in(ctr, "id", "-u"), "id").strip() == "10001"
        py = _ok(run_in(ctr, "python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"), "python")
        assert py.strip() == VERSIONS[version]
        cycles = store_dir / "cycles.blend"
        eevee = store_dir / "eevee.blend"
        _ok(run_in(ctr, "python", str(store_dir / "make_scene.py"), str(cycles), "--frames", "2",
                   "--size", "64x36", "--samples", "2", volumes=(store_dir,)), "make_scene")  # fmt: skip
        _ok(run_in(ctr, "python", str(store_dir / "make_scene.py"), str(store_dir / "e.blend"), "--frames", "2",
                   "--size", "64x36", "--engine", "EEVEE", volumes=(store_dir,)), "make_scene EEVEE")  # fmt: skip
        _ok(run_in(ctr, "python", str(store_dir / "eevee.py"), str(store_dir / "e.blend"), str(eevee),
                   volumes=(store_dir,)), "EEVEE at 1 sample")  # fmt: skip
        jobs = {
            "CYCLES": (cycles, [[1], [2]]),
            "BLENDER_EEVEE_NEXT" if version.startswith("4.") else "BLENDER_EEVEE": (eevee, [[1], [2]]),
        }
        for engine, (blend, slices) in jobs.items():
            sub = f"sub-{engine.lower()}"
            spec, spec_uri = stage_submission(store_dir / engine, blend, slices, submission_id=sub, engine=engine)
            for store in (store_dir / engine).rglob("*"):  # staged by root here; the worker is uid 10001
                store.chmod(0o777 if store.is_dir() else 0o666)
            (store_dir / engine).chmod(0o777)
            for index in range(len(slices)):
                env = {"JOB_SPEC_URI": spec_uri, "AWS_BATCH_JOB_ARRAY_INDEX": str(index)}
                # EEVEE compiles its shaders on llvmpipe in every new Blender: minutes on a busy machine
                render = run_in(ctr, "python", "-m", "worker", "render", env=env, volumes=(store_dir,), timeout=900)
                _ok(render, f"{engine} render")
            frames = sorted((store_dir / engine / "submissions" / sub / "frames").glob("*.png"))
            assert len(frames) == sum(len(s) for s in slices), frames
            assert {f.stat().st_uid for f in frames} == {10001}  # written by the image's USER
            _ok(run_in(ctr, "python", "-m", "worker", "stitch", env={"JOB_SPEC_URI": spec_uri},
                       volumes=(store_dir,)), f"{engine} stitch")  # fmt: skip
            video_dir = store_dir / engine / "submissions" / sub / "video"
            videos = [p for p in video_dir.rglob("*") if p.suffix in (".mp4", ".mov", ".mkv", ".webm")]
            assert len(videos) == 1, videos
            streams = [s for s in _ffprobe(videos[0])["streams"] if s["codec_type"] == "video"]
            assert len(streams) == 1 and int(streams[0]["nb_read_frames"]) == len(frames)
            assert (streams[0]["width"], streams[0]["height"]) == (64, 36)
            assert path_to_uri(videos[0]).startswith(spec.output.video_uri)


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and ("==" in line or " @ " in line):  # pip freeze: name==version, or name @ url
            name, _, version = line.partition("==") if "==" in line else line.partition(" @ ")
            pins[name.strip().lower().replace("_", "-").replace(".", "-")] = version.strip()
    return pins


@pytest.mark.parametrize("version", list(VERSIONS))
def test_pip_freeze_in_the_image_equals_the_constraints(version):
    constraints = _pins((ROOT / "requirements" / f"constraints-bpy-{version}.txt").read_text())
    with container(image_ref(version)) as ctr:
        frozen = _pins(_ok(run_in(ctr, "pip", "freeze", "--all"), "pip freeze"))
        listing = "ls /var/lib/apt/lists /var/cache/apt/archives | grep -c '[.]deb$\\|_Packages' || true"
        apt_left = _ok(run_in(ctr, "sh", "-c", listing), "ls apt cache")
    project = frozen.pop("aws-batch-render", None)
    assert project == "file:///opt/aws-batch-render"  # the project itself, built in the image
    assert frozen == constraints
    assert apt_left.strip() == "0"


@pytest.mark.parametrize("version", list(VERSIONS))
def test_image_size_within_ten_percent_of_the_recorded_size(version):
    recorded = json.loads(SIZES.read_text())[version]
    size = image_size(image_ref(version))
    assert size <= recorded * 1.10, (
        f"the {version} image grew from {recorded} to {size} bytes (> 10%): shrink it, or record the new size "
        f"in {SIZES.relative_to(ROOT)} with the reason in the commit"
    )
