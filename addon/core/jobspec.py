"""The job spec: the one contract between the add-on (or CLI) and the worker.

It is JSON, written next to the packed inputs under the submission's own prefix, and
carries everything the worker needs: where the inputs are (content-addressed), the
explicit frame slices, the output locations and formats, and the render settings. The
worker reads it from ``JOB_SPEC_URI`` and refuses a spec it does not understand.

Validation is strict: a missing, mistyped or unknown field, an unknown schema version,
an empty or overlapping slice each raise :class:`JobSpecError` naming the field.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from . import still_split as _split
from .errors import JobSpecError, StorageURIError
from .jobspec_checks import check_frame_numbers, check_manifest_paths
from .still_split import StillSplit
from .storage import join_uri, parse_uri

SCHEMA_VERSION = 2  # 2: still_split (sample-range parts); version 1 specs are still read
MIN_SCHEMA_VERSION = 1

IMAGE_FORMATS = {"PNG": "png", "OPEN_EXR": "exr", "JPEG": "jpg"}
DEVICES = ("CPU", "GPU")
ENGINES = ("CYCLES", "BLENDER_EEVEE", "BLENDER_EEVEE_NEXT", "BLENDER_WORKBENCH")
VIDEO_CODECS = ("h264", "h265", "prores", "vp9", "av1")
CONTAINERS = ("mp4", "mov", "mkv", "webm")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SUBMISSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


@dataclass
class AudioTrack:
    """A mixed-down sound file shipped with the inputs, muxed in by stitch."""

    path: str  # relative path in the input manifest
    codec: str = "aac"
    bitrate_kbps: int = 192


@dataclass
class VideoSettings:
    """How stitch turns the frames into a video."""

    fps_num: int
    fps_den: int
    width: int
    height: int
    codec: str = "h264"
    container: str = "mp4"
    quality: int = 20  # CRF-like: lower is better, 0..51
    name: str = "video"  # file name without extension
    audio: AudioTrack | None = None
    allow_partial: bool = False

    @property
    def fps(self) -> float:
        return self.fps_num / self.fps_den


@dataclass
class OutputSpec:
    """Where results go. URIs are prefixes ending in '/'."""

    frames_uri: str
    progress_uri: str
    video_uri: str
    image_format: str = "PNG"
    video: VideoSettings | None = None

    @property
    def extension(self) -> str:
        return IMAGE_FORMATS[self.image_format]


@dataclass
class RenderSettings:
    engine: str
    device: str = "CPU"
    threads: int = 0  # 0: size from the container's CPU quota
    scene: str = ""  # "" renders the file's active scene
    width: int = 0  # final pixel size (after resolution percentage), for stitch
    height: int = 0
    # Cycles Persistent Data for a chunk's frames (chosen when the scout's memory allows);
    # written only when on, so specs without it stay readable by workers that predate it
    persistent_data: bool = False


@dataclass
class InputManifest:
    """Packed inputs: relative path in the pack -> sha256 of its bytes."""

    uri: str  # content-addressed prefix: the object for a file is uri + sha256
    files: dict[str, str]
    main_blend: str


@dataclass
class JobSpec:
    submission_id: str
    created_at: str
    blender_version: str
    tool_version: str
    inputs: InputManifest
    slices: list[list[int]]
    output: OutputSpec
    render: RenderSettings
    source_name: str = ""  # the user's .blend file name, for tags and downloads
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, str] = field(default_factory=dict)  # free-form notes, ignored by workers
    still_split: StillSplit | None = None  # one still split by sample ranges (still_split.py)

    # --- derived -------------------------------------------------------------------
    @property
    def frames(self) -> list[int]:
        return list(dict.fromkeys(f for s in self.slices for f in s))  # a split repeats a frame per part

    def frame_name(self, frame: int) -> str:
        return frame_file_name(frame, self.output.image_format)

    def frame_uri(self, frame: int) -> str:
        return join_uri(self.output.frames_uri, self.frame_name(frame))

    def input_uri(self, relpath: str) -> str:
        return join_uri(self.inputs.uri, self.inputs.files[relpath])

    def original_slice(self, array_index: int) -> int:
        """The submission-wide number of this spec's slice ``array_index``: a retry spec
        carries only the failed slices (``extra["retry_of_slices"]``), so progress records,
        named by this number, never overwrite another slice's."""
        retried = self.extra.get("retry_of_slices", "")
        if not retried:
            return array_index
        try:
            return [int(i) for i in retried.split(",")][array_index]
        except (ValueError, IndexError):
            raise JobSpecError(
                f"spec.extra['retry_of_slices'] {retried!r} does not name slice {array_index} of this retry."
            ) from None

    def progress_record_uri(self, index: int) -> str:
        return join_uri(self.output.progress_uri, f"slice-{index:05d}.json")

    def video_file_uri(self) -> str:
        video = self.output.video or _default_video()
        return join_uri(self.output.video_uri, f"{video.name}.{video.container}")

    def poster_uri(self) -> str:
        video = self.output.video or _default_video()
        return join_uri(self.output.video_uri, f"{video.name}-poster.jpg")

    # --- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if not self.render.persistent_data:
            del data["render"]["persistent_data"]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> JobSpec:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise JobSpecError(
                f"The job spec is not valid JSON ({exc}); it may be truncated or not a spec file."
            ) from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> JobSpec:
        if not isinstance(data, dict):
            raise JobSpecError("The job spec must be a JSON object.")
        version = data.get("schema_version")
        if not (isinstance(version, int) and MIN_SCHEMA_VERSION <= version <= SCHEMA_VERSION):
            if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
                raise JobSpecError(
                    f"Job spec schema version {version} is newer than this worker understands "
                    f"({SCHEMA_VERSION}); update the worker image (publish-image) to match the add-on."
                )
            raise JobSpecError(
                f"Job spec schema version {version!r} is not supported (this worker reads "
                f"versions {MIN_SCHEMA_VERSION}-{SCHEMA_VERSION}); resubmit with a current add-on."
            )
        spec = _build(cls, data, "spec")
        spec.validate()
        return spec

    # --- semantic checks -----------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`JobSpecError` for any defect a worker could trip over."""
        if not _SUBMISSION_ID.match(self.submission_id):
            raise JobSpecError(
                f"spec.submission_id {self.submission_id!r} must be 1-128 letters, digits, '-' or '_'."
            )
        try:
            datetime.fromisoformat(self.created_at)
        except ValueError:
            raise JobSpecError(
                f"spec.created_at {self.created_at!r} is not an ISO 8601 time."
            ) from None
        self._validate_inputs()
        check_manifest_paths(self.inputs.files)
        self._validate_slices()
        check_frame_numbers(self.slices)
        retried = self.extra.get("retry_of_slices", "")
        if retried and (
            not re.fullmatch(r"\d+(,\d+)*", retried) or len(retried.split(",")) != len(self.slices)
        ):
            raise JobSpecError(
                f"spec.extra['retry_of_slices'] {retried!r} must list one slice number per slice of "
                f"this spec ({len(self.slices)})."
            )
        self._validate_output()
        self._validate_render()
        _split.validate(self)

    def _validate_inputs(self) -> None:
        inp = self.inputs
        _check_uri("spec.inputs.uri", inp.uri)
        if not inp.files:
            raise JobSpecError("spec.inputs.files is empty: the spec lists no packed files.")
        for rel, digest in inp.files.items():
            if not rel or rel.startswith("/") or "\\" in rel or ".." in rel.split("/"):
                raise JobSpecError(
                    f"spec.inputs.files has path {rel!r}: paths must be relative, with '/' "
                    "separators and no '..'."
                )
            if not _SHA256.match(digest):
                raise JobSpecError(
                    f"spec.inputs.files[{rel!r}] is {digest!r}, not a lowercase sha256 hex digest."
                )
        if inp.main_blend not in inp.files:
            raise JobSpecError(
                f"spec.inputs.main_blend {inp.main_blend!r} is not among spec.inputs.files."
            )
        if not inp.main_blend.lower().endswith(".blend"):
            raise JobSpecError(f"spec.inputs.main_blend {inp.main_blend!r} is not a .blend file.")

    def _validate_slices(self) -> None:
        if not self.slices:
            raise JobSpecError("spec.slices is empty: there are no frames to render.")
        if len(self.slices) > 10_000:
            raise JobSpecError(
                f"spec.slices has {len(self.slices)} slices, more than AWS Batch's 10,000 array limit."
            )
        seen: dict[int, int] = {}
        for i, frames in enumerate(self.slices):
            if not frames:
                raise JobSpecError(f"spec.slices[{i}] is empty: every slice needs at least one frame.")
            if any(b <= a for a, b in pairwise(frames)):
                raise JobSpecError(f"spec.slices[{i}] is not in ascending order without repeats.")
            for f in frames:
                if f in seen and self.still_split is None:  # a split's parts repeat their frame
                    raise JobSpecError(
                        f"Frame {f} is in both spec.slices[{seen[f]}] and spec.slices[{i}]: "
                        "slices must not overlap."
                    )
                seen[f] = i

    def _validate_output(self) -> None:
        out = self.output
        for name in ("frames_uri", "progress_uri", "video_uri"):
            _check_uri(f"spec.output.{name}", getattr(out, name))
        if out.image_format not in IMAGE_FORMATS:
            raise JobSpecError(
                f"spec.output.image_format {out.image_format!r} is not one of {sorted(IMAGE_FORMATS)}."
            )
        video = out.video
        if video is None:
            return
        if video.fps_num <= 0 or video.fps_den <= 0:
            raise JobSpecError(
                f"spec.output.video fps {video.fps_num}/{video.fps_den} must be positive."
            )
        if video.width <= 0 or video.height <= 0:
            raise JobSpecError(
                f"spec.output.video size {video.width}x{video.height} must be positive."
            )
        if video.codec not in VIDEO_CODECS:
            raise JobSpecError(
                f"spec.output.video.codec {video.codec!r} is not one of {list(VIDEO_CODECS)}."
            )
        if video.container not in CONTAINERS:
            raise JobSpecError(
                f"spec.output.video.container {video.container!r} is not one of {list(CONTAINERS)}."
            )
        if not 0 <= video.quality <= 51:
            raise JobSpecError(f"spec.output.video.quality {video.quality} must be 0..51 (lower is better).")
        if not re.match(r"^[^/\\]{1,200}$", video.name):
            raise JobSpecError(f"spec.output.video.name {video.name!r} must be a plain file name.")
        if video.audio is not None and video.audio.path not in self.inputs.files:
            raise JobSpecError(
                f"spec.output.video.audio.path {video.audio.path!r} is not among spec.inputs.files."
            )

    def _validate_render(self) -> None:
        r = self.render
        if r.engine not in ENGINES:
            raise JobSpecError(f"spec.render.engine {r.engine!r} is not one of {list(ENGINES)}.")
        if r.device not in DEVICES:
            raise JobSpecError(f"spec.render.device {r.device!r} is not one of {list(DEVICES)}.")
        if r.threads < 0:
            raise JobSpecError(f"spec.render.threads {r.threads} must be 0 (automatic) or more.")


