"""The package's layering: every module imports on its own in a fresh interpreter, no
import cycle among the package's modules (counting imports inside functions, which
only hide a cycle), and the training regularizers stay clear of runtimes, timing and
plotting."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("latency_lab", "regularizers", "device_profiles")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out[_module_name(path)] = path
    return out


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Package modules `path` imports, at any depth (inside functions too): `from a.b
    import c` names a.b.c when that is a module, else a.b."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    out.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name if is_pkg else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rpartition(".")[0]
                base = f"{pkg}.{base}" if base else pkg
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:
                    out.add(sub)
                elif base in modules:
                    out.add(base)
    out.discard(name)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_import_graph_sees_imports_inside_functions():
    graph = import_graph()
    # kernels.litert imports the LiteRT converter only inside a function.
    assert "latency_lab.convert" in graph["latency_lab.kernels.litert"]


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# The one-way flow: what the regularizers a training script imports may not reach.
FORBIDDEN_FOR_REGULARIZERS = ("latency_lab.runtimes", "latency_lab.timing",
                              "latency_lab.plots", "latency_lab.workflows", "latency_lab.cli",
                              "latency_lab.profiler", "latency_lab.validate")
LOWER_LAYERS = {
    # a module: packages it must not import (the code that calls it)
    "latency_lab.op_kinds": ("latency_lab.kernels", "latency_lab.predictors",
                             "latency_lab.predict", "latency_lab.bench", "latency_lab.profiler"),
    "latency_lab.kernels": ("latency_lab.predictors", "latency_lab.predict",
                            "latency_lab.bench", "latency_lab.profiler"),
    "latency_lab.predictors": ("latency_lab.predict", "latency_lab.profiler",
                               "latency_lab.validate", "regularizers"),
    "device_profiles": ("latency_lab.profile",),
}


def _reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for m in graph.get(todo.pop(), ()):
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_regularizers_do_not_reach_runtimes_timing_or_plotting():
    graph = import_graph()
    for mod in (m for m in graph if _under(m, "regularizers")):
        bad = sorted(m for m in _reaches(graph, mod)
                     if any(_under(m, f) for f in FORBIDDEN_FOR_REGULARIZERS))
        assert not bad, f"{mod} imports (directly or through others) {bad}"


@pytest.mark.parametrize("layer", sorted(LOWER_LAYERS))
def test_lower_layers_do_not_import_their_callers(layer):
    graph = import_graph()
    for mod in (m for m in graph if _under(m, layer)):
        direct = sorted(m for m in graph[mod]
                        if any(_under(m, f) for f in LOWER_LAYERS[layer]))
        assert not direct, f"{mod} imports {direct}, which call it"


# The held-out validation families (latency_lab.zoo) stay out of everything a profile
# or a prediction is built from: no plan, feature or fit may ever see them.
HELD_OUT = "latency_lab.zoo"
BUILT_WITHOUT_HELD_OUT = ("latency_lab.bench", "latency_lab.predictors", "latency_lab.predict",
                          "latency_lab.profiler", "latency_lab.profile", "latency_lab.op_kinds",
                          "latency_lab.kernels", "latency_lab.costs", "regularizers")


def test_nothing_a_profile_or_prediction_is_built_from_reaches_the_held_out_zoo():
    graph = import_graph()
    assert any(_under(m, HELD_OUT) for m in graph), "latency_lab.zoo is gone; update this test"
    for mod in (m for m in graph if any(_under(m, f) for f in BUILT_WITHOUT_HELD_OUT)):
        bad = sorted(m for m in _reaches(graph, mod) if _under(m, HELD_OUT))
        assert not bad, f"{mod} imports (directly or through others) the held-out {bad}"


def test_no_private_name_is_imported_across_modules():
    modules = package_modules()
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.split(".")[0] in PACKAGES:
                private = [a.name for a in node.names if a.name.startswith("_")
                           and not a.name.startswith("__")]
                assert not private, f"{name} imports private {private} from {node.module}"


def test_every_module_declares_its_public_names():
    missing = [name for name, path in package_modules().items()
               if path.name != "__main__.py" and "__all__" not in path.read_text()]
    assert not missing, f"modules without __all__: {missing}"


def test_every_module_imports_in_a_fresh_interpreter():
    names = sorted(n for n in package_modules() if not n.endswith("__main__"))
    code = ("import importlib, sys\n"
            "bad = []\n"
            f"for n in {names!r}:\n"
            "    try:\n"
            "        importlib.import_module(n)\n"
            "    except Exception as e:\n"
            "        bad.append(f'{n}: {type(e).__name__}: {e}')\n"
            "print('\\n'.join(bad)); sys.exit(1 if bad else 0)\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]


def test_each_module_imports_alone_without_tensorflow():
    """Each module of latency_lab and device_profiles first in its own interpreter: an
    import that only works after another module was imported (a hidden cycle) fails
    here, and none of them imports TensorFlow (or Keras) until a function needs it.
    (regularizers import Keras by design; the test above imports them.)"""
    names = sorted(n for n in package_modules()
                   if not n.endswith("__main__") and not _under(n, "regularizers"))
    code = ("import importlib, sys\n"
            "importlib.import_module(sys.argv[1])\n"
            "print('tensorflow' in sys.modules or 'keras' in sys.modules)\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    heavy = []
    for n in names:
        r = subprocess.run([sys.executable, "-c", code, n], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"{n}: {r.stderr[-1500:]}"
        if r.stdout.strip() != "False":
            heavy.append(n)
    assert not heavy, f"importing these imported TensorFlow/Keras: {heavy}"
