"""The worker image's Dockerfile: its pins equal the project's, and its steps work here.

No Docker engine runs on these machines, so the image is never built in tests. Instead:
the Dockerfile's bpy/Python pairing is compared with scripts/bootstrap.sh (which builds
the test environments), its pip steps with the constraints files and with what is
installed in this environment, its apt packages are looked up on this Debian, and its
pip steps run for real in a fresh virtualenv from a build context filtered by
.dockerignore (bpy itself excepted: 800 MB; its pin is checked against this env's bpy).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from addon.core.aws import bpy_wheels, image_versions, images

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


#: the python3 each Debian release ships (the Dockerfile uses Debian's own Python)
DEBIAN_PYTHON = {"bookworm": "3.11", "trixie": "3.13"}


def python_debian_stages() -> dict[str, str]:
    """wheel Python -> Debian release, from ``FROM debian:SUITE-slim AS python-X.Y``."""
    stages = {}
    for word, rest in dockerfile_instructions():
        m = re.match(r"^debian:(\w+)-slim\s+AS\s+python-(\d+\.\d+)$", rest)
        if word == "FROM" and m:
            stages[m.group(2)] = m.group(1)
    return stages


def constraints_python(bpy: str) -> str:
    return image_versions.constraints_python((ROOT / images.constraints_file(bpy)).read_text())


def bootstrap_pairs() -> dict[str, str]:
    text = (ROOT / "scripts" / "bootstrap.sh").read_text()
    return {bpy: py for py, bpy in re.findall(r"^\s*ensure_venv \S+ (3\.\d+) bpy==(\S+)", text, re.M)}


def runtime_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / "runtime.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"runtime.txt line {line!r} is not pinned with =="
            pins[name.strip().lower()] = version.strip()
    return pins


def pip_install_steps() -> list[str]:
    return [rest for word, rest in dockerfile_instructions() if word == "RUN" and "pip install" in rest]


def apt_packages() -> list[str]:
    for word, rest in dockerfile_instructions():
        if word == "RUN" and "apt-get install" in rest:
            install = rest.split("apt-get install", 1)[1].split("&&", 1)[0]
            return [w for w in install.split() if not w.startswith("-")]
    raise AssertionError("the Dockerfile installs no apt packages")


def test_blender_python_pairing_equals_bootstrap():
    # one stage per wheel Python, on the Debian whose own python3 it is
    stages = python_debian_stages()
    assert stages == bpy_wheels.DEBIAN_FOR_PYTHON == {"3.13": "trixie", "3.11": "bookworm"}
    assert all(DEBIAN_PYTHON[suite] == py for py, suite in stages.items())
    assert "FROM python-${PYTHON_VERSION} AS worker" in DOCKERFILE
    # the test environments pair bpy and Python as the constraints files (the wheel's tag) do
    pairs = bootstrap_pairs()
    assert pairs == {"5.2.3": "3.13", "4.5.15": "3.11"}
    assert {bpy: constraints_python(bpy) for bpy in pairs} == pairs
    defaults = dict(re.findall(r"^ARG (BLENDER_VERSION|PYTHON_VERSION)=(\S+)$", DOCKERFILE, re.M))
    assert constraints_python(defaults["BLENDER_VERSION"]) == defaults["PYTHON_VERSION"]
    # the image tier asks the same code publish-image uses for the build arguments
    common = (ROOT / "scripts" / "image_common.sh").read_text()
    assert "build_version(" in common and "debian_suite(" in common


def test_pip_steps_are_pinned_to_the_project_requirements():
    steps = pip_install_steps()
    assert any('"bpy==${BLENDER_VERSION}" -r requirements/runtime.txt' in s for s in steps), steps
    # the project is built by the pinned setuptools already installed, not a fresh one
    assert any(s.startswith("pip install --no-deps --no-build-isolation .") for s in steps), steps
    constraint = '-c "requirements/constraints-bpy-${BLENDER_VERSION}.txt"'
    for step in steps:
        for part in step.split("&&"):
            if "pip install" in part and " . " not in f"{part} ":
                assert constraint in part, f"pip install without the constraints file: {part!r}"
    copy = "COPY requirements/runtime.txt requirements/constraints-bpy-${BLENDER_VERSION}.txt requirements/"
    assert copy in DOCKERFILE
    # the apt step cleans its own cache instead of relying on the base image's hook
    apt = next(rest for word, rest in dockerfile_instructions() if word == "RUN" and "apt-get install" in rest)
    assert "apt-get clean" in apt and "rm -rf /var/lib/apt/lists/*" in apt


def test_this_environment_has_the_image_pins():
    """The tests run against exactly what the image for this Python installs."""
    for name, version in runtime_pins().items():
        assert importlib.metadata.version(name) == version, name
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert constraints_python(importlib.metadata.version("bpy")) == here


def test_runs_as_non_root_with_the_worker_entrypoint():
    instructions = dockerfile_instructions()
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    entry = [rest for word, rest in instructions if word == "ENTRYPOINT"]
    assert entry and json.loads(entry[-1]) == ["python", "-m", "worker"]


def test_apt_packages_exist_on_this_debian():
    packages = apt_packages()
    assert "ffmpeg" in packages and "libegl1" in packages and "libgl1-mesa-dri" in packages
    for pkg in packages:
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
        if status.returncode == 0 and "install ok installed" in status.stdout:
            continue
        known = subprocess.run(["apt-cache", "show", pkg], capture_output=True, text=True)
        assert known.returncode == 0 and known.stdout.strip(), f"Debian has no package {pkg!r}"
    # the Dockerfile's apt-get step, simulated (-s: no root, no download, nothing changes)
    sim = subprocess.run(["apt-get", "-s", "install", "-y", "--no-install-recommends", *packages],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert sim.returncode == 0, sim.stderr[-2000:]
    # the ffmpeg the image gets can do what stitch asks of it
    encoders = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    for name in ("libx264", "libx265", "libvpx-vp9", "libaom-av1", "prores_ks", "aac"):
        assert f" {name} " in encoders, name
    filters = subprocess.run(["ffmpeg", "-hide_banner", "-filters"], capture_output=True, text=True).stdout
    assert " zscale " in filters and " tonemap " in filters


def build_context(dest: Path) -> Path:
    """Copy the files .dockerignore lets through (it is an allow-list: '*' then '!path')."""
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()]
    assert "*" in lines, ".dockerignore should exclude everything, then allow what the image needs"
    for pattern in (ln[1:] for ln in lines if ln.startswith("!")):
        matches = sorted(ROOT.glob(pattern))
        assert matches, f".dockerignore lets through {pattern!r}, which matches nothing"
        for src in matches:
            target = dest / src.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, target)
    for excluded in (ln for ln in lines if ln and not ln.startswith(("!", "#", "*"))):
        shutil.rmtree(dest / excluded, ignore_errors=True)  # plain paths excluded after '!' lines
    return dest


@pytest.mark.slow
def test_pip_steps_work_in_a_fresh_virtualenv(tmp_path):
    context = build_context(tmp_path / "context")
    for copied in re.findall(r"^COPY (\S+)", DOCKERFILE, re.M):
        assert (context / copied).exists(), f"the Dockerfile copies {copied}, which .dockerignore leaves out"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = str(venv / "bin" / "python")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    # the Dockerfile's pip steps, minus bpy (checked against this env above): the pinned
    # setuptools first, then the project built with it (no build isolation); zstandard, which
    # the project needs and bpy brings in the image, at the version the constraints pin
    constraints = f"requirements/constraints-bpy-{importlib.metadata.version('bpy')}.txt"
    subprocess.run([py, "-m", "pip", "install", "-q", "-c", constraints, "setuptools", "zstandard", "-r",
                    "requirements/runtime.txt"], cwd=context, check=True, timeout=300, env=env)  # fmt: skip
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "."], cwd=context,
                   check=True, timeout=300, env=env)  # fmt: skip
    subprocess.run([py, "-m", "pip", "check"], check=True, timeout=60, env=env)
    # the installed worker (not this checkout) runs: a missing spec is a clear content error
    proc = subprocess.run([py, "-m", "worker", "render"], cwd=tmp_path, capture_output=True, text=True,
                          env={**env, "JOB_SPEC_URI": ""}, timeout=60)  # fmt: skip
    assert proc.returncode == 65 and "JOB_SPEC_URI is not set" in proc.stderr
    where = subprocess.run([py, "-c", "import worker; print(worker.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert str(venv) in where
