"""Build the graph IR from a Keras 3 Functional or Sequential model.

Walks the functional graph with `latency_lab.keras_walker.walk` (topological order)
and flattens nested Functional/Sequential models into their layers, so that a backbone
wrapped inside a transfer-learning model is analyzed layer by layer. Imports Keras.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from latency_lab.errors import InputSpecError, UnsupportedModelError
from latency_lab.graph import ATTENTION_ROLES, Graph, Op, UniqueNames
from latency_lab.keras_walker import (
    Call,
    activation_name,
    check_input,
    is_ops_operation,
    keras_mask_of,
    producer_of,
    require_functional,
    walk,
)

__all__ = ["from_keras"]

# Config keys copied into Op.attrs, normalized to plain Python types.
_TUPLE_KEYS = ("kernel_size", "strides", "dilation_rate", "pool_size", "size")
_SCALAR_KEYS = (
    "groups",
    "depth_multiplier",
    "units",
    "use_bias",
    "center",
    "scale",
    "rate",
    "max_value",
    "negative_slope",
    "threshold",
    "keepdims",
    "interpolation",
    "offset",
    "invert",
    "shared_axes",
    "approximate",  # keras.ops.gelu
    "rms_scaling",  # LayerNormalization
    "input_dim",  # Embedding
    "output_dim",
    "mask_zero",
    "num_heads",  # MultiHeadAttention
    "key_dim",
    "value_dim",
    "dropout",
    "use_gate",
    "sliding_window",
    "attention_axes",
)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _attrs(layer: Any, call_kwargs: dict) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    try:
        cfg = layer.get_config() or {}
    except Exception:  # keras.ops operations without a config, custom layers
        cfg = {}
    attrs: dict[str, Any] = {}
    for key in _TUPLE_KEYS:
        if key in cfg and cfg[key] is not None:
            v = cfg[key]
            attrs[key] = tuple(int(x) for x in v) if isinstance(v, (list, tuple)) else (int(v),)
    for key in _SCALAR_KEYS:
        if key in cfg:
            attrs[key] = _plain(cfg[key])
    if "padding" in cfg:
        attrs["padding"] = _plain(cfg["padding"])
    if "cropping" in cfg:
        attrs["cropping"] = _plain(cfg["cropping"])
    if "axis" in cfg:
        attrs["axis"] = _plain(cfg["axis"])
    # Reshape / Permute layers, keras.ops reshape / transpose / split: what a channel
    # shuffle or split is read from.
    for key in ("target_shape", "dims", "newshape", "axes", "indices_or_sections"):
        if cfg.get(key) is not None:
            attrs[key] = _plain(cfg[key])
    if "activation" in cfg:
        attrs["activation"] = activation_name(cfg["activation"])
    if cfg.get("mean") is not None:  # Normalization(mean=, variance=): constants, no weights
        attrs["constant_stats"] = True
    if cfg.get("data_format") == "channels_first":
        attrs["channel_axis"] = 1
    variable_dtype = getattr(layer, "variable_dtype", None)
    if variable_dtype:
        attrs["weight_dtype"] = str(variable_dtype)
    for key, value in call_kwargs.items():
        if isinstance(value, (str, int, float, bool)):
            attrs[f"call_{key}"] = value
    return attrs


def _getitem_attrs(key: Any, shape: tuple) -> dict[str, Any]:
    """``getitem``: (start, stop, step) per axis (batch first) of a basic slice
    ``x[..., a:b]``; absent for integer, newaxis or tensor indices. ``getitem_key``:
    the index as written, for messages."""
    out: dict[str, Any] = {"getitem_key": str(key)}
    # A saved model gives the tuple back as a list (of slices: not fancy indexing).
    items = list(key) if isinstance(key, (tuple, list)) else [key]
    if sum(k is Ellipsis for k in items) > 1 or \
            not all(k is Ellipsis or isinstance(k, slice) for k in items):
        return out
    if Ellipsis in items:
        i = items.index(Ellipsis)
        items[i:i + 1] = [slice(None)] * (len(shape) - len(items) + 1)
    items += [slice(None)] * (len(shape) - len(items))
    if len(items) != len(shape) or any(
            not isinstance(v, (int, type(None))) for k in items
            for v in (k.start, k.stop, k.step)):
        return out
    out["getitem"] = tuple(k.indices(int(d)) for k, d in zip(items, shape))
    return out


# ------------------------------------------------- layers that take tensors in named roles

# A reader gets one call and returns the order of its inputs for the IR (indices into
# `call.inputs`) and attrs to add. Keras records a call's tensors flattened in argument
# order, keyword tensors sorted by keyword (`mha(query=q, value=v, key=k)` is recorded
# k, q, v), so a layer whose cost depends on which input is which reads its call here
# and records the roles (attrs["input_roles"]).
_CallReader = Callable[[Call], "tuple[list[int], dict[str, Any]]"]
_CALL_READERS: dict[str, _CallReader] = {}


def _reads_call(*op_types: str) -> Callable[[_CallReader], _CallReader]:
    def deco(fn: _CallReader) -> _CallReader:
        for t in op_types:
            if t in _CALL_READERS:
                raise ValueError(f"call reader for {t!r} registered twice")
            _CALL_READERS[t] = fn
        return fn

    return deco


def _layer(call: Call) -> str:
    return f"layer {call.scope + call.operation.name!r} ({type(call.operation).__name__})"


@_reads_call("MultiHeadAttention", "GatedMultiHeadAttention")
def _attention_call(call: Call) -> tuple[list[int], dict[str, Any]]:
    """Inputs in ATTENTION_ROLES order (key and the masks only when given); roles of
    the query/value/key tensors that carry a Keras mask (an Embedding(mask_zero=True)
    before them: the layer applies it) in attrs["keras_masks"]; use_causal_mask and
    return_attention_scores when set, however they were passed."""
    arguments = call.bound_arguments()
    order: list[int] = []
    roles: list[str] = []
    for role in ATTENTION_ROLES:
        value = arguments.get(role)
        if value is None:
            continue
        i = call.input_index(value, exclude=order)
        if i is None:
            raise UnsupportedModelError(
                f"{_layer(call)}: its {role!r} argument is a {type(value).__name__}, not "
                "a tensor of the model, so its shape is not in the graph. Pass it as a "
                "keras.Input or a layer's output (for a causal mask: use_causal_mask=True)."
            )
        order.append(i)
        roles.append(role)
    if "query" not in roles or "value" not in roles:
        raise UnsupportedModelError(
            f"{_layer(call)}: called without a query or value tensor (got "
            f"{', '.join(roles) or 'none'}); call it as layer(query, value, key=None, "
            "attention_mask=None).")
    extra = [i for i in range(len(call.inputs)) if i not in order]
    if extra:
        raise UnsupportedModelError(
            f"{_layer(call)}: input tensor {getattr(call.inputs[extra[0]], 'name', '?')!r} "
            "is passed in an argument the cost model does not know; costed are "
            f"{', '.join(ATTENTION_ROLES)}.")
    masks = tuple(r for r, i in zip(roles, order)
                  if r in ("query", "value", "key") and keras_mask_of(call.inputs[i]) is not None)
    attrs: dict[str, Any] = {"input_roles": tuple(roles)}
    if masks:
        attrs["keras_masks"] = masks
    for flag in ("use_causal_mask", "return_attention_scores"):
        if arguments.get(flag):
            attrs[flag] = True
    return order, attrs


def _op_type(operation: Any) -> str:
    # keras.ops calls in a functional model (e.g. `x + 3.0`) are Operations, not
    # layers; their class names clash with layers (ops.numpy.Add vs layers.Add).
    name = type(operation).__name__
    return f"ops.{name}" if is_ops_operation(operation) else name


class _Builder:
    def __init__(self, batch_size: int, recompute: bool):
        self.batch_size = batch_size
        self.recompute = recompute
        self.ops: list[Op] = []
        self.unique = UniqueNames()
        self.first_call: dict[int, str] = {}  # id(layer) -> op name of its first call

    def shape(self, spec: Any, op_name: str) -> tuple:
        dims = list(spec.shape)
        if dims and dims[0] is None:
            dims[0] = self.batch_size
        if any(d is None for d in dims):
            raise InputSpecError(
                f"op {op_name!r} has an unknown dimension in shape {tuple(spec.shape)}; "
                "the model accepts variable input sizes. Pass a fixed size with "
                "--input-shape H,W,C (or input_shape= in the API)."
            )
        return tuple(int(d) for d in dims)

    def visit(self, call: Call, values: list) -> list:
        """The Op of one call (a `keras_walker.walk` visitor); values are (ref, spec)."""
        operation = call.operation
        in_refs = [ref for ref, _ in values]
        in_specs = [spec for _, spec in values]
        if self.recompute:
            import keras

            args, kwargs = call.fill_in(in_specs)
            if args:
                check_input(operation, args[0])
            out_specs = keras.tree.flatten(operation.compute_output_spec(*args, **kwargs))
        else:
            out_specs = list(call.outputs)
        name = self.unique(call.scope + operation.name)
        extra_attrs: dict[str, Any] = {}
        reader = _CALL_READERS.get(_op_type(operation))
        if reader is not None:
            order, extra_attrs = reader(call)
            in_refs = [in_refs[i] for i in order]
            in_specs = [in_specs[i] for i in order]
        op = Op(
            name=name,
            type=_op_type(operation),
            inputs=in_refs,
            input_shapes=[self.shape(s, name) for s in in_specs],
            output_shapes=[self.shape(s, name) for s in out_specs],
            attrs=_attrs(operation, dict(call.kwargs)),
            dtype=str(out_specs[0].dtype) if out_specs else "float32",
        )
        # what each input is read at (an Embedding's int indices, a mask's bools)
        op.attrs["input_dtypes"] = tuple(str(s.dtype) for s in in_specs)
        # Scalars/arrays beside the tensors (`x + 3.0`); a list of tensors (the one
        # argument of Add/Concatenate layers) is not a constant.
        constants = [a for a in call.args
                     if not hasattr(a, "shape") and not isinstance(a, (list, tuple, dict))]
        if constants:
            op.attrs["constant_operands"] = len(constants)
        if op.type == "ops.GetItem" and len(call.args) > 1:
            op.attrs.update(_getitem_attrs(call.args[1], op.input_shapes[0]))
        op.attrs.update(extra_attrs)
        if id(operation) in self.first_call:  # a shared layer: weights counted once
            op.attrs["shared_from"] = self.first_call[id(operation)]
        else:
            self.first_call[id(operation)] = name
        self.ops.append(op)
        return [(name if i == 0 else f"{name}:{i}", spec) for i, spec in enumerate(out_specs)]


def from_keras(
    model: Any,
    *,
    batch_size: int = 1,
    input_shape: Sequence[int] | None = None,
) -> Graph:
    """Graph of a Keras 3 Functional/Sequential model (nested models flattened).

    `input_shape` (without batch) overrides the model's input size, e.g. to analyze a
    fully convolutional model at 160x160; single-input models only.
    """
    import keras

    if batch_size < 1:
        raise InputSpecError(f"batch size must be >= 1, got {batch_size}")
    if not isinstance(model, keras.Model):
        raise UnsupportedModelError(
            f"expected a keras.Model, got {type(model).__name__}; load the model with "
            "keras.saving.load_model or build it with the Functional API"
        )
    if isinstance(model, keras.Sequential) and not model.built and input_shape:
        model.build((None, *input_shape))
    function = require_functional(model, f"model {model.name!r}")
    builder = _Builder(batch_size, recompute=input_shape is not None)
    in_refs, in_specs = [], []
    for x in function.inputs:
        layer = producer_of(x)
        name = builder.unique(layer.name if layer is not None else x.name)
        if input_shape is not None:
            if len(function.inputs) != 1:
                raise InputSpecError(
                    f"--input-shape applies to single-input models; model "
                    f"{model.name!r} has {len(function.inputs)} inputs"
                )
            if len(input_shape) != len(x.shape) - 1:
                raise InputSpecError(
                    f"--input-shape {','.join(map(str, input_shape))} has "
                    f"{len(input_shape)} dims but model {model.name!r} expects inputs of "
                    f"shape {tuple(x.shape)[1:]} ({len(x.shape) - 1} dims without batch)"
                )
            spec = keras.KerasTensor((batch_size, *input_shape), dtype=x.dtype)
        else:
            spec = x
        shape = builder.shape(spec, name)
        builder.ops.append(
            Op(name=name, type="InputLayer", inputs=[], input_shapes=[],
               output_shapes=[shape], attrs={}, dtype=str(x.dtype))
        )
        in_refs.append(name)
        in_specs.append(spec)
    try:
        outs = walk(function, list(zip(in_refs, in_specs)), builder.visit)
    except (ValueError, TypeError) as exc:
        if input_shape is None:
            raise
        raise InputSpecError(
            f"model {model.name!r} cannot run at input shape {tuple(input_shape)}: {exc}"
        ) from exc
    outputs = [ref.rsplit(":", 1)[0] for ref, _ in outs]
    return Graph(
        name=model.name,
        ops=builder.ops,
        inputs=in_refs,
        outputs=outputs,
        batch_size=batch_size,
    )
