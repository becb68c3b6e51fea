#!/usr/bin/env python3
"""Build the installable extension: ``dist/aws_batch_render-<version>.zip``.

    python build_addon.py                  # fetch wheels, build, normalise, validate
    python build_addon.py --check          # only compare manifest, pins and versions
    python build_addon.py --blender BIN    # build/validate with `BIN --command extension ...`
    python build_addon.py --offline        # use only wheels already in build/wheels

Steps:

1. The pinned runtime wheels (``requirements/runtime.txt``) are fetched with
   ``pip download --only-binary :all: --no-deps`` into ``build/wheels`` (kept as a cache).
   They must be pure ``py3-none-any`` wheels: one zip then serves every platform.
   ``requests`` is pinned for the worker and the CLI but is *not* bundled: Blender ships it
   (with idna, urllib3's peers certifi and charset-normalizer) in its own Python, and a
   second copy in the extension's site-packages would shadow Blender's. ``--check`` knows
   this (:data:`BUNDLED_BY_BLENDER`).
2. ``addon/`` (without caches), ``blender_manifest.toml`` and ``wheels/`` are staged
   into a private folder under ``build/`` and built with Blender's own extension tool: ``blender_ext.py``
   from the bpy wheel (no Blender binary needed), or ``blender --command extension build``.
   The CLI package (``addon/cli``) stays inside: it imports nothing at enable time. The
   worker (``worker/``) goes in as ``worker/`` inside the package: the local backend runs
   it in child processes (see ``core/backends/local/processes.import_root``); Blender never imports it.
3. Blender's tool writes members in directory-scan order with file modification times, so
   two builds differ. The zip is rewritten with members sorted by name, a fixed timestamp
   and fixed permissions; the same sources and wheels give byte-identical zips.
4. The final zip is validated again with the extension tool, and its member list is
   checked against the manifest's wheels.

Exit status: 0 on success, 1 when a check fails (with a message saying what to fix).
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MANIFEST = ROOT / "blender_manifest.toml"
PINS = ROOT / "requirements" / "runtime.txt"
ADDON_DIR = ROOT / "addon"
#: Bundled inside the package as ``worker/``: the local backend ("This Computer") runs it
#: in child processes (core/backends/local/processes.import_root exposes it as a top-level package).
WORKER_DIR = ROOT / "worker"
#: Pinned in requirements/runtime.txt but provided by Blender's own Python, so not bundled.
BUNDLED_BY_BLENDER = frozenset({"requests", "certifi", "charset_normalizer", "idna"})  # normalised names
#: Every member of the built zip gets this time (the earliest a zip can store).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_EXCLUDE_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
_EXCLUDE_SUFFIXES = (".pyc", ".pyo", ".blend1", ".orig", ".rej", ".swp")


class BuildError(Exception):
    """A build step or check failed; the message says what to do."""


@dataclass(frozen=True)
class Pin:
    name: str  # normalised distribution name (PEP 503, '-' -> '_')
    version: str
    line: str


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def read_pins(path: Path = PINS) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;]+)$", line)
        if not m:
            raise BuildError(f"{path}: {raw!r} is not an exact pin (name==version)")
        pins[normalise(m.group(1))] = Pin(normalise(m.group(1)), m.group(3), line)
    return pins


def read_manifest(path: Path = MANIFEST) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BuildError(f"cannot read {path}: {exc}") from None


def wheel_name_version(filename: str) -> tuple[str, str]:
    """``./wheels/python_dateutil-2.9.0.post0-py2.py3-none-any.whl -> ('python_dateutil', '2.9.0.post0')``."""
    base = os.path.basename(filename)
    parts = base[:-4].split("-") if base.endswith(".whl") else []
    if len(parts) not in (5, 6):
        raise BuildError(f"{filename!r} is not a wheel file name (name-version-python-abi-platform.whl)")
    return normalise(parts[0]), parts[1]


def addon_version() -> str:
    text = (ADDON_DIR / "core" / "__init__.py").read_text(encoding="utf-8")
    m = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    if not m:
        raise BuildError("addon/core/__init__.py has no __version__ line")
    return m.group(1)


def check(manifest: dict | None = None, pins: dict[str, Pin] | None = None) -> list[str]:
    """Every disagreement between the manifest, the pins and the versions (empty: all good)."""
    manifest = read_manifest() if manifest is None else manifest
    pins = read_pins() if pins is None else pins
    problems: list[str] = []
    version = addon_version()
    if manifest.get("version") != version:
        problems.append(
            f"blender_manifest.toml version {manifest.get('version')!r} != addon/core/__version__ {version!r}"
        )
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    if pyproject.get("project", {}).get("version") != version:
        problems.append(f"pyproject.toml version != addon/core/__version__ {version!r}")
    if manifest.get("id") != "aws_batch_render":
        problems.append(f"blender_manifest.toml id {manifest.get('id')!r} must be 'aws_batch_render'")

    listed: dict[str, str] = {}
    for entry in manifest.get("wheels", []):
        if not entry.startswith("./wheels/"):
            problems.append(f"manifest wheel {entry!r} must live under ./wheels/")
        try:
            name, ver = wheel_name_version(entry)
        except BuildError as exc:
            problems.append(str(exc))
            continue
        if not entry.endswith("-none-any.whl"):
            problems.append(f"manifest wheel {entry!r} is not a pure-Python (none-any) wheel")
        if name in listed:
            problems.append(f"manifest lists {name} twice")
        listed[name] = ver
    for name, pin in sorted(pins.items()):
        if name in BUNDLED_BY_BLENDER:
            if name in listed:
                problems.append(
                    f"manifest bundles {name}, which Blender already ships: remove it from wheels "
                    "(a second copy would shadow Blender's)"
                )
            continue
        if name not in listed:
            problems.append(
                f"{pin.line} is pinned in requirements/runtime.txt but not among the manifest's wheels"
            )
        elif listed[name] != pin.version:
            problems.append(
                f"manifest bundles {name} {listed[name]} but requirements/runtime.txt pins {pin.version}"
            )
    for name in sorted(set(listed) - set(pins)):
        problems.append(
            f"manifest bundles {name} {listed[name]}, which requirements/runtime.txt does not pin"
        )
    return problems


# --- fetching wheels -------------------------------------------------------------------


def fetch_wheels(manifest: dict, dest: Path, offline: bool = False) -> list[Path]:
    """The manifest's wheels in ``dest``, downloaded with pip when missing."""
    dest.mkdir(parents=True, exist_ok=True)
    wanted = [os.path.basename(w) for w in manifest.get("wheels", [])]
    missing = [w for w in wanted if not (dest / w).is_file()]
    if missing and offline:
        raise BuildError(f"--offline, but {', '.join(missing)} are not in {dest}")
    if missing:
        reqs = ["{}=={}".format(*wheel_name_version(w)) for w in missing]
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--only-binary", ":all:", "--no-deps", "--dest", str(dest), *reqs]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"pip download failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    still = [w for w in wanted if not (dest / w).is_file()]
    if still:
        raise BuildError(
            f"pip did not produce {', '.join(still)} (a different wheel tag?); "
            "fix the file names in blender_manifest.toml to match "
            f"{sorted(p.name for p in dest.glob('*.whl'))}"
        )
    return [dest / w for w in wanted]


