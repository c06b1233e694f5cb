"""`--import MODULE`: a user's module registers custom layers (loaded from a .keras file
under Keras's safe mode) and their costs; run in-process through latency_lab.cli.main.

Each test writes its own module with its own module and class names, and forgets the
module, its Keras registration and its cost afterwards, so nothing leaks between tests.
"""

import importlib
import itertools
import json
import os
import sys
import textwrap

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

from latency_lab import costs  # noqa: E402
from latency_lab.cli import build_parser, main  # noqa: E402

_IDS = itertools.count()
SHAPE = (16, 16, 16)  # large enough that the lookup predicts the ADD above zero
N = 16 * 16 * 16

LAYER = '''
import keras


@keras.saving.register_keras_serializable(package="{module}")
class {cls}(keras.layers.Layer):
    """A learned position embedding: x + one weight per input element."""

    def build(self, input_shape):
        self.pos = self.add_weight(shape=tuple(input_shape[1:]), name="pos",
                                   initializer="random_normal")

    def call(self, x):
        return x + self.pos
'''

COST = '''
import math

from latency_lab import costs


@costs.register("{cls}", op_class=costs.ELEMENTWISE)
def position_cost(op, alive_in, alive_out):
    n = math.prod(op.output_shape)
    params = math.prod(op.output_shape[1:])
    # one add per element; reads the input and the table, writes the output (float32)
    return costs.OpCost(n, params, 4 * (n + params), 4 * n)
'''


class Names:
    def __init__(self):
        i = next(_IDS)
        self.layer_module = f"llt_pos_layers_{i}"
        self.cost_module = f"llt_pos_costs_{i}"
        self.cls = f"PositionEmbedding{i}"


@pytest.fixture
def user(tmp_path, monkeypatch):
    """Module names, and a .keras file (tmp_path/m.keras) using the custom layer,
    saved with the layer module imported and then forgotten again."""
    names = Names()
    (tmp_path / f"{names.layer_module}.py").write_text(
        LAYER.format(module=names.layer_module, cls=names.cls))
    (tmp_path / f"{names.cost_module}.py").write_text(COST.format(cls=names.cls))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = dict(costs._REGISTRY)
    custom = set(keras.saving.get_custom_objects())

    def forget():
        for module in (names.layer_module, names.cost_module, "llt_both", "llt_raises",
                       "llt_broken_dep"):
            sys.modules.pop(module, None)
        objects = keras.saving.get_custom_objects()
        for key in set(objects) - custom:
            del objects[key]
        monkeypatch.setattr(costs, "_REGISTRY", dict(registry))

    mod = importlib.import_module(names.layer_module)
    inp = keras.Input(SHAPE, name="img")
    x = getattr(mod, names.cls)(name="pos")(inp)
    out = keras.layers.Conv2D(4, 3, padding="same", name="conv")(x)
    keras.Model(inp, out, name="with_positions").save(tmp_path / "m.keras")
    forget()
    names.path = str(tmp_path / "m.keras")
    names.dir = tmp_path
    yield names
    forget()


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, " ".join(err.split())  # undo rich's line wrapping


def rows(out: str) -> dict:
    return {row["name"]: row for row in json.loads(out)["layers"]}


def test_every_model_loading_command_takes_repeatable_import():
    parser = build_parser()
    for argv in (["analyze", "m.keras"], ["predict", "m.keras", "--profile", "t4"],
                 ["measure", "m.keras"], ["validate", "--profile", "t4", "m.keras"],
                 ["profile", "--out", "p.json", "--extend-for", "m.keras"],
                 ["shrink", "--model", "m.keras", "--data", "d.npz"]):
        args = parser.parse_args([*argv, "--import", "a", "--import", "b.c"])
        assert args.imports == ["a", "b.c"], argv


def test_without_import_the_unregistered_class_is_named(capsys, user):
    rc, _, err = run(capsys, "analyze", user.path)
    assert rc == 2
    assert f"custom class '{user.cls}'" in err
    assert f"registered as '{user.layer_module}>{user.cls}'" in err
    assert f"--import {user.layer_module}" in err and "PYTHONPATH" in err
    assert "model file's own code is never run" in err


def test_with_import_analyze_reports_the_registered_cost(capsys, user):
    rc, out, err = run(capsys, "analyze", user.path, "--import", user.layer_module,
                       "--import", user.cost_module, "--json")
    assert rc == 0, err
    pos = rows(out)["pos"]
    assert pos["type"] == user.cls
    assert (pos["flops"], pos["params"]) == (N, N)
    assert (pos["bytes_read"], pos["bytes_written"]) == (4 * 2 * N, 4 * N)
    # both modules were imported: the layer loaded, the cost applied
    assert {user.layer_module, user.cost_module} <= set(sys.modules)


