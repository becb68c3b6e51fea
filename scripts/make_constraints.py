"""Write requirements/constraints-bpy-<VERSION>.txt: every package the worker image's pip installs.

The set comes from a real resolution by pip against the package index, for the image's
Python and platform (``pip install --dry-run --report`` with ``--python-version``): bpy and
its own dependencies, requirements/runtime.txt, and the tools the Dockerfile installs
before the project (pip itself, and setuptools, the build backend of ``pip install
--no-build-isolation .``). The Python comes from the bpy wheel's tag on the index
(addon/core/aws/bpy_wheels.py), so any released Blender 4.2+ works. Rerun it when a pin in
runtime.txt changes, or to add a Blender version:

    .venv/bin/python scripts/make_constraints.py 5.2.3 4.5.15 5.3.0 4.2.23

tests/test_image_constraints.py checks that the files are closed and agree with the
Dockerfile and runtime.txt; the image tier compares ``pip freeze`` in the built image with them.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from addon.core.aws.bpy_wheels import wheel_python  # noqa: E402

PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64")
#: what the Dockerfile installs besides bpy and runtime.txt (unversioned: the resolver picks the newest)
TOOLS = ("pip", "setuptools")


def constraints_path(blender: str) -> Path:
    return REPO / "requirements" / f"constraints-bpy-{blender}.txt"


def resolve(blender: str) -> dict[str, str]:
    """{normalized name: version} of the complete install, as pip resolves it today."""
    python = wheel_python(blender)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        argv = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--only-binary=:all:",
            "--python-version",
            python,
            "--implementation",
            "cp",
            "--report",
            str(report),
            "--target",  # older pips take --platform only with a target (nothing is written: dry run)
            str(Path(tmp) / "target"),
            f"bpy=={blender}",
            "-r",
            str(REPO / "requirements" / "runtime.txt"),
            *TOOLS,
        ]
        for plat in PLATFORMS:
            argv += ["--platform", plat]
        subprocess.run(argv, check=True, env={**_env(), "PIP_FIND_LINKS": ""})
        data = json.loads(report.read_text())
    return {_norm(i["metadata"]["name"]): i["metadata"]["version"] for i in data["install"]}


def render(blender: str, pins: dict[str, str], python: str) -> str:
    head = (
        f"# Every package pip installs in the worker image for bpy {blender}, resolved by\n"
        "# scripts/make_constraints.py (do not edit by hand; rerun it).\n"
        f"# python {python} (the bpy wheel's tag: the image's PYTHON_VERSION and Debian base)\n"
    )
    return head + "".join(f"{name}=={pins[name]}\n" for name in sorted(pins))


def read_pins(path: Path) -> dict[str, str]:
    pins = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_norm(name)] = version.strip()
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="+", help="full bpy versions, e.g. 5.2.3 4.5.15")
    args = parser.parse_args(argv)
    for version in args.versions:
        path = constraints_path(version)
        path.write_text(render(version, resolve(version), wheel_python(version)))
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
