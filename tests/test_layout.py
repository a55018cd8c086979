"""The architecture, checked: the dream core stands alone, the tools sit on the core (the
product's tools never on the measuring ones in qa/), no
module imports itself in a circle, and modules and functions stay short enough to read.
A failure names the module and the import or function that broke the rule."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("live", "models", "tools", "qa")
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 80
TOOLS_MAY_IMPORT = ("live.dream", "live.config", "live.cli", "live.audio", "models", "tools")
QA_MAY_IMPORT = TOOLS_MAY_IMPORT + ("qa",)
# The names the docs have always given the benchmark and the coherence report: they run qa's.
OLD_NAMES = ("tools.bench", "tools.coherence")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports(name: str, top_level_only: bool = False) -> set[str]:
    """Absolute names of what a module imports (relative imports resolved)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES}
    return found


def ours(names: set[str]) -> set[str]:
    """Our modules among the names (a bare package such as `live` in `from live import x`
    stands for nothing of its own)."""
    return {n for n in names if n.split(".")[0] in PACKAGES and n not in PACKAGES}


def in_core(name: str) -> bool:
    return name == "live.dream" or name.startswith("live.dream.")


@pytest.mark.parametrize("name", [n for n in MODULES if in_core(n)])
def test_the_dream_core_imports_neither_pygame_nor_the_installation(name):
    bad = {n for n in imports(name) if n.split(".")[0] == "pygame"} | {
        n for n in ours(imports(name)) if n.startswith("live") and not in_core(n)}
    assert not bad, f"{name} imports {sorted(bad)}: the core must stand alone"


@pytest.mark.parametrize("name", [n for n in MODULES if n.split(".")[0] in ("tools", "qa")
                                  and n not in ("qa.soak", "qa.abswitch", *OLD_NAMES)])
def test_tools_sit_on_the_core_not_the_app(name):
    """qa.soak and qa.abswitch run the whole app (its soak test; a setting judged inside one
    live run); nothing else may."""
    allowed = QA_MAY_IMPORT if name.startswith("qa") else TOOLS_MAY_IMPORT
    bad = {n for n in ours(imports(name)) if not (in_core(n) or n.startswith(allowed[1:]))}
    assert not bad, f"{name} imports {sorted(bad)}; it may import {', '.join(allowed)}"


@pytest.mark.parametrize("name", OLD_NAMES)
def test_the_old_names_only_hand_over_to_qa(name):
    assert ours(imports(name)) == {"qa." + name.split(".")[1], "live.cli"}


def test_no_import_circles():
    graph = {n: {m for m in ours(imports(n, top_level_only=True)) if m in MODULES and m != n} for n in MODULES}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        path.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1 and not n.startswith(m + "."):   # a package importing its own parts is fine
                cycle = path[path.index(m):] + [m]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if m not in state:
                visit(m)
        path.pop()
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n)


@pytest.mark.parametrize("name", list(MODULES))
def test_modules_and_functions_are_short(name):
    text = MODULES[name].read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{name}: {len(text.splitlines())} lines"
    long = [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(ast.parse(text))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{name}: functions over {MAX_FUNCTION_LINES} lines: {long}"
