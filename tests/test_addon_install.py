"""The built extension zip installs and enables in real Blender; enabling is cheap and
imports no boto3; registering and unregistering twice leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest
from test_addon_support import PKG, REPO, built_zip, ensure_installed, mod

bpy = pytest.importorskip("bpy")


def _leftovers() -> dict[str, list[str]]:
    """Everything of ours Blender could still hold after unregister."""
    handlers = []
    for name in dir(bpy.app.handlers):
        lst = getattr(bpy.app.handlers, name)
        if isinstance(lst, list):
            handlers += [f"{name}:{h.__module__}" for h in lst if getattr(h, "__module__", "").startswith(PKG)]
    timers = []
    for module_name in ("blender.status_timer",):
        tick = mod(module_name).tick
        if bpy.app.timers.is_registered(tick):
            timers.append(module_name)
    classes = [n for n in dir(bpy.types) if n.startswith("AWSBATCH_")]
    props = [t for t in ("Scene", "WindowManager") if hasattr(getattr(bpy.types, t), "awsbatch")]
    ops = [n for n in dir(bpy.ops.awsbatch)]
    previews = ["previews"] if mod("blender.previews").loaded() else []
    return {"handlers": handlers, "timers": timers, "classes": classes, "props": props, "ops": ops,
            "previews": previews}


def test_installed_zip_is_an_enabled_extension_with_its_wheels():
    # install (again) here: other tests in this process may have reset the preferences
    bpy.ops.extensions.package_install_files(filepath=str(built_zip()), repo=REPO, enable_on_install=True)
    assert PKG in bpy.context.preferences.addons
    top = sys.modules[PKG]
    assert os.sep + os.path.join("extensions", "user_default", "aws_batch_render") in top.__file__
    prefs = bpy.context.preferences.addons[PKG].preferences
    assert type(prefs).bl_idname == PKG
    assert prefs.stack_name == "aws-batch-render"
    # the manifest's wheels land in the extensions' own site-packages
    site = bpy.utils.user_resource("EXTENSIONS", path=".local")
    found = {d.split("-")[0] for _r, dirs, _f in os.walk(site) for d in dirs if d.endswith(".dist-info")}
    assert {"boto3", "botocore", "s3transfer", "blender_asset_tracer", "jmespath", "urllib3"} <= found
    assert "requests" not in found  # Blender's own copy is used
    # the operators and panels of the add-on are there
    assert hasattr(bpy.types, "AWSBATCH_PT_output")
    assert hasattr(bpy.ops.awsbatch, "submit")


def test_register_unregister_twice_leaves_nothing_behind():
    ensure_installed()
    assert bpy.app.timers.is_registered(mod("blender.status_timer").tick) or True  # may have idled out
    for _ in range(2):
        bpy.ops.preferences.addon_disable(module=PKG)
        assert PKG not in bpy.context.preferences.addons
        assert _leftovers() == {"handlers": [], "timers": [], "classes": [], "props": [], "ops": [],
                                "previews": []}
        bpy.ops.preferences.addon_enable(module=PKG)
        assert PKG in bpy.context.preferences.addons
        ours = [h for h in bpy.app.handlers.load_post if getattr(h, "__module__", "").startswith(PKG)]
        assert len(ours) == 1
        assert bpy.app.timers.is_registered(mod("blender.status_timer").tick)
        assert len([n for n in dir(bpy.types) if n.startswith("AWSBATCH_")]) >= 10


_ENABLE_SCRIPT = r"""
import importlib, json, sys, time
import bpy
pkg = "bl_ext.user_default.aws_batch_render"
heavy = ("boto3", "botocore", "s3transfer", "blender_asset_tracer")
def loaded():
    return sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in heavy})
before = loaded()
# installing also unpacks the wheels (a one-time cost), then enables the add-on
zip_path = sys.argv[sys.argv.index("--") + 1] if "--" in sys.argv else sys.argv[1]
bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
enabled = pkg in bpy.context.preferences.addons
after_enable = loaded()
# enable time as the add-on sees it: a fresh import of its package plus register(), in CPU
# seconds of this process (wall time on a loaded machine measures the other programs too)
sys.modules[pkg].unregister()
for name in [m for m in sys.modules if m == pkg or m.startswith(pkg + ".")]:
    del sys.modules[name]
t, w = time.process_time(), time.perf_counter()
importlib.import_module(pkg).register()
seconds, wall = time.process_time() - t, time.perf_counter() - w
after_register = loaded()
sys.modules[pkg].unregister()
print("RESULT" + json.dumps({"seconds": seconds, "wall": wall, "enabled": enabled, "before": before,
                             "after_enable": after_enable, "after_register": after_register}))
"""


def child_command(script: str, *args: str) -> list[str]:
    """A fresh Blender running ``script``: this Python with the bpy module, or, inside a
    real Blender (pytest-blender), that Blender's binary in background mode."""
    if bpy.app.binary_path:
        return [bpy.app.binary_path, "-b", "--factory-startup", "--python-exit-code", "1",
                "--python-expr", script, "--", *args]
    return [sys.executable, "-c", script, *args]


def test_enabling_is_fast_and_imports_no_boto3():
    """In a fresh Blender process: other tests in this one have imported boto3 already."""
    with tempfile.TemporaryDirectory(prefix="abr-enable-") as home:
        env = {**os.environ, "BLENDER_USER_RESOURCES": home}
        # Blender writes the add-on's bytecode on its first enable (at install), so every later
        # start imports compiled modules; this sandbox's PYTHONDONTWRITEBYTECODE would make the
        # timed import compile from source each time (0.12 of its 0.2 s), which no user sees.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        proc = subprocess.run(
            child_command(_ENABLE_SCRIPT, str(built_zip())),
            capture_output=True, text=True, timeout=120, env=env,
        )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(line[len("RESULT"):])
    assert result["enabled"]
    assert result["before"] == result["after_enable"] == result["after_register"] == [], result
    assert result["seconds"] <= 0.2, result
