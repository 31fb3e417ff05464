"""The package's imports run one way: the layers of pyproject.toml's [tool.importlinter] hold (lint-imports)
and no two modules import each other, directly or around a loop (function-level imports count)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

# Known cycles left to the report's owner (report.py is theirs): each edge here is an import that closes a
# cycle today. Empty this once report.py takes ReportError and fmt_number from below (see README).
ALLOWED_CYCLE_EDGES: set[tuple[str, str]] = set()  # none: report, report_media and report_table import one way


def _lint(cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    if not LINT.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_lint_imports_keeps_every_contract():
    r = _lint(ROOT)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def import_cycles(package: str = "workbench", allowed: set[tuple[str, str]] = frozenset()) -> list[list[str]]:
    """The groups of modules that import each other around a loop (strongly connected, > 1 module)."""
    import grimp

    graph = grimp.build_graph(package, include_external_packages=False, cache_dir=None)
    adj = {m: {t for t in graph.find_modules_directly_imported_by(m) if (m, t) not in allowed}
           for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0
    for root in sorted(adj):  # Tarjan, iterative
        if root in index:
            continue
        work = [(root, iter(sorted(adj[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(adj[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        group.append(m)
                        if m == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
    return groups


def test_no_import_cycles_between_modules():
    cycles = import_cycles(allowed=ALLOWED_CYCLE_EDGES)
    assert cycles == [], f"{len(cycles)} import cycles: {cycles}"


def test_an_upward_import_fails_the_build(tmp_path):
    """A copy of the package where a foundation (media.py) imports the Runner: lint-imports refuses it."""
    shutil.copytree(ROOT / "workbench", tmp_path / "workbench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    media = tmp_path / "workbench" / "media.py"
    media.write_text(media.read_text() + "\n\ndef _upward():\n    from workbench.experiment import Runner  # noqa\n")
    import os

    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    r = _lint(tmp_path, env)
    assert r.returncode != 0, r.stdout[-3000:]
    assert "BROKEN" in r.stdout and "workbench.media -> workbench.experiment" in r.stdout, r.stdout[-3000:]
