"""Properties: per-scene render settings (saved in the .blend, no secrets) and the
window manager's runtime state (submission progress, job rows; never saved).

Only the main thread writes these; the status timer copies thread messages into them.
"""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

IMAGE_FORMATS = (
    ("PNG", "PNG", "Lossless 8/16-bit frames"),
    ("OPEN_EXR", "OpenEXR", "High dynamic range frames (the video is tone mapped)"),
    ("JPEG", "JPEG", "Small lossy frames"),
)
VIDEO_CODECS = (
    ("SCENE", "From Scene", "The scene's FFmpeg codec when it outputs a movie, otherwise H.264"),
    ("h264", "H.264", "MP4, plays everywhere"),
    ("h265", "H.265", "Smaller files, newer players"),
    ("prores", "ProRes", "For editing"),
    ("vp9", "VP9", "WebM"),
    ("av1", "AV1", "Smallest files, slow to encode"),
)
DEVICES = (
    ("SCENE", "From Scene", "The scene's Cycles device"),
    ("CPU", "CPU", "Render on CPU instances"),
    ("GPU", "GPU", "Render on GPU instances (needs a GPU queue in the stack)"),
)
BACKENDS = (
    ("DEFAULT", "Default", "The backend chosen in the add-on's preferences"),
    ("AWS", "AWS Batch", "Render on AWS Batch"),
    ("LOCAL", "This Computer", "Render here, in the background (no AWS account needed)"),
)


class AWSBATCH_PG_scene(bpy.types.PropertyGroup):
    use_frames_override: BoolProperty(
        name="Frame List", description="Render a frame list instead of the scene's range", default=False
    )
    frames: StringProperty(
        name="Frames", description="Frames to render, e.g. 1-10,20,30-40 (the scene's step applies)", default=""
    )
    chunk_size: IntProperty(
        name="Chunk Size",
        description="Frames per job; 0 uses the default from the add-on's preferences. "
        "Bigger chunks cut start-up costs, smaller ones spread the work wider",
        default=0,
        min=0,
        max=10000,
    )
    image_format: EnumProperty(
        name="Image Format", description="The file format of the rendered frames", items=IMAGE_FORMATS, default="PNG"
    )
    video: BoolProperty(name="Video", description="Stitch the frames into a video", default=True)
    video_codec: EnumProperty(name="Codec", items=VIDEO_CODECS, default="SCENE")
    video_quality: IntProperty(
        name="Quality", description="Constant rate factor: lower is better (0-51)", default=20, min=0, max=51
    )
    device: EnumProperty(name="Device", items=DEVICES, default="SCENE")
    backend: EnumProperty(name="Render On", items=BACKENDS, default="DEFAULT")
    allow_missing: BoolProperty(
        name="Allow Missing",
        description="Allow missing files: submit even when referenced files (textures, caches) are missing",
        default=False,
    )
    # a still split by sample ranges (split_panel.py): shown for a frame or a short frame list
    split_still: BoolProperty(
        name="Split Still",
        description="Render each frame's samples on several machines at once, then merge and denoise them "
        "into one seam-free image (Cycles only; for a frame or a short frame list)",
        default=False,
    )
    split_parts: IntProperty(
        name="Machines",
        description="How many machines share each frame: each renders an equal part of the samples",
        default=4,
        min=2,
        max=256,
    )


class AWSBATCH_PG_job(bpy.types.PropertyGroup):
    """One submission of this .blend, as the panel shows it."""

    submission_id: StringProperty()
    backend: StringProperty()
    created_at: StringProperty()
    state: StringProperty(default="SUBMITTED")
    frames_done: IntProperty()
    frames_total: IntProperty()
    fraction: FloatProperty(min=0.0, max=1.0, subtype="FACTOR")
    counts: StringProperty()  # "RUNNING 2 · SUCCEEDED 3"
    failed_slices: StringProperty()  # "3, 7"
    first_failed_slice: IntProperty(default=-1)
    elapsed: FloatProperty()
    eta: FloatProperty(default=-1.0)  # -1: unknown
    vcpu_hours: FloatProperty()
    video_uri: StringProperty()
    latest_frame: IntProperty(default=-1)
    latest_frame_uri: StringProperty()
    preview_frame: IntProperty(default=-1)
    preview_icon: IntProperty(default=0)
    downloaded: StringProperty(subtype="FILE_PATH")
    download_folder: StringProperty(subtype="DIR_PATH")
    message: StringProperty()
    error: StringProperty()
    busy: StringProperty()  # the action running for this row ("cancel", "retry", ...)
    finished: BoolProperty()


class AWSBATCH_PG_runtime(bpy.types.PropertyGroup):
    submitting: BoolProperty()
    submit_phase: StringProperty()
    submit_fraction: FloatProperty(min=0.0, max=1.0, subtype="FACTOR")
    submit_message: StringProperty()
    submit_error: StringProperty()
    check_findings: StringProperty()  # the last check's findings, JSON (ops_check.py)
    last_report: StringProperty()
    jobs: CollectionProperty(type=AWSBATCH_PG_job)
    jobs_for: StringProperty()  # the .blend path the rows belong to
    polling: BoolProperty()
    poll_interval: FloatProperty()


CLASSES = (AWSBATCH_PG_scene, AWSBATCH_PG_job, AWSBATCH_PG_runtime)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.awsbatch = PointerProperty(type=AWSBATCH_PG_scene)
    bpy.types.WindowManager.awsbatch = PointerProperty(type=AWSBATCH_PG_runtime)


def unregister() -> None:
    del bpy.types.WindowManager.awsbatch
    del bpy.types.Scene.awsbatch
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
