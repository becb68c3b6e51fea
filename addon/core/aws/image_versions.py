"""Which bpy version and Python the worker image is built for, from what publish-image is
asked ("5.2" or "5.2.3"), the committed constraints files and the package index."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import AwsBatchRenderError
from . import bpy_wheels

#: the Dockerfile has one base stage per wheel Python: "AS python-3.13"
_DOCKER_STAGE = re.compile(r"\bAS\s+python-(\d+\.\d+)\b", re.IGNORECASE)
#: the header line scripts/make_constraints.py writes: "# python 3.13 (the bpy wheel's tag)"
_CONSTRAINTS_PYTHON = re.compile(r"^# python (\d+\.\d+)\b", re.MULTILINE)


class ImagePublishError(AwsBatchRenderError):
    """Building, tagging or pushing the worker image failed."""

    exit_code = 9


def constraints_file(blender_version: str) -> str:
    """The pins of everything pip installs in the image (scripts/make_constraints.py)."""
    return f"requirements/constraints-bpy-{blender_version}.txt"


def constraints_python(text: str) -> str:
    """The wheel Python a constraints file was resolved for ("" when it does not say)."""
    m = _CONSTRAINTS_PYTHON.search(text)
    return m.group(1) if m else ""


def build_version(blender: str, context: Path, dockerfile_text: str = "") -> tuple[str, str]:
    """(``BLENDER_VERSION``, ``PYTHON_VERSION``) build arguments for ``blender``.

    "5.2.3" as given; "5.2" -> the newest 5.2.x with a committed constraints file, else the
    newest on the package index. The Python is the one the constraints file was resolved
    for, else the wheel's tag on the index (cached). A Dockerfile that installs from the
    constraints files needs the version's file: without it, one line with the command.
    """
    try:
        full = _committed_version(blender, context) or bpy_wheels.full_version(blender)
        pins = context / constraints_file(full)
        python = constraints_python(pins.read_text(encoding="utf-8")) if pins.is_file() else ""
        python = python or bpy_wheels.wheel_python(full)
        stages = _DOCKER_STAGE.findall(dockerfile_text)
        if stages:
            bpy_wheels.debian_suite(python)
            if python not in stages:
                raise bpy_wheels.BpyWheelError(
                    f"The Dockerfile has no python-{python} stage for bpy {full} (it has {', '.join(stages)})."
                )
    except bpy_wheels.BpyWheelError as exc:
        raise ImagePublishError(str(exc)) from exc
    if "constraints-bpy-" in dockerfile_text and not pins.is_file():
        raise ImagePublishError(
            f"No {constraints_file(full)} yet: make it with `python scripts/make_constraints.py {full}` "
            f"(pins everything the image installs), then run publish-image again."
        )
    return full, python


def _committed_version(blender: str, context: Path) -> str:
    """The newest X.Y.Z of line ``blender`` with a constraints file in ``context`` ("" if none)."""
    if not re.match(r"^\d+\.\d+$", blender or ""):
        return ""
    files = (context / "requirements").glob("constraints-bpy-*.txt")
    found = [p.name[len("constraints-bpy-") : -len(".txt")] for p in files]
    mine = [v for v in found if re.match(r"^\d+\.\d+\.\d+$", v) and v.rsplit(".", 1)[0] == blender]
    return max(mine, key=lambda v: tuple(int(p) for p in v.split(".")), default="")
