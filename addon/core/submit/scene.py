"""What the add-on and the CLI read from a scene with bpy, as plain data.

``addon/blender/snapshot.py`` fills a :class:`SceneSnapshot` inside Blender (the add-on
in-process, the CLI in a child Blender). Everything downstream (spec building, checks)
works from this snapshot, so the same scene gives the same job spec either way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any


@dataclass
class SceneSnapshot:
    blender_version: str  # "5.2.3": the version that saved the copy we upload
    scene: str
    frame_start: int
    frame_end: int
    frame_step: int
    fps: int
    fps_base: float
    resolution_x: int
    resolution_y: int
    resolution_percentage: int
    engine: str  # scene.render.engine
    device: str = "CPU"  # Cycles device: CPU or GPU
    file_format: str = "PNG"  # scene.render.image_settings.file_format
    is_movie: bool = False  # FFMPEG output: rendered as frames plus a stitched video
    ffmpeg_codec: str = ""  # scene.render.ffmpeg.codec, e.g. H264
    ffmpeg_format: str = ""  # scene.render.ffmpeg.format, e.g. MPEG4
    ffmpeg_crf: str = ""  # scene.render.ffmpeg.constant_rate_factor, e.g. MEDIUM
    output_path: str = ""  # scene.render.filepath made absolute ("" if relative to an unsaved file)
    has_camera: bool = True
    camera_markers: int = 0  # timeline markers bound to cameras
    has_audio: bool = False  # sound strips in the sequencer
    blend_path: str = ""  # the user's file, "" when never saved
    is_dirty: bool = False
    missing_files: list[str] = field(default_factory=list)  # referenced files that do not exist
    # what the preflight checks read (addon/blender/preflight_facts.py): sequencer, simulations, ...
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def fps_fraction(self) -> Fraction:
        """Exact frame rate: 24/1, 30000/1001 for 29.97."""
        # fps_base is stored as a float32: 1.001 reads back as 1.00100004673.
        return Fraction(self.fps) / Fraction(self.fps_base).limit_denominator(1000)

    @property
    def width(self) -> int:
        return self.resolution_x * self.resolution_percentage // 100

    @property
    def height(self) -> int:
        return self.resolution_y * self.resolution_percentage // 100

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SceneSnapshot:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