# --- staging and building ------------------------------------------------------------------


def _copy_tree(src_dir: Path, dest_dir: Path) -> None:
    for src in sorted(src_dir.rglob("*")):
        rel = src.relative_to(src_dir)
        if any(part in _EXCLUDE_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if src.is_dir() or src.name.endswith(_EXCLUDE_SUFFIXES) or src.is_symlink():
            continue
        dest = dest_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)


def stage(stage_dir: Path, wheels: list[Path]) -> None:
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    _copy_tree(ADDON_DIR, stage_dir)
    _copy_tree(WORKER_DIR, stage_dir / "worker")
    shutil.copyfile(MANIFEST, stage_dir / MANIFEST.name)
    (stage_dir / "wheels").mkdir()
    for whl in wheels:
        shutil.copyfile(whl, stage_dir / "wheels" / whl.name)


def find_blender_ext() -> Path:
    """``blender_ext.py`` inside the installed bpy package (without importing bpy)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError(
            "bpy is not installed in this Python, so Blender's extension tool cannot be found: "
            "run with the project's .venv/bin/python or pass --blender /path/to/blender"
        )
    for loc in spec.submodule_search_locations:
        pattern = os.path.join(loc, "*", "scripts", "addons_core", "bl_pkg", "cli", "blender_ext.py")
        hits = sorted(glob.glob(pattern))
        if hits:
            return Path(hits[-1])
    raise BuildError("bpy is installed but has no scripts/addons_core/bl_pkg/cli/blender_ext.py")


def ext_tool(blender: str | None) -> list[str]:
    if blender:
        return [blender, "--factory-startup", "--command", "extension"]
    return [sys.executable, str(find_blender_ext())]


def run_tool(tool: list[str], *args: str) -> str:
    proc = subprocess.run([*tool, *args], capture_output=True, text=True)
    out = (proc.stdout + proc.stderr).strip()
    # The tool reports some failures on stdout with exit status 0: look for its marker too.
    if proc.returncode != 0 or "FATAL_ERROR" in out:
        raise BuildError(f"Blender's extension tool failed ({' '.join(args[:1])}):\n{out[-3000:]}")
    return out


def normalise_zip(src: Path, dest: Path) -> None:
    """Rewrite ``src`` as ``dest``: members sorted, fixed times and modes, same compression."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w") as zout:
        for info in sorted(zin.infolist(), key=lambda i: i.filename):
            if info.is_dir():
                continue
            out = zipfile.ZipInfo(info.filename, date_time=ZIP_EPOCH)
            out.external_attr = 0o644 << 16
            out.create_system = 3  # unix, whatever the build host
            out.compress_type = info.compress_type
            kwargs = {"compresslevel": 9} if info.compress_type == zipfile.ZIP_DEFLATED else {}
            zout.writestr(out, zin.read(info.filename), **kwargs)
    os.replace(tmp, dest)


