"""Read a scene into a :class:`SceneSnapshot`: the one place that knows where in bpy
the render settings live.

The add-on calls :func:`snapshot_scene` in-process on the open scene; the CLI runs this
file as a script in a child Blender (see ``addon/core/submit/scene_reader.py``), which opens a
.blend and prints the snapshot as JSON on one marked stdout line. Both paths go through
the same function, so the same scene gives the same job spec from either front end.

Runs on Blender's main thread only (it reads bpy).
"""

from __future__ import annotations

import glob
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import bpy

try:
    from ..core.submit.scene import SceneSnapshot
    from .preflight_facts import gather_facts
except ImportError:  # run as a script in a child Blender: no package around us
    import importlib.util

    def _load(name: str, *parts: str) -> Any:
        here = os.path.dirname(os.path.abspath(__file__))
        spec = importlib.util.spec_from_file_location(name, os.path.join(here, *parts))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses looks the module up by name
        spec.loader.exec_module(module)
        return module

    SceneSnapshot = _load("_abr_scene", "..", "core", "submit", "scene.py").SceneSnapshot  # type: ignore[misc]
    gather_facts = _load("_abr_preflight_facts", "preflight_facts.py").gather_facts

#: the stdout line that carries the snapshot when run as a script
MARKER = "ABR_SNAPSHOT_JSON:"


def snapshot_scene(scene: Any, blend_path: str = "", is_dirty: bool = False) -> SceneSnapshot:
    """Everything downstream needs from ``scene`` (a ``bpy.types.Scene``), as plain data."""
    render = scene.render
    cycles = getattr(scene, "cycles", None)
    device = str(getattr(cycles, "device", "CPU")) if render.engine == "CYCLES" else "CPU"
    ffmpeg = render.ffmpeg
    return SceneSnapshot(
        blender_version=".".join(str(v) for v in bpy.app.version),
        scene=scene.name,
        frame_start=scene.frame_start,
        frame_end=scene.frame_end,
        frame_step=scene.frame_step,
        fps=render.fps,
        fps_base=round(float(render.fps_base), 6),  # a float32 in Blender: 1.001 reads 1.00100004
        resolution_x=render.resolution_x,
        resolution_y=render.resolution_y,
        resolution_percentage=render.resolution_percentage,
        engine=render.engine,
        device=device if device in ("CPU", "GPU") else "CPU",
        file_format=render.image_settings.file_format,
        is_movie=bool(render.is_movie_format),
        ffmpeg_codec=str(ffmpeg.codec),
        ffmpeg_format=str(ffmpeg.format),
        ffmpeg_crf=str(ffmpeg.constant_rate_factor),
        output_path=_output_path(render.filepath),
        has_camera=scene.camera is not None or any(m.camera for m in scene.timeline_markers),
        camera_markers=sum(1 for m in scene.timeline_markers if m.camera is not None),
        has_audio=any(s.type == "SOUND" and not s.mute for s in _strips(scene)),
        blend_path=blend_path,
        is_dirty=is_dirty,
        missing_files=sorted(set(_missing_files())),
        facts=gather_facts(scene),
    )


def _output_path(filepath: str) -> str:
    if filepath.startswith("//") and not bpy.data.filepath:
        return ""  # relative to a file that was never saved: there is no folder yet
    return bpy.path.abspath(filepath) if filepath else ""


def _strips(scene: Any) -> Iterator[Any]:
    editor = scene.sequence_editor
    if editor is None:
        return iter(())
    # 5.0 removed sequences_all; 4.2-4.5 have both names
    strips = getattr(editor, "strips_all", None)
    if strips is None:
        strips = editor.sequences_all
    return iter(strips)


def _exists(path: str) -> bool:
    if "<UDIM>" in path or "<UVTILE>" in path:
        pattern = path.replace("<UDIM>", "[0-9]" * 4).replace("<UVTILE>", "u*_v*")
        return bool(glob.glob(glob.escape(os.path.dirname(pattern)) + "/" + os.path.basename(pattern)))
    return os.path.exists(path)


