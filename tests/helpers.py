"""Small builders shared by tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

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
