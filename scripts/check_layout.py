#!/usr/bin/env python3
"""Check the repository's layout rules (shared DESIGN.md, "Boundaries" and "Style").

    python scripts/check_layout.py [--root DIR]

Fails (exit 1), naming each offence, when:

* a module of ``addon/`` or ``worker/`` is longer than 450 lines, or a class in one is
  longer than 300 (the aims are ~400 and ~250);
* the modules of ``addon/core`` import each other in a cycle, counting imports made
  inside functions and under ``TYPE_CHECKING`` (they hide a cycle, they don't remove it);
* ``bpy`` is imported outside ``addon/blender/`` and the worker's inner script;
* the README's Layout tree names a folder that does not exist, or leaves out a package
  folder of ``addon/`` or ``worker/``.

Reads the code as text (``ast``); imports and runs nothing of the project. The test
suite runs it (tests/test_layout.py). Exit 2: the root is not a checkout of this project.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

MAX_MODULE_LINES = 450
MAX_CLASS_LINES = 300
CODE_DIRS = ("addon", "worker")
CORE = "addon.core"
BPY_MODULES = ("bpy", "bpy_extras")
BPY_ALLOWED = ("addon/blender/", "worker/inner_render.py", "worker/inner_still.py")
SKIP_PARTS = {"__pycache__", "wheels"}


def python_files(root: Path) -> Iterator[Path]:
    for top in CODE_DIRS:
        for path in sorted((root / top).rglob("*.py")):
            if not SKIP_PARTS.intersection(path.relative_to(root).parts):
                yield path


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def check_sizes(root: Path, trees: dict[Path, ast.Module]) -> list[str]:
    problems = []
    for path, tree in trees.items():
        rel = path.relative_to(root).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            problems.append(f"{rel}: {lines} lines (at most {MAX_MODULE_LINES}): split it by concern")
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    problems.append(
                        f"{rel}: class {node.name} is {size} lines (at most {MAX_CLASS_LINES}): split it by job"
                    )
    return problems


def imported_modules(name: str, is_package: bool, tree: ast.Module, known: set[str]) -> set[str]:
    """Every module of ``known`` that ``name`` imports, anywhere in its code."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # `from pkg import mod` imports the module pkg.mod; `from mod import name`, mod
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in known else stem for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` where only a.b is ours
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as a loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_loop(graph, set(c)) for c in components]


def _loop(graph: dict[str, set[str]], members: set[str]) -> list[str]:
    """One concrete loop through a component, for the message (a -> b -> a)."""
    start = min(members)
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[path[-1]] if w in members)
        back = [w for w in nxt if w == start]
        if back and len(path) > 1:
            return [*path, start]
        fresh = [w for w in nxt if w not in seen]
        if not fresh:
            return [*path, nxt[0]]
        path.append(fresh[0])
        seen.add(fresh[0])


def check_cycles(root: Path, trees: dict[Path, ast.Module]) -> list[str]:
    core = {p: t for p, t in trees.items() if module_name(root, p).startswith(CORE)}
    names = {module_name(root, p): (p, t) for p, t in core.items()}
    graph = {n: imported_modules(n, p.name == "__init__.py", t, set(names)) for n, (p, t) in names.items()}
    return [
        f"import cycle in {CORE} among {', '.join(sorted(set(loop)))}: {' -> '.join(loop)} "
        "(move what they share down into a module both import)"
        for loop in find_cycles(graph)
    ]


def check_bpy(root: Path, trees: dict[Path, ast.Module]) -> list[str]:
    problems = []
    for path, tree in trees.items():
        rel = path.relative_to(root).as_posix()
        if rel.startswith(BPY_ALLOWED):
            continue
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            for name in names:
                if name.split(".")[0] in BPY_MODULES:
                    problems.append(
                        f"{rel}:{node.lineno}: imports {name}: bpy belongs in addon/blender/ "
                        "(or the worker's inner script); pass plain data to the core instead"
                    )
    return problems


def readme_folders(readme: Path) -> list[str]:
    """Folders of the tree in the README's "## Layout" code block, as paths ("addon/core")."""
    text = readme.read_text(encoding="utf-8")
    section = text.split("\n## Layout", 1)
    if len(section) < 2 or "```" not in section[1]:
        return []
    block = section[1].split("```", 2)[1]
    folders: list[str] = []
    parents: list[str] = []
    for line in block.splitlines()[1:]:
        stripped = line.lstrip(" ")
        token = stripped.split(" ", 1)[0]
        if not token.endswith("/"):
            continue
        depth = (len(line) - len(stripped)) // 2
        parents = [*parents[:depth], token.rstrip("/")]
        folders.append("/".join(parents))
    return folders


def check_readme(root: Path) -> list[str]:
    readme = root / "README.md"
    if not readme.is_file():
        return ["README.md is missing: it needs a Layout section with the folder tree"]
    listed = readme_folders(readme)
    if not listed:
        return ["README.md has no '## Layout' section with a ``` folder tree"]
    problems = [f"README.md Layout names {f}/, which does not exist" for f in listed if not (root / f).is_dir()]
    for top in CODE_DIRS:
        for init in sorted((root / top).rglob("__init__.py")):
            folder = init.parent.relative_to(root).as_posix()
            if folder not in listed and not SKIP_PARTS.intersection(init.parent.relative_to(root).parts):
                problems.append(f"README.md Layout leaves out {folder}/: add a line for it")
    return problems


def check(root: Path) -> list[str]:
    trees: dict[Path, ast.Module] = {}
    problems: list[str] = []
    for path in python_files(root):
        try:
            trees[path] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except SyntaxError as exc:
            problems.append(f"{path.relative_to(root)}: cannot parse: {exc}")
    return problems + check_sizes(root, trees) + check_cycles(root, trees) + check_bpy(root, trees) + check_readme(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if not (root / "addon" / "core").is_dir():
        print(f"error: {root} has no addon/core: pass --root with a checkout of aws-batch-render", file=sys.stderr)
        return 2
    problems = check(root)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} layout problem(s)", file=sys.stderr)
        return 1
    print(f"layout ok: {sum(1 for _ in python_files(root))} modules checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
