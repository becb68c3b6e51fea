"""Read a .blend's render settings without bpy in this process.

The command line has no Blender of its own: it runs a child Blender on the file, with
``addon/blender/snapshot.py`` as the script, and reads the :class:`SceneSnapshot` back
from one marked stdout line. The child is either a Python that has the ``bpy`` module
(``BLENDER_PYTHON``, else this interpreter when it has bpy) or a Blender executable
(``BLENDER_BIN``). A child process also keeps a crashing file from taking the caller
down with it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from ..errors import AwsBatchRenderError
from .blender_output import cannot_read_message
from .scene import SceneSnapshot

log = logging.getLogger(__name__)

SNAPSHOT_SCRIPT = Path(__file__).resolve().parents[2] / "blender" / "snapshot.py"
MARKER = "ABR_SNAPSHOT_JSON:"  # the same text as addon/blender/snapshot.py's MARKER


class SceneReadError(AwsBatchRenderError):
    """Blender could not be started, or could not read the scene from the file."""

    exit_code = 42


def blender_command(blend: Path, scene: str = "", extra_args: tuple[str, ...] = (), blender_bin: str = "") -> list[str]:
    """The argv that prints ``blend``'s snapshot: a Blender binary (``blender_bin``, else
    ``BLENDER_BIN``) or a Python with bpy."""
    extra = [*(["--scene", scene] if scene else []), *extra_args]
    binary = blender_bin or os.environ.get("BLENDER_BIN", "")
    if binary:
        return [
            binary, "-b", "--factory-startup", "--python-exit-code", "3",
            "--python", str(SNAPSHOT_SCRIPT), "--", str(blend), *extra,
        ]  # fmt: skip
    python = os.environ.get("BLENDER_PYTHON", "")
    if not python:
        if importlib.util.find_spec("bpy") is None:
            raise SceneReadError(
                "No Blender found to read the scene: set BLENDER_BIN to a Blender executable "
                "(4.2 or newer) or BLENDER_PYTHON to a Python that has the bpy module."
            )
        python = sys.executable
    return [python, str(SNAPSHOT_SCRIPT), str(blend), *extra]


def mixdown_audio(
    blend: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    frame_start: int,
    frame_end: int,
    scene: str = "",
    blender_bin: str = "",
    timeout: float = 600,
) -> Path:
    """Mix ``blend``'s scene sound over ``frame_start..frame_end`` down to the WAV ``dest``,
    in a child Blender (which also reads the scene again, a small price for one code path)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    read_scene(
        blend, scene, timeout,
        extra_args=("--mixdown", str(dest), f"--frame-start={frame_start}", f"--frame-end={frame_end}"),
        blender_bin=blender_bin,
    )  # fmt: skip
    if not dest.is_file() or dest.stat().st_size == 0:
        raise SceneReadError(f"Blender did not write the sound mixdown of {Path(blend).name}.")
    return dest


def read_scene(
    blend: str | os.PathLike[str],
    scene: str = "",
    timeout: float = 300,
    extra_args: tuple[str, ...] = (),
    blender_bin: str = "",
) -> SceneSnapshot:
    """Open ``blend`` in a child Blender and return its scene settings."""
    path = Path(blend).resolve()
    if not path.is_file():
        raise SceneReadError(f"{path} does not exist or is not a file: check the .blend path.")
    argv = blender_command(path, scene, extra_args, blender_bin)
    log.debug("reading scene settings: %s", argv)
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, errors="replace", stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise SceneReadError(
            f"Cannot start {argv[0]}: check BLENDER_BIN / BLENDER_PYTHON."
        ) from None
    except subprocess.TimeoutExpired:
        raise SceneReadError(
            f"Blender took more than {timeout:.0f} s to open {path.name}; is the file very large "
            "or is Blender stuck? Try opening it in Blender."
        ) from None
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            return SceneSnapshot.from_dict(json.loads(line[len(MARKER) :]))
    log.debug("Blender's output reading %s:\n%s%s", path, proc.stdout, proc.stderr)
    raise SceneReadError(cannot_read_message(path.name, proc.stderr or proc.stdout, proc.returncode))
