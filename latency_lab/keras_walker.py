"""The one Keras graph walker: the only module that reads Keras' private graph internals.

Keras 3 keeps a functional model's graph in private attributes (`_nodes_by_depth`,
`KerasTensor._keras_history`, `Sequential._functional`, `_inputs_struct`, ...) and in
`Node` objects of the private `keras.src` package. They move between Keras releases,
so every read of them lives here, behind documented functions, and
tests/test_keras_walker.py fails by name when a Keras upgrade moves one. The IR builder
(`keras_graph`), gate insertion (`regularizers.gates`), the structure rebuild
(`regularizers.apply`) and LiteRT kernel naming (`litert_graph`) use these functions
and read no Keras internals themselves.

    graph = require_functional(model, f"model {model.name!r}")
    outs = walk(graph, inputs, visit)   # visit(call, input_values) -> output values

Imports Keras only when a function needs it (`import latency_lab` stays light).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from latency_lab.errors import UnsupportedModelError

__all__ = [
    "Call",
    "activation_name",
    "calls",
    "check_input",
    "functional_of",
    "is_model",
    "is_ops_operation",
    "keras_mask_of",
    "pack_inputs",
    "pack_outputs",
    "producer_of",
    "require_functional",
    "walk",
]


# ------------------------------------------------------------------------- models


def is_model(operation: Any) -> bool:
    """True for a (nested) Keras model used as one operation of an outer graph."""
    import keras

    return isinstance(operation, keras.Model)


def functional_of(model: Any) -> Any | None:
    """The Functional graph that runs `model`: the model itself when it is functional,
    the graph a built Sequential model keeps inside; None when there is none (a
    subclassed model, whose graph is Python code in call(); a Sequential model not
    built yet; anything that is not a model). Callers choose the error message."""
    import keras
    from keras.src.models.functional import Functional

    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    if isinstance(model, Functional):
        return model
    return None


def require_functional(model: Any, where: str) -> Any:
    """`functional_of(model)`, or an UnsupportedModelError that names `where` (e.g.
    "nested model 'backbone'") and says how to make the model traceable."""
    import keras

    functional = functional_of(model)
    if functional is not None:
        return functional
    if isinstance(model, keras.Sequential):
        raise UnsupportedModelError(
            f"{where}: Sequential model {model.name!r} is not built, so its input "
            "shape is unknown. Start it with keras.Input(shape=...) or call "
            "model.build((None, H, W, C)) before saving, or pass --input-shape."
        )
    raise UnsupportedModelError(
        f"{where}: model {model.name!r} ({type(model).__name__}) is a subclassed Keras "
        "model; its graph is hidden inside Python code in call(), so its layers cannot "
        "be traced. Rebuild it with the Functional API (keras.Model(inputs, outputs)) "
        "or keras.Sequential."
    )


def pack_inputs(function: Any, values: Sequence[Any]) -> Any:
    """`values` (one per `function.inputs`) arranged like the model's inputs (a dict,
    list or single tensor), so `keras.Model(pack_inputs(...), ...)` keeps the call
    signature of the model it copies."""
    import keras

    struct = getattr(function, "_inputs_struct", None)
    return list(values) if struct is None else keras.tree.pack_sequence_as(struct, list(values))


def pack_outputs(function: Any, values: Sequence[Any]) -> Any:
    """`values` (one per `function.outputs`) arranged like the model's outputs."""
    import keras

    struct = getattr(function, "_outputs_struct", None)
    return list(values) if struct is None else keras.tree.pack_sequence_as(struct, list(values))


# ------------------------------------------------------------------------ tensors


def producer_of(tensor: Any) -> Any | None:
    """The operation (layer, keras.ops operation, InputLayer) whose call produced a
    symbolic tensor; None for a tensor no Keras graph records (e.g. a constant)."""
    history = getattr(tensor, "_keras_history", None)
    return history[0] if history else None  # KerasHistory(operation, node_index, i)


def keras_mask_of(tensor: Any) -> Any | None:
    """The Keras mask a symbolic tensor carries (`Embedding(mask_zero=True)`'s output
    and what follows it), or None. A layer whose call takes `<arg>_mask` arguments
    (MultiHeadAttention's query, value and key) applies it inside its call, though the
    graph records no mask tensor among the call's inputs."""
    from keras.src.backend.common.masking import get_keras_mask

    return get_keras_mask(tensor)


def is_ops_operation(operation: Any) -> bool:
    """True for a `keras.ops` call recorded in a functional graph (e.g. `x + 3.0`): an
    Operation, not a layer, whose class name can clash with a layer's (ops.numpy.Add
    vs layers.Add)."""
    module = type(operation).__module__
    return module.startswith("keras.src.ops.") or module.startswith("keras.ops")


def check_input(operation: Any, x: Any) -> None:
    """Raise as `operation(x)` would when `x` does not fit the layer's input_spec.
    `compute_output_spec` alone accepts e.g. a wider input for a built Dense; the check
    `Layer.__call__` makes refuses it. Operations without an input_spec accept all."""
    check = getattr(operation, "_assert_input_compatibility", None)
    if check is not None:
        check(x)