def test_a_layer_without_a_cost_names_it_and_how_to_register_one(capsys, user):
    rc, _, err = run(capsys, "analyze", user.path, "--import", user.layer_module)
    assert rc == 2
    assert f"layer 'pos' of type '{user.cls}' has no cost function" in err
    assert f"@latency_lab.costs.register('{user.cls}', op_class=" in err
    assert "--import MODULE" in err and "--allow-unknown" in err


def test_a_layer_without_a_cost_is_a_marked_row_with_allow_unknown(capsys, user):
    rc, out, err = run(capsys, "analyze", user.path, "--import", user.layer_module,
                       "--allow-unknown", "--json")
    assert rc == 0, err
    assert json.loads(out)["unknown_layers"] == [f"pos ({user.cls})"]
    assert "warning:" in err and "pos" in err


def test_predict_times_the_custom_layer_through_its_kernels(capsys, user):
    # No cost is registered: predict times the LiteRT kernels the layer converts to.
    rc, out, err = run(capsys, "predict", user.path, "--import", user.layer_module,
                       "--profile", "xeon_vm_2c_litert", "--json")
    assert rc == 0, err
    layers = rows(out)
    assert layers["pos"]["type"] == user.cls
    assert layers["pos"]["kernels"] == 1  # an ADD of the position table
    assert layers["pos"]["latency_ms"] > 0
    assert layers["conv"]["kernels"] == 1
    assert json.loads(out)["skipped"] == []


def test_missing_module_is_named_with_pythonpath(capsys, user):
    rc, _, err = run(capsys, "analyze", user.path, "--import", "llt_no_such_module")
    assert rc == 2
    assert "error:" in err
    assert "no module named 'llt_no_such_module'" in err and "PYTHONPATH" in err


def test_module_that_raises_is_named_with_the_exception(capsys, user):
    (user.dir / "llt_raises.py").write_text("x = 1\nraise RuntimeError('boom at import')\n")
    rc, _, err = run(capsys, "analyze", user.path, "--import", "llt_raises")
    assert rc == 2
    assert "importing module 'llt_raises' raised RuntimeError: boom at import" in err
    assert "llt_raises.py:2" in err


def test_module_with_a_syntax_error_names_its_line(capsys, user):
    (user.dir / "llt_raises.py").write_text("x = 1\ndef f(:\n")
    rc, _, err = run(capsys, "analyze", user.path, "--import", "llt_raises")
    assert rc == 2
    assert "importing module 'llt_raises' raised SyntaxError" in err
    assert "(llt_raises.py, line 2)" in err and "importlib" not in err


def test_module_with_a_missing_dependency_is_not_called_missing(capsys, user):
    (user.dir / "llt_broken_dep.py").write_text("import llt_absent_dependency\n")
    rc, _, err = run(capsys, "analyze", user.path, "--import", "llt_broken_dep")
    assert rc == 2
    assert ("importing module 'llt_broken_dep' raised ModuleNotFoundError: No module "
            "named 'llt_absent_dependency'") in err


@pytest.mark.parametrize("name, fragment", [
    ("layers/pos.py", "not a file path"),
    ("pos.py", "PYTHONPATH=. latency-lab ... --import pos"),
    ("1abc", "is not a Python module name"),
    (".rel", "is not a Python module name"),
])
def test_bad_module_names_are_refused(capsys, user, name, fragment):
    rc, _, err = run(capsys, "analyze", user.path, "--import", name)
    assert rc == 2
    assert fragment in err


def test_repeated_imports_are_all_imported(capsys, user):
    (user.dir / "llt_both.py").write_text("BOTH = True\n")
    rc, out, err = run(capsys, "analyze", user.path, "--import", user.layer_module,
                       "--import", "llt_both", "--import", user.cost_module, "--json")
    assert rc == 0, err
    assert {user.layer_module, "llt_both", user.cost_module} <= set(sys.modules)
    assert rows(out)["pos"]["flops"] == N


@pytest.mark.parametrize("argv, fragment", [
    (["profile", "--out", "p.json", "--import", "m"], "add --extend-for"),
    (["shrink", "--import", "m"], "give --model"),
])
def test_import_without_a_model_to_load_is_refused(capsys, tmp_path, argv, fragment):
    rc, _, err = run(capsys, *argv)
    assert rc == 2
    assert "--import" in err and fragment in err
