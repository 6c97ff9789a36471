"""The CLI's read-only commands stay light (no Prefect, torch or transformers imported), and the CLI's
modules import each other without a cycle, counting imports inside functions."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CLI = Path(__file__).resolve().parent.parent / "maya" / "cli"

_PROBE = """
import sys
from maya.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as e:  # --help
    rc = e.code
heavy = [m for m in ('prefect', 'torch', 'transformers') if m in sys.modules]
print('HEAVY', heavy, 'RC', rc)
"""


@pytest.fixture(scope="module")
def small_store(photo_dir, tmp_path_factory):
    """A store with one built dataset (pairs and derived images), made without Prefect."""
    from maya.cli import main

    data = tmp_path_factory.mktemp("layers-data")
    assert main(["pairs", "build", str(photo_dir), "--dataset", "d", "--positives", "2", "--chains", "0",
                 "--data-dir", str(data)]) == 0
    return data


@pytest.mark.parametrize("argv", [
    ["--help"], ["sql", "--help"], ["config"], ["sql", "select count(*) AS n FROM pairs"],
    ["sql", "best_f1_per_method", "--format", "json"], ["pairs", "show", "--dataset", "d"],
    ["report"],  # no evaluate run in this store: a one-line error, still without the heavy imports
], ids=lambda a: " ".join(a))
def test_read_only_commands_import_neither_prefect_nor_torch(small_store, argv, tmp_path):
    out = subprocess.run([sys.executable, "-c", _PROBE, *argv, *([] if "--help" in argv else
                          ["--data-dir", str(small_store)])], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert "HEAVY [] RC" in out.stdout, out.stdout + out.stderr
    rc = int(out.stdout.rsplit("RC", 1)[1])
    assert rc == (1 if argv == ["report"] else 0), out.stderr
    if argv[0] == "pairs":
        assert (small_store / "reports" / "pairs-d.png").is_file()


def _imports(path: Path) -> set[str]:
    """maya.cli modules that ``path`` imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("maya.cli"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("maya.cli"))
    return found


def test_cli_modules_have_no_import_cycle():
    modules = {f"maya.cli.{p.stem}": p for p in CLI.glob("*.py") if p.stem not in ("__init__", "__main__")}
    graph = {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}
    assert len(graph) >= 8  # the scan saw the package

    def reach(start):
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo.extend(graph[m])
        return seen

    cycles = sorted(m for m in graph if m in reach(m))
    assert not cycles, f"modules on an import cycle: {cycles}"
