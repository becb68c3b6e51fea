"""Small builders shared by tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from addon.core.jobspec import (
    InputManifest,
    JobSpec,
    OutputSpec,
    RenderSettings,
    VideoSettings,
    utc_now_iso,
)
from addon.core.storage import join_uri

SHA_A = "a" * 64
SHA_B = "b" * 64


def make_spec(root: str = "file:///tmp/abr-test/", **overrides) -> JobSpec:
    """A valid spec whose URIs live under ``root`` (a prefix ending in '/')."""
    sub = overrides.pop("submission_id", "sub-test-1")
    base = join_uri(root, f"submissions/{sub}/")
    spec = JobSpec(
        submission_id=sub,
        created_at=utc_now_iso(),
        blender_version="5.2.3",
        tool_version="0.1.0",
        inputs=InputManifest(
            uri=join_uri(root, "inputs/"),
            files={"scene.blend": SHA_A, "textures/wood.png": SHA_B},
            main_blend="scene.blend",
        ),
        slices=[[1, 2, 3], [4, 5, 6], [7, 8]],
        output=OutputSpec(
            frames_uri=base + "frames/",
            progress_uri=base + "progress/",
            video_uri=base + "video/",
            image_format="PNG",
            video=VideoSettings(fps_num=24, fps_den=1, width=64, height=36),
        ),
        render=RenderSettings(engine="CYCLES", device="CPU", threads=1, width=64, height=36),
        source_name="scene.blend",
    )
    for key, value in overrides.items():
        setattr(spec, key, value)
    return spec


def stage_submission(
    root_dir,
    blend,
    slices,
    *,
    submission_id: str = "sub-local-1",
    video: bool = True,
    threads: int = 1,
    fps: int = 24,
    size: tuple[int, int] = (64, 36),
    engine: str = "CYCLES",
):
    """Pack ``blend`` by hand into a file:// store at ``root_dir`` (content-addressed input,
    spec under submissions/<id>/), as the submission pipeline would; returns (spec, spec_uri)."""
    import hashlib
    from pathlib import Path

    from addon.core.storage import FileStore, path_to_uri

    root = path_to_uri(Path(root_dir), directory=True)
    data = Path(blend).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    store = FileStore()
    store.put_bytes(data, join_uri(root, f"inputs/{digest}"))
    base = join_uri(root, f"submissions/{submission_id}/")
    spec = JobSpec(
        submission_id=submission_id,
        created_at=utc_now_iso(),
        blender_version="5.2.3",
        tool_version="0.1.0",
        inputs=InputManifest(uri=join_uri(root, "inputs/"), files={"scene.blend": digest}, main_blend="scene.blend"),
        slices=[list(s) for s in slices],
        output=OutputSpec(
            frames_uri=base + "frames/",
            progress_uri=base + "progress/",
            video_uri=base + "video/",
            video=VideoSettings(fps_num=fps, fps_den=1, width=size[0], height=size[1], name="tiny") if video else None,
        ),
        render=RenderSettings(engine=engine, device="CPU", threads=threads, width=size[0], height=size[1]),
        source_name=Path(blend).name,
    )
    spec.validate()
    spec_uri = base + "spec.json"
    store.put_bytes(spec.to_json().encode(), spec_uri)
    return spec, spec_uri


ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bpy_script_argv(script: Path, *args: str) -> list[str]:
    """Run a bpy script in a child Blender: this Python when it is the bpy module's, or the
    running Blender binary when the suite runs inside one (pytest-blender), whose own
    Python has no bpy module."""
    import bpy

    if bpy.app.binary_path:
        return [bpy.app.binary_path, "-b", "--factory-startup", "--python", str(script), "--", *args]
    return [sys.executable, str(script), *args]


def make_scene(path: Path, *args: str, timeout: float = 120) -> Path:
    """Generate a scene with demo/make_scene.py in a child Blender."""
    proc = subprocess.run(
        bpy_script_argv(ROOT / "demo" / "make_scene.py", str(path), *args),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0 or not path.is_file():
        raise RuntimeError(f"make_scene failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return path


def moto_api(endpoint: str, path: str, payload: dict | None = None) -> None:
    """POST to the moto server's control API, e.g. ``moto_api(url, "reset")``."""
    req = urllib.request.Request(
        f"{endpoint}/moto-api/{path}", data=json.dumps(payload or {}).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()


def start_moto_server(
    log: IO[bytes] | int = subprocess.DEVNULL, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """A moto server process on a free loopback port, answering, with Batch set to run
    without Docker (every job succeeds at once); returns (process, endpoint)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "moto_patches.py"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", **(env or {})},
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto server did not start on {endpoint}") from None
            time.sleep(0.1)
    moto_api(endpoint, "config", {"batch": {"use_docker": False}})
    return proc, endpoint


def start_inproc_moto() -> tuple[Any, str]:
    """moto in this process (so a test can set its job objects' states); returns
    (server, endpoint); call ``server.stop()`` when done."""
    from moto.server import ThreadedMotoServer

    from tests.moto_patches import apply

    apply()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"
