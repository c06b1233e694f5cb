"""Build the graph IR from a Keras 3 Functional or Sequential model.

Walks the functional graph node by node (deepest first, i.e. topological order) and
flattens nested Functional/Sequential models into their layers, so that a backbone
wrapped inside a transfer-learning model is analyzed layer by layer. Imports Keras.
"""

from __future__ import annotations

from typing import Any, Sequence

from latency_lab.errors import InputSpecError, UnsupportedModelError
from latency_lab.graph import Graph, Op, UniqueNames

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
)


def _activation_name(value: Any) -> str | None:
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
    if "activation" in cfg:
        attrs["activation"] = _activation_name(cfg["activation"])
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


def _op_type(operation: Any) -> str:
    module = type(operation).__module__
    name = type(operation).__name__
    # keras.ops calls in a functional model (e.g. `x + 3.0`) are Operations, not
    # layers; their class names clash with layers (ops.numpy.Add vs layers.Add).
    if module.startswith("keras.src.ops.") or module.startswith("keras.ops"):
        return f"ops.{name}"
    return name


def _is_model(operation: Any) -> bool:
    import keras

    return isinstance(operation, keras.Model)


def _functional_of(model: Any, where: str) -> Any:
    """The Functional graph behind a model, or a clear error for subclassed ones."""
    import keras

    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        if functional is None:
            raise UnsupportedModelError(
                f"{where}: Sequential model {model.name!r} is not built, so its input "
                "shape is unknown. Start it with keras.Input(shape=...) or call "
                "model.build((None, H, W, C)) before saving, or pass --input-shape."
            )
        return functional
    if hasattr(model, "_nodes_by_depth"):
        return model
    raise UnsupportedModelError(
        f"{where}: model {model.name!r} ({type(model).__name__}) is a subclassed Keras "
        "model; its graph is hidden inside Python code in call(), so its layers cannot "
        "be traced. Rebuild it with the Functional API (keras.Model(inputs, outputs)) "
        "or keras.Sequential."
    )


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

    def walk(self, function: Any, in_refs: list[str], in_specs: list[Any], prefix: str):
        """Add the ops of `function`; return (refs, specs) of its outputs."""
        ref_of: dict[int, str] = {}
        spec_of: dict[int, Any] = {}
        for x, ref, spec in zip(function.inputs, in_refs, in_specs):
            ref_of[id(x)] = ref
            spec_of[id(x)] = spec
        for depth in sorted(function._nodes_by_depth, reverse=True):
            for node in function._nodes_by_depth[depth]:
                if node.is_input or node.operation is None:
                    continue
                self._node(node, ref_of, spec_of, prefix)
        outs = list(function.outputs)
        missing = [x for x in outs if id(x) not in ref_of]
        if missing:
            raise UnsupportedModelError(
                f"model {function.name!r}: output {missing[0].name!r} is not connected "
                "to the model inputs"
            )
        return [ref_of[id(x)] for x in outs], [spec_of[id(x)] for x in outs]

    def _node(self, node: Any, ref_of: dict, spec_of: dict, prefix: str) -> None:
        operation = node.operation
        inputs = list(node.input_tensors)
        unknown = [x for x in inputs if id(x) not in ref_of]
        if unknown:
            return  # belongs to a branch not reachable from this function's inputs
        in_refs = [ref_of[id(x)] for x in inputs]
        in_specs = [spec_of[id(x)] for x in inputs]
        if _is_model(operation):
            where = f"nested model {prefix}{operation.name!r}"
            inner = _functional_of(operation, where)
            flat_specs = in_specs
            out_refs, out_specs = self.walk(
                inner, in_refs, flat_specs, f"{prefix}{operation.name}/"
            )
            for x, ref, spec in zip(node.outputs, out_refs, out_specs):
                ref_of[id(x)] = ref
                spec_of[id(x)] = spec
            return
        if self.recompute:
            import keras

            filled = {id(x): spec_of[id(x)] for x in inputs}
            args, kwargs = node.arguments.fill_in(filled)
            # compute_output_spec alone accepts e.g. a wider input for a built Dense;
            # the layer's input_spec (what __call__ checks) refuses it.
            check = getattr(operation, "_assert_input_compatibility", None)
            if check is not None and args:
                check(args[0])
            out_specs = keras.tree.flatten(operation.compute_output_spec(*args, **kwargs))
        else:
            out_specs = list(node.outputs)
        name = self.unique(prefix + operation.name)
        op = Op(
            name=name,
            type=_op_type(operation),
            inputs=in_refs,
            input_shapes=[self.shape(s, name) for s in in_specs],
            output_shapes=[self.shape(s, name) for s in out_specs],
            attrs=_attrs(operation, dict(node.arguments.kwargs)),
            dtype=str(out_specs[0].dtype) if out_specs else "float32",
        )
        # Scalars/arrays beside the tensors (`x + 3.0`); a list of tensors (the one
        # argument of Add/Concatenate layers) is not a constant.
        constants = [a for a in node.arguments.args
                     if not hasattr(a, "shape") and not isinstance(a, (list, tuple, dict))]
        if constants:
            op.attrs["constant_operands"] = len(constants)
        if id(operation) in self.first_call:  # a shared layer: weights counted once
            op.attrs["shared_from"] = self.first_call[id(operation)]
        else:
            self.first_call[id(operation)] = name
        self.ops.append(op)
        for i, (x, spec) in enumerate(zip(node.outputs, out_specs)):
            ref_of[id(x)] = name if i == 0 else f"{name}:{i}"
            spec_of[id(x)] = spec


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
    function = _functional_of(model, f"model {model.name!r}")
    builder = _Builder(batch_size, recompute=input_shape is not None)
    in_refs, in_specs = [], []
    for x in function.inputs:
        layer = x._keras_history.operation
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
        out_refs, _ = builder.walk(function, in_refs, in_specs, "")
    except (ValueError, TypeError) as exc:
        if input_shape is None:
            raise
        raise InputSpecError(
            f"model {model.name!r} cannot run at input shape {tuple(input_shape)}: {exc}"
        ) from exc
    outputs = [ref.rsplit(":", 1)[0] for ref in out_refs]
    return Graph(
        name=model.name,
        ops=builder.ops,
        inputs=in_refs,
        outputs=outputs,
        batch_size=batch_size,
    )
