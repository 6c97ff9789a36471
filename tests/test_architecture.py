"""The layers, read from the installed package's source: what imports what, and how long modules are.

Layers (docs/architecture.md): the library (every ``maya`` module except ``maya.flows``, ``maya.tasks``
and ``maya.cli``) never imports Prefect; ``maya.tasks`` is imported only by ``maya.flows``;
``maya.flows`` only by ``maya.cli`` (and ``deployments/``, which is not installed); no import cycle
between modules, counting imports inside functions (a lazy ``__getattr__`` in an ``__init__.py`` is
exempt: it runs only when a missing attribute is asked for); library modules <= 650 lines, flow
modules <= 120 lines.

The modules are found where Python finds them (``importlib.util.find_spec``), so the test reads the
source that an import of ``maya`` runs, including ``maya.flows`` and ``maya.tasks`` that live in the
repository's top-level ``flows/`` and ``tasks/``.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import pytest

PACKAGES = ("maya", "maya.flows", "maya.tasks")
ORCHESTRATION = ("maya.flows", "maya.tasks", "maya.cli")
PREFECT = ("prefect", "prefect_dask")
MAX_LIBRARY_LINES = 650
MAX_FLOW_LINES = 120

# Known violations, none today. An entry here that no longer occurs fails the test too, so the list only
# shrinks. Never add to it to get a new violation past the rules.
ALLOWED: frozenset[str] = frozenset()


def _in(module: str, packages) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def package_locations() -> dict[str, list[Path]]:
    """Package name -> the folders Python imports it from, for each of :data:`PACKAGES`."""
    out = {}
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations, f"{package} is not an installed package"
        out[package] = [Path(p) for p in spec.submodule_search_locations]
    return out


def scan(locations: dict[str, list[Path]]) -> dict[str, tuple[Path, bool]]:
    """Module name -> (source file, is a package), for every module under ``locations``."""
    out: dict[str, tuple[Path, bool]] = {}
    for package, folders in locations.items():
        for location in folders:
            for dirpath, dirnames, files in os.walk(location):
                dirnames[:] = sorted(d for d in dirnames if (Path(dirpath) / d / "__init__.py").exists())
                rel = Path(dirpath).relative_to(location).parts
                for f in sorted(files):
                    if not f.endswith(".py"):
                        continue
                    name = ".".join([package, *rel] + ([] if f == "__init__.py" else [f[:-3]]))
                    out.setdefault(name, (Path(dirpath) / f, f == "__init__.py"))
    return out


@lru_cache(maxsize=1)
def installed_modules() -> dict[str, tuple[Path, bool]]:
    return scan(package_locations())


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def import_graph(modules: dict[str, tuple[Path, bool]]) -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, int]]:
    """(module -> Maya modules it imports, module -> top-level names of everything it imports, line counts).

    Every import statement counts, at module level or inside a function, except those inside a
    ``__getattr__`` of a package's ``__init__.py``. ``from pkg import sub`` is an import of the
    submodule ``pkg.sub`` (not of ``pkg`` itself) when ``pkg.sub`` is a module.
    """
    edges: dict[str, set[str]] = {m: set() for m in modules}
    tops: dict[str, set[str]] = {m: set() for m in modules}
    lines: dict[str, int] = {}
    for module, (path, is_package) in modules.items():
        source = path.read_text(encoding="utf-8")
        lines[module] = source.count("\n") + 1
        tree = ast.parse(source, filename=str(path))
        lazy: set[int] = set()
        if is_package:
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "__getattr__":
                    lazy |= {id(n) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in lazy:
                continue
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
                first_is_package = False
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, is_package, node.level, node.module)
                subs = [f"{base}.{a.name}" for a in node.names]
                names = [base] + subs
                first_is_package = any(s in modules for s in subs)
            else:
                continue
            for k, name in enumerate(names):
                tops[module].add(name.split(".")[0])
                if name in modules and name != module and not (k == 0 and first_is_package):
                    edges[module].add(name)
    return edges, tops, lines


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


@lru_cache(maxsize=1)
def installed_findings() -> tuple[str, ...]:
    return tuple(findings(installed_modules()))


def findings(modules: dict[str, tuple[Path, bool]]) -> list[str]:
    """Every broken rule, one line each (the same wording as /work/shared/tools/arch_check.py)."""
    edges, tops, lines = import_graph(modules)
    out = []
    for module in sorted(edges):
        if not _in(module, ORCHESTRATION) and tops[module] & set(PREFECT):
            out.append(f"imports prefect below the flow layer: {module}")
        for target in sorted(edges[module]):
            if _in(target, ("maya.tasks",)) and not _in(module, ("maya.tasks", "maya.flows")):
                out.append(f"{module} imports {target}: tasks are imported only by flows")
            if _in(target, ("maya.flows",)) and not _in(module, ("maya.flows", "maya.cli")):
                out.append(f"{module} imports {target}: flows are imported only by the CLI")
    for component in _cycles(edges):
        out.append(f"import cycle: {' <-> '.join(component)}")
    for module, n in sorted(lines.items()):
        if _in(module, ("maya.flows",)):
            if n > MAX_FLOW_LINES:
                out.append(f"flow module {module} has {n} lines (> {MAX_FLOW_LINES})")
        elif not _in(module, ("maya.tasks",)) and n > MAX_LIBRARY_LINES:
            out.append(f"module {module} has {n} lines (> {MAX_LIBRARY_LINES})")
    return out


def _broken(kind: str) -> list[str]:
    return [f for f in installed_findings() if kind in f and f not in ALLOWED]


def test_the_walk_finds_the_library_the_flows_and_the_tasks():
    modules = installed_modules()
    for name in ("maya.errors", "maya.io.walk", "maya.hashing.base", "maya.cli", "maya.flows", "maya.tasks"):
        assert name in modules
    assert any(m.startswith("maya.flows.") for m in modules) and any(m.startswith("maya.tasks.") for m in modules)


def test_no_library_module_imports_prefect():
    assert _broken("imports prefect below the flow layer") == []


def test_tasks_are_imported_only_by_flows_and_flows_only_by_the_cli():
    assert _broken("are imported only by") == []


def test_there_is_no_import_cycle_between_modules_counting_imports_inside_functions():
    assert _broken("import cycle") == []


def test_library_modules_stay_under_650_lines_and_flow_modules_under_120():
    assert _broken(" lines (> ") == []


def test_every_allowed_violation_still_occurs_so_the_allow_list_only_shrinks():
    assert sorted(ALLOWED - set(installed_findings())) == []


def _fake_package(tmp_path: Path, files: dict[str, str]) -> dict[str, tuple[Path, bool]]:
    """A throw-away ``maya`` with ``flows`` and ``tasks`` sub-packages and ``files`` (name -> source)."""
    root = tmp_path / "maya"
    for pkg in ("flows", "tasks"):
        (root / pkg).mkdir(parents=True, exist_ok=True)
        (root / pkg / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    for name, source in files.items():
        (root / name).write_text(source)
    return scan({"maya": [root]})


@pytest.mark.parametrize("source, found", [
    ("import prefect\n", "imports prefect below the flow layer: maya.x"),
    ("def f():\n    from prefect_dask import DaskTaskRunner\n", "imports prefect below the flow layer: maya.x"),
    ("def f():\n    import maya.tasks.t\n", "maya.x imports maya.tasks.t: tasks are imported only by flows"),
    ("def f():\n    from maya.flows import f\n", "maya.x imports maya.flows.f: flows are imported only by the CLI"),
    ("def f():\n    from . import y\n", "import cycle: maya.x <-> maya.y"),
    ("x = 1\n" * 700, "module maya.x has 701 lines (> 650)"),
], ids=["prefect", "prefect-in-function", "tasks", "flows", "cycle-in-function", "long-module"])
def test_the_rules_catch_a_planted_violation(tmp_path, source, found):
    """The checks above can fail: a fake package with one violation each is caught."""
    modules = _fake_package(tmp_path, {"x.py": source, "y.py": "import maya.x\n",
                                       "flows/f.py": "", "tasks/t.py": ""})
    assert found in findings(modules)


def test_a_long_flow_module_is_caught_and_the_cli_may_import_flows(tmp_path):
    (tmp_path / "maya" / "cli").mkdir(parents=True)
    (tmp_path / "maya" / "cli" / "__init__.py").write_text("def main():\n    from maya.flows import f\n")
    modules = _fake_package(tmp_path, {"flows/f.py": "import prefect\nfrom maya.tasks import t\n" + "x = 1\n" * 130,
                                       "tasks/t.py": "import prefect\n"})
    assert findings(modules) == ["flow module maya.flows.f has 133 lines (> 120)"]


def test_a_lazy_getattr_in_a_package_init_is_not_a_cycle(tmp_path):
    modules = _fake_package(tmp_path, {"__init__.py": "def __getattr__(name):\n    from maya import x\n    return x\n",
                                       "x.py": "import maya\n"})
    assert findings(modules) == []