def activation_name(value: Any) -> str | None:
    """Name of a serialized activation, as a layer config holds it
    (`get_config()["activation"]`, or `keras.activations.serialize(layer.activation)`):
    "relu" stays "relu"; a registered custom function gives its registered name; an
    activation object (a layer passed as activation=) gives its config name; None
    gives None; anything else its `__name__` (or type name)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):  # serialized function / object
        cfg = value.get("config")
        if isinstance(cfg, str):
            return cfg
        if isinstance(cfg, dict) and "name" in cfg:
            return str(cfg["name"])
        return str(value.get("class_name", "custom"))
    return getattr(value, "__name__", type(value).__name__)


# ------------------------------------------------------------------------- walking


@dataclass(frozen=True)
class Call:
    """One call of an operation in a functional graph (a Keras Node, read once).

    `inputs` are the symbolic tensors the call consumed (flattened in argument order,
    a tensor used twice appears twice), `outputs` the ones it produced; `args` and
    `kwargs` are the arguments as called, tensors in place, so constants beside the
    tensors (`x + 3.0`) and call options (`training=False`) can be read. `scope` is the
    path of nested models the call sits in ("backbone/"; "" at the top level).
    """

    operation: Any
    inputs: tuple
    outputs: tuple
    args: tuple
    kwargs: dict
    scope: str = ""
    _arguments: Any = field(default=None, repr=False, compare=False)

    def fill_in(self, values: Sequence[Any]) -> tuple[tuple, dict]:
        """(args, kwargs) of this call with its i-th input tensor replaced by
        `values[i]`: call the operation (or a copy of it) on other tensors."""
        return self._arguments.fill_in({id(t): v for t, v in zip(self.inputs, values)})

    def bound_arguments(self) -> dict[str, Any]:
        """The arguments of this call by the parameter names of `operation.call`
        (`mha(q, v, attention_mask=m)` -> {"query": q, "value": v, "attention_mask":
        m}), whether written positionally or by keyword; defaults are not filled in.

        Raises:
            UnsupportedModelError: the recorded arguments do not fit the signature.
        """
        import inspect

        try:
            bound = inspect.signature(self.operation.call).bind(*self.args, **self.kwargs)
        except (TypeError, ValueError) as exc:
            raise UnsupportedModelError(
                f"layer {self.scope + self.operation.name!r} "
                f"({type(self.operation).__name__}): its recorded call arguments do not "
                f"fit the signature of its call() ({exc}); rebuild the model calling the "
                "layer as its documentation shows") from exc
        return dict(bound.arguments)

    def input_index(self, tensor: Any, exclude: Sequence[int] = ()) -> int | None:
        """First position of `tensor` (the object itself, not an equal one) among
        `inputs` outside `exclude`, or None: `mha(x, x)` consumes x at 0 and at 1."""
        return next((i for i, t in enumerate(self.inputs)
                     if t is tensor and i not in exclude), None)


def _call_of(node: Any, scope: str) -> Call:
    arguments = node.arguments
    return Call(
        operation=node.operation,
        inputs=tuple(node.input_tensors),
        outputs=tuple(node.outputs),
        args=tuple(arguments.args),
        kwargs=dict(arguments.kwargs),
        scope=scope,
        _arguments=arguments,
    )


def calls(function: Any, scope: str = "") -> Iterator[Call]:
    """The operation calls of one Functional graph in topological order (deepest node
    first, Keras' own execution order); input layers are left out and nested models
    are single calls (see `walk` to enter them)."""
    nodes_by_depth = function._nodes_by_depth
    for depth in sorted(nodes_by_depth, reverse=True):
        for node in nodes_by_depth[depth]:
            if node.is_input or node.operation is None:
                continue
            yield _call_of(node, scope)


def walk(
    function: Any,
    inputs: Sequence[Any],
    visit: Callable[[Call, list], Sequence[Any]],
    scope: str = "",
) -> list:
    """Run a functional graph on values of the caller's choosing and return the values
    of its outputs.

    `inputs` hold one value per `function.inputs` (anything: a new tensor, an op name,
    a shape). Every call, in the order of `calls`, is handed to `visit(call, values)`
    with the values of its inputs; `visit` returns one value per `call.outputs`.
    Nested models are entered, not visited: their calls come in their place with
    `scope` "outer/inner/", so a shared nested model is walked once per call. A call
    whose inputs cannot be reached from `inputs` is skipped, as Keras does.

    Raises:
        UnsupportedModelError: a nested model has no graph (subclassed), or an output
            is not connected to the inputs.
    """
    value_of = {id(x): v for x, v in zip(function.inputs, inputs)}
    for call in calls(function, scope):
        if any(id(x) not in value_of for x in call.inputs):
            continue  # a branch not reachable from this function's inputs
        values = [value_of[id(x)] for x in call.inputs]
        operation = call.operation
        if is_model(operation):
            inner = require_functional(operation, f"nested model {scope}{operation.name!r}")
            outs = walk(inner, values, visit, f"{scope}{operation.name}/")
        else:
            outs = visit(call, values)
        for x, v in zip(call.outputs, outs):
            value_of[id(x)] = v
    outputs = list(function.outputs)
    missing = [x for x in outputs if id(x) not in value_of]
    if missing:
        raise UnsupportedModelError(
            f"model {function.name!r}: output {missing[0].name!r} is not connected "
            "to the model inputs"
        )
    return [value_of[id(x)] for x in outputs]
