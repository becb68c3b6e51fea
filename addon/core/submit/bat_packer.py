"""blender-asset-tracer adapted to our pack layout: its Packer with the main file placed
where the user's file stands, a faster copier, a progress callback that can cancel, and
two workarounds for BAT 1.23 reading files saved by Blender 5.

BAT is imported on first use only. Runs on the packing thread; never touches bpy.
"""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

OUTSIDE_DIR = "_outside_project"
#: The copier copies files in parts of this size, checking for cancel between parts.
COPY_PART_BYTES = 4 * 1024 * 1024


def fix_bat_node_trees() -> None:
    """Work around BAT 1.23 following no node tree of a material, light or world in files
    saved by Blender 5.0+ (it looks for the scene-only ``compositing_node_group`` field on
    every ID): textures used by materials of linked libraries were silently left out.
    Idempotent; replaces BAT's module function, which its expanders look up by name."""
    from blender_asset_tracer.trace import expanders

    if getattr(expanders._expand_generic_nodetree_id, "_abr_fixed", False):
        return

    def expand_nodetree_id(block: Any) -> Any:
        for name in (b"nodetree", b"compositing_node_group"):
            if block.dna_type.has_field(name):
                tree = block.get_pointer(name, None)
                if tree is not None:
                    yield from expanders._expand_generic_nodetree(tree)

    expand_nodetree_id._abr_fixed = True  # type: ignore[attr-defined]
    expanders._expand_generic_nodetree_id = expand_nodetree_id


def fix_bat_sequencer_root_paths() -> None:
    """Work around BAT 1.23 joining a sequencer strip's folder ``//`` (the .blend's own
    folder, which Blender 5 writes for sound strips) and its file name into ``/name``: a
    sound strip's 'tone.wav' became a missing '/tone.wav' and the submit was refused.
    Idempotent; wraps BAT's scene reader in its table of block readers."""
    from blender_asset_tracer import bpathlib
    from blender_asset_tracer.trace import blocks2assets

    original = blocks2assets._funcs_for_code[b"SC"]
    if getattr(original, "_abr_fixed", False):
        return

    def scene(block: Any) -> Any:
        for usage in original(block):
            if usage.path_dir_field is not None and usage.block.get(b"dir") == b"//":
                usage.asset_path = bpathlib.BlendPath(b"//" + bytes(usage.asset_path).lstrip(b"/"))
            yield usage

    scene._abr_fixed = True  # type: ignore[attr-defined]
    blocks2assets._funcs_for_code[b"SC"] = scene


def _make_copier() -> Any:
    """BAT's file copier, polling its queues every 20 ms instead of 500 ms: BAT's own
    copier spends a second idling at the end of every pack."""
    import queue

    from blender_asset_tracer.pack import filesystem

    class Copier(filesystem.FileCopier):
        def iter_queue(self) -> Any:
            while not (self._abort.is_set() or self.has_error):
                try:
                    src, dst, action = self.queue.get(timeout=0.02)
                except queue.Empty:
                    if self.done.is_set():
                        return
                    continue
                self.progress_cb.transfer_file(src, dst)
                yield src, dst, action

        def join(self, timeout: float | None = None) -> None:
            while self.is_alive():
                self.progress_cb.flush(timeout=0.02)

        def _copy(self, srcpath: Any, dstpath: Any) -> None:
            """Copy in parts of :data:`COPY_PART_BYTES`, reporting each one (the packing
            thread replays the report and aborts on cancel) and stopping at the next part
            once aborted: Esc stops the pack within a part, not after a whole large file."""
            from blender_asset_tracer.pack.filesystem import AbortTransfer

            done = 0
            with open(srcpath, "rb") as src, open(dstpath, "wb") as dst:
                while part := src.read(COPY_PART_BYTES):
                    if self._abort.is_set() or self.has_error:
                        raise AbortTransfer()
                    dst.write(part)
                    done += len(part)
                    self.progress_cb.transfer_progress(self.total_queued_bytes, self.total_transferred_bytes + done)

    return Copier()