def verify_zip(path: Path, manifest: dict) -> None:
    with zipfile.ZipFile(path) as zf:
        bad = zf.testzip()
        if bad:
            raise BuildError(f"{path}: member {bad} is corrupt")
        names = set(zf.namelist())
    required = {"blender_manifest.toml", "__init__.py", "blender/__init__.py", "core/__init__.py",
                "worker/__main__.py"}
    required |= {w.removeprefix("./") for w in manifest.get("wheels", [])}
    if required - names:
        raise BuildError(f"{path} lacks {sorted(required - names)}")
    junk = sorted(n for n in names if "__pycache__" in n or n.endswith(".pyc"))
    if junk:
        raise BuildError(f"{path} contains caches: {junk[:5]}")


def build(out_dir: Path, work_dir: Path, blender: str | None = None, offline: bool = False) -> Path:
    manifest = read_manifest()
    problems = check(manifest)
    if problems:
        raise BuildError("manifest and pins disagree:\n  " + "\n  ".join(problems))
    wheels = fetch_wheels(manifest, work_dir / "wheels", offline=offline)
    tool = ext_tool(blender)
    name = f"{manifest['id']}-{manifest['version']}.zip"
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / name
    # a private staging folder per build: concurrent builds never see each other's files
    with tempfile.TemporaryDirectory(prefix="stage-", dir=work_dir) as tmp:
        stage_dir = Path(tmp) / "extension"
        stage(stage_dir, wheels)
        raw_dir = Path(tmp) / "raw"
        raw_dir.mkdir()
        run_tool(tool, "build", "--source-dir", str(stage_dir), "--output-dir", str(raw_dir))
        raw = raw_dir / name
        if not raw.is_file():
            raise BuildError(f"the extension tool did not write {raw}")
        normalise_zip(raw, final)
    run_tool(tool, "validate", str(final))
    verify_zip(final, manifest)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check manifest, pins and versions")
    parser.add_argument("--blender", metavar="BIN", help="use this Blender binary's extension command")
    parser.add_argument("--offline", action="store_true", help="do not download; use build/wheels")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default dist/)")
    parser.add_argument("--work", type=Path, default=ROOT / "build", help="work folder (default build/)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = check()
            for p in problems:
                print(f"check: {p}", file=sys.stderr)
            if not problems:
                print("check: blender_manifest.toml, requirements/runtime.txt and versions agree")
            return 1 if problems else 0
        path = build(args.out, args.work, blender=args.blender, offline=args.offline)
    except BuildError as exc:
        print(f"build_addon: {exc}", file=sys.stderr)
        return 1
    print(f"built {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
