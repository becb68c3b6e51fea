"""scripts/check_layout.py: the repository keeps its rooms, and the check catches each kind
of breach in a small tree made here."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "check_layout.py"

README = """# x

## Layout

```
addon/                the package
  blender/            bpy
  core/               no bpy
    sub/              a room
worker/               the worker
```
"""


def run(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root)], capture_output=True, text=True, timeout=60
    )


def write(root: Path, rel: str, text: str = "") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A clean little tree: the check passes on it."""
    for rel in ("addon/__init__.py", "addon/blender/__init__.py", "addon/core/__init__.py",
                "addon/core/sub/__init__.py", "worker/__init__.py"):  # fmt: skip
        write(tmp_path, rel)
    write(tmp_path, "addon/blender/panel.py", "import bpy\n")
    write(tmp_path, "worker/inner_render.py", "import bpy\n")
    write(tmp_path, "addon/core/a.py", "from .sub import b\n")
    write(tmp_path, "addon/core/sub/b.py", "from ..errors import E\n")
    write(tmp_path, "addon/core/errors.py", "class E(Exception):\n    pass\n")
    write(tmp_path, "README.md", README)
    out = run(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    return tmp_path


def test_the_repository_keeps_its_layout():
    out = run(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "layout ok" in out.stdout


def test_a_module_over_450_lines_fails(tree):
    write(tree, "worker/big.py", "x = 1\n" * 451)
    out = run(tree)
    assert out.returncode == 1
    assert "worker/big.py: 451 lines" in out.stdout


def test_a_class_over_300_lines_fails(tree):
    write(tree, "addon/core/sub/c.py", "class Big:\n" + "    x = 1\n" * 300)
    out = run(tree)
    assert out.returncode == 1
    assert "class Big is 301 lines" in out.stdout


def test_an_import_cycle_hidden_in_a_function_fails(tree):
    write(tree, "addon/core/errors.py", """
        class E(Exception):
            pass


        def later():
            from .a import b  # in a function: still a cycle a -> sub.b -> errors -> a
            return b
        """)
    out = run(tree)
    assert out.returncode == 1
    assert "import cycle in addon.core among addon.core.a, addon.core.errors, addon.core.sub.b" in out.stdout


def test_a_type_checking_import_counts_too(tree):
    write(tree, "addon/core/sub/b.py", """
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from .. import a
        """)
    out = run(tree)
    assert out.returncode == 1
    assert "addon.core.a -> addon.core.sub.b -> addon.core.a" in out.stdout


def test_bpy_outside_its_two_places_fails(tree):
    write(tree, "addon/core/sub/scene.py", "def read():\n    import bpy\n    return bpy\n")
    write(tree, "worker/render.py", "from bpy import context\n")
    out = run(tree)
    assert out.returncode == 1
    assert "addon/core/sub/scene.py:2: imports bpy" in out.stdout
    assert "worker/render.py:1: imports bpy" in out.stdout


def test_the_readme_tree_must_match_the_folders(tree):
    write(tree, "addon/core/other/__init__.py")
    (tree / "addon/core/sub/b.py").unlink()
    (tree / "addon/core/sub/__init__.py").unlink()
    (tree / "addon/core/sub").rmdir()
    write(tree, "addon/core/a.py", "")
    out = run(tree)
    assert out.returncode == 1
    assert "README.md Layout leaves out addon/core/other/" in out.stdout
    assert "README.md Layout names addon/core/sub/, which does not exist" in out.stdout


def test_a_root_that_is_no_checkout_is_refused(tmp_path):
    out = run(tmp_path)
    assert out.returncode == 2
    assert "has no addon/core" in out.stderr