def _make_packer_class() -> type:
    """BAT's Packer with our layout rules (built lazily: BAT is imported on first use)."""
    from blender_asset_tracer import bpathlib
    from blender_asset_tracer.pack import Packer, PathAction

    class Packer_(Packer):
        def __init__(self, bfile: Path, project: Path, target: str, main_rel: Path) -> None:
            super().__init__(bfile, project, target)
            self._main_rel = main_rel
            self._main_abs = bpathlib.make_absolute(bfile)
            # packed as if it stood at project/main_rel: its own relative paths must be rewritten
            self._relocated = bpathlib.make_absolute(project / main_rel) != self._main_abs

        def _create_file_transferer(self) -> Any:
            return _make_copier()

        def dependency_paths(self) -> list[Path]:
            return [p for p in self._actions if p != self._main_abs and p not in self.missing_files]

        def strategise(self) -> None:
            # BAT's strategise() with the main file's place in the pack taken from main_rel
            from blender_asset_tracer import trace

            bfile_pp = self._target_path / self._main_rel
            self._output_path = bfile_pp
            self._progress_cb.pack_start()
            act = self._actions[self._main_abs]
            act.path_action = PathAction.KEEP_PATH
            act.new_path = bfile_pp
            self._check_aborted()
            self._new_location_paths = set()
            for usage in trace.deps(self.blendfile, self._progress_cb):
                self._check_aborted()
                if usage.is_sequence:
                    self._visit_sequence(usage.abspath, usage)
                else:
                    self._visit_asset(usage.abspath, usage)
            self._find_new_paths()
            self._group_rewrites()

        def _visit_asset(self, asset_path: pathlib.Path, usage: Any) -> None:
            super()._visit_asset(asset_path, usage)
            if asset_path not in self._actions or not self._relocated:
                return
            if bpathlib.make_absolute(usage.block.bfile.filepath) == self._main_abs:
                self._actions[asset_path].path_action = PathAction.FIND_NEW_LOCATION
                self._new_location_paths.add(asset_path)

        def _find_new_paths(self) -> None:
            # inside the project: the same relative place; outside: under _outside_project/
            for path in self._new_location_paths:
                act = self._actions[path]
                if self._path_in_project(path):
                    rel = bpathlib.make_absolute(path).relative_to(bpathlib.make_absolute(self.project))
                    act.new_path = pathlib.Path(self._target_path, rel)
                else:
                    act.new_path = pathlib.Path(self._target_path, OUTSIDE_DIR, bpathlib.strip_root(path))

    return Packer_


_packer_class: type | None = None


def make_packer(bfile: Path, project: Path, target: str, main_rel: Path) -> Any:
    global _packer_class
    if _packer_class is None:  # BAT's fixes are applied by pack_blend, our only caller, first
        _packer_class = _make_packer_class()
    return _packer_class(bfile, project, target, main_rel)


class PackCallback:
    """BAT's progress callback: aborts the packer once the cancel event is set, and
    forwards tracing and copying progress. BAT calls it on the packing thread (it queues
    calls from its copier thread and replays them there)."""

    def __init__(
        self,
        packer: Any,
        cancel: threading.Event | None,
        progress: Callable[[int, int, str], None] | None,
    ) -> None:
        self._packer = packer
        self._cancel = cancel
        self._progress = progress
        self._traced = 0

    def _check(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            self._packer.abort("cancelled")

    def trace_asset(self, filename: Path) -> None:
        self._check()
        self._traced += 1
        if self._progress:
            self._progress(self._traced, 0, f"Found {Path(filename).name}")

    def transfer_progress(self, total_bytes: int, transferred_bytes: int) -> None:
        self._check()
        if self._progress:
            self._progress(transferred_bytes, total_bytes, "Copying files into the pack")

    def __getattr__(self, name: str) -> Callable[..., None]:
        def callback(*args: Any, **kwargs: Any) -> None:
            self._check()

        return callback