def frame_file_name(frame: int, image_format: str) -> str:
    """The object name a frame is stored under, e.g. ``frame_000042.png``."""
    return f"frame_{frame:06d}.{IMAGE_FORMATS[image_format]}"


_FRAME_NAME = re.compile(r"^frame_(-?\d+)\.(png|exr|jpg)$")


def frame_from_name(name: str) -> int | None:
    """Inverse of :func:`frame_file_name` for a base name; None if it is not a frame."""
    m = _FRAME_NAME.match(name.rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


def utc_now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _default_video() -> VideoSettings:
    return VideoSettings(fps_num=24, fps_den=1, width=2, height=2)


def _check_uri(name: str, uri: str) -> None:
    try:
        parse_uri(uri)
    except StorageURIError as exc:
        raise JobSpecError(f"{name}: {exc}") from None
    if not uri.endswith("/"):
        raise JobSpecError(f"{name} {uri!r} must be a prefix ending in '/'.")


# --- strict typed construction from JSON ------------------------------------------------

_TYPE_NAMES = {int: "a whole number", str: "a string", float: "a number", bool: "true or false"}


def _build(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise JobSpecError(f"{path} must be an object, got {_json_type(data)}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise JobSpecError(
            f"{path} has unknown field(s) {', '.join(unknown)}; the spec may come from a newer "
            "add-on than this worker understands."
        )
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise JobSpecError(f"{path}.{name} is missing.")
            continue
        kwargs[name] = _convert(hints[name], data[name], f"{path}.{name}")
    return cls(**kwargs)


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [a for a in args if a is not type(None)]
        if value is None and type(None) in args:
            return None
        return _convert(inner[0], value, path)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if origin is list:
        if not isinstance(value, list):
            raise JobSpecError(f"{path} must be a list, got {_json_type(value)}.")
        return [_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise JobSpecError(f"{path} must be an object, got {_json_type(value)}.")
        return {k: _convert(args[1], v, f"{path}[{k!r}]") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise JobSpecError(f"{path} must be a number, got {_json_type(value)}.")
        return float(value)
    if tp in (int, str, bool):
        if isinstance(value, bool) != (tp is bool) or not isinstance(value, tp):
            raise JobSpecError(f"{path} must be {_TYPE_NAMES[tp]}, got {_json_type(value)}.")
        return value
    raise TypeError(f"unsupported spec field type {tp!r} at {path}")  # a bug, not bad input


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}" if len(value) < 40 else "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"
