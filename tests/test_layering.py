"""The layering of the packages, checked statically: `regularizers` (what a training
script imports) never imports timing, runtimes, plotting or the applications built on
top of it, at module level or inside a function."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REGULARIZERS = sorted((ROOT / "regularizers").glob("*.py"))
FORBIDDEN = ("latency_lab.runtimes", "latency_lab.timing", "latency_lab.plots",
             "latency_lab.workflows", "latency_lab.cli", "matplotlib")


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, dotted name) of every import anywhere in ``tree``; ``from a import b``
    gives both ``a`` and ``a.b`` (b may be a submodule, e.g. ``from latency_lab import
    timing``). Relative imports are resolved against the ``regularizers`` package."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(["regularizers"] + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_the_regularizers_package_is_found():
    assert {p.name for p in REGULARIZERS} >= {"__init__.py", "base.py", "apply.py"}


@pytest.mark.parametrize("path", REGULARIZERS, ids=lambda p: p.name)
def test_regularizers_never_import_timing_runtimes_plots_or_workflows(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = [f"{path.name}:{line} imports {name}" for line, name in imported_modules(tree)
           if forbidden(name)]
    assert not bad, ("regularizers/ must not import " + ", ".join(FORBIDDEN) + "; found "
                     + "; ".join(bad))


@pytest.mark.parametrize("source, expected", [
    ("import matplotlib.pyplot as plt", True),
    ("def f():\n    from latency_lab.runtimes import for_profile", True),
    ("from latency_lab import timing", True),
    ("class A:\n    def m(self):\n        import latency_lab.workflows.phases", True),
    ("from latency_lab import cli", True),
    ("from latency_lab.predict import predict_model", False),
    ("import latency_lab.timings_table", False),  # a name that only starts alike
    ("from . import grouping", False),
])
def test_the_checker_sees_imports_at_any_depth(source, expected):
    names = [name for _, name in imported_modules(ast.parse(source))]
    assert any(forbidden(n) for n in names) is expected