def _missing_files() -> Iterator[str]:
    """Absolute paths of referenced files that do not exist (packed data never counts)."""

    def check(idblock: Any, filepath: str, base: Any = None) -> Iterator[str]:
        if not filepath or getattr(idblock, "packed_file", None) is not None:
            return
        # paths in linked data are relative to the library file that holds them
        path = os.path.normpath(bpy.path.abspath(filepath, library=base or idblock.library))
        if not _exists(path):
            yield path

    for image in bpy.data.images:
        if image.source in ("FILE", "SEQUENCE", "MOVIE", "TILED"):
            yield from check(image, image.filepath)
    for sound in bpy.data.sounds:
        yield from check(sound, sound.filepath)
    for library in bpy.data.libraries:
        # Blender keeps every library's path relative to the open file, indirect ones too
        # (only the parent library's own record is relative to the parent): resolving it
        # against the parent named a library two folders up as missing
        yield from check(library, library.filepath)
    for clip in bpy.data.movieclips:
        yield from check(clip, clip.filepath)
    for font in bpy.data.fonts:
        if font.filepath != "<builtin>":
            yield from check(font, font.filepath)
    for cache in bpy.data.cache_files:
        yield from check(cache, cache.filepath)
    for volume in getattr(bpy.data, "volumes", ()):
        yield from check(volume, volume.filepath)


def main(argv: list[str] | None = None) -> int:
    """``snapshot.py FILE.blend [--scene NAME]``: open the file, print the snapshot line."""
    import argparse

    if argv is None:
        argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    parser = argparse.ArgumentParser(prog="snapshot.py")
    parser.add_argument("blend")
    parser.add_argument("--scene", default="")
    parser.add_argument("--mixdown", default="", metavar="WAV", help="also mix the scene's sound down to WAV")
    parser.add_argument("--frame-start", type=int, help="the mixdown's first frame (default: the scene's)")
    parser.add_argument("--frame-end", type=int, help="the mixdown's last frame (default: the scene's)")
    args = parser.parse_args(argv)
    path = os.path.abspath(args.blend)
    bpy.ops.wm.open_mainfile(filepath=path, load_ui=False)
    scene = bpy.data.scenes.get(args.scene) if args.scene else bpy.context.scene
    if scene is None:
        names = ", ".join(s.name for s in bpy.data.scenes)
        sys.stderr.write(f"{path} has no scene named {args.scene!r} (it has: {names})\n")
        return 2
    snapshot = snapshot_scene(scene, blend_path=bpy.data.filepath, is_dirty=False)
    if args.mixdown:
        first = scene.frame_start if args.frame_start is None else args.frame_start
        last = scene.frame_end if args.frame_end is None else args.frame_end
        mixdown(scene, args.mixdown, first, last)
    sys.stdout.write(MARKER + json.dumps(snapshot.to_dict(), sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0


def mixdown(scene: Any, path: str, frame_start: int, frame_end: int) -> None:
    """Mix the scene's sound (sequencer strips, speakers) over the frames to a 16-bit WAV.

    Runs in the child Blender that opened a copy of the file, so changing the frame range
    touches nothing of the user's. A Blender built without audio (the bpy 4.2 wheel has no
    Audaspace) cannot mix: it writes the sound strips to ``<path>.strips.json`` instead, for
    ffmpeg to mix (addon/core/submit/soundtrack_ffmpeg.py)."""
    if not getattr(bpy.app.build_options, "audaspace", True):
        with open(path + ".strips.json", "w", encoding="utf-8") as f:
            json.dump(sound_strips(scene, frame_start, frame_end), f)
        return
    scene.frame_start, scene.frame_end = frame_start, frame_end
    with bpy.context.temp_override(scene=scene):
        bpy.ops.sound.mixdown(
            filepath=path, check_existing=False, container="WAV", codec="PCM", format="S16",
            mixrate=48000, channels="STEREO",
        )  # fmt: skip


def sound_strips(scene: Any, frame_start: int, frame_end: int) -> dict[str, Any]:
    """The scene's unmuted sound strips as plain data: file, timing, volume (not animated)."""
    fps = scene.render.fps / scene.render.fps_base
    strips, skipped = [], []
    for strip in _strips(scene):
        if strip.type != "SOUND" or strip.mute or strip.sound is None:
            continue
        path = bpy.path.abspath(strip.sound.filepath, library=strip.sound.library)
        if strip.sound.packed_file is not None or not os.path.isfile(path):
            skipped.append(strip.name)
            continue
        strips.append({
            "name": strip.name, "path": path, "start": strip.frame_final_start, "end": strip.frame_final_end,
            # seconds into the file at the strip's first visible frame
            "offset": (strip.frame_final_start - strip.frame_start) / fps + getattr(strip, "sound_offset", 0.0),
            "volume": strip.volume,
        })  # fmt: skip
    return {"fps": fps, "frame_start": frame_start, "frame_end": frame_end, "strips": strips, "skipped": skipped}


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without Blender's exit clean-up: bpy 4.5 can hang there after reading some
    # files (a sequencer scene with a Python driver, a fluid domain), which would stall
    # the submit that waits for this child. Everything this script writes is written.
    os._exit(code)
