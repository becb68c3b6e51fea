"""The Blender side: the only package of the add-on that imports bpy.

Modules: ``properties`` (scene settings, runtime state), ``preferences``, the operators
(``ops_submit``, ``ops_jobs``, ``ops_prefs``), ``panel``, and ``status_timer`` (the
persistent timer that applies what the background threads of ``background``/``tasks``
report). Registering imports none of boto3, botocore or blender-asset-tracer.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_MODULES = (
    "properties", "preferences", "ops_submit", "ops_check", "quote_panel", "ops_jobs", "ops_prefs", "panel",
    "status_timer",
)  # fmt: skip


def _modules() -> list[ModuleType]:
    return [importlib.import_module(f".{name}", __name__) for name in _MODULES]


def register() -> None:
    done: list[ModuleType] = []
    try:
        for module in _modules():
            module.register()
            done.append(module)
    except Exception:
        for module in reversed(done):  # leave nothing half-registered behind
            module.unregister()
        raise


def unregister() -> None:
    for module in reversed(_modules()):
        module.unregister()
