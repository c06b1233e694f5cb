"""The kernels LiteRT really runs for a Keras model.

Predicting from the Keras graph would count a BatchNormalization and a ReLU the
converter has folded into the conv. So we convert the model, read the flatbuffer's
operator list (op, shapes, strides, padding, fused activation) and map each kernel
back to the Keras layers named in its output tensor (`model/block_1_expand/...`), so
per-layer figures stay readable. Each kernel is then timed through the op kinds
registered for its builtin op (`op_kinds.kernel_configs`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from latency_lab import costs, op_kinds
from latency_lab.errors import UnsupportedOpError
from latency_lab.keras_walker import producer_of
from latency_lab.kernels.work import WorkItem, WorkItems, unknown

__all__ = ["Kernel", "kernels_from_bytes", "litert_kernels", "all_layers", "output_shape",
           "roofline_work", "litert_items"]


@dataclass
class Kernel:
    index: int
    op: str
    input_shapes: list[tuple]
    output_shapes: list[tuple]
    options: dict = field(default_factory=dict)
    tensor_name: str = ""
    layers: list[str] = field(default_factory=list)
    model_output: int | None = None  # position among the model's outputs it writes
    # Element types of the inputs and outputs ("float32", "int32", "bool", ...); empty
    # when unknown (a kernel made by hand), read as float32.
    input_dtypes: list[str] = field(default_factory=list)
    output_dtypes: list[str] = field(default_factory=list)
    # The values of small constant integer inputs (a reduction's axes, a transpose's
    # permutation), None for the other inputs; empty when unknown.
    input_values: list[tuple | None] = field(default_factory=list)
    # (op, its options) of each kernel that reads this one's first output, in execution
    # order; empty when unknown. XNNPACK folds some kernels into their consumer
    # (`op_kinds.pad`: a zero PAD into the VALID conv after it).
    consumers: list[tuple[str, dict]] = field(default_factory=list)

    @property
    def layer(self) -> str:
        return self.layers[0] if self.layers else self.tensor_name or f"kernel_{self.index}"

    def describe(self) -> str:
        return f"{self.op} {self.input_shapes} -> {self.output_shapes}"


def _builtin_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as sc

    return {v: k for k, v in vars(sc.BuiltinOperator).items() if not k.startswith("_")}


def _tensor_types() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as sc

    return {v: k.lower() for k, v in vars(sc.TensorType).items() if not k.startswith("_")}


# A constant integer input up to this many elements has its values read (`Kernel.input_values`).
_MAX_CONSTANT_VALUES = 16


def _constant_values(model: Any, tensor: Any, dtype: str) -> tuple | None:
    """The values of a small constant integer tensor (its buffer holds them), else None."""
    if dtype not in ("int32", "int64") or tensor.shape is None:
        return None
    if int(np.prod(tensor.shape)) > _MAX_CONSTANT_VALUES:
        return None
    buffers = model.buffers or []
    data = buffers[tensor.buffer].data if 0 < tensor.buffer < len(buffers) else None
    if data is None or len(data) == 0:
        return None
    return tuple(int(v) for v in np.frombuffer(bytes(bytearray(data)), dtype=dtype))


def _options(obj: Any) -> dict:
    if obj is None:
        return {}
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in vars(obj).items()
            if isinstance(v, (int, float, bool, str, bytes))}


def kernels_from_bytes(model_bytes: bytes, layer_types: dict[str, str] | None = None,
                       layer_shapes: dict[str, tuple] | None = None, model_name: str = "",
                       ) -> list[Kernel]:
    """Operators of the main subgraph in execution order; ``layer_types`` ({Keras layer
    name: class name}) lets each kernel be named after the layer it comes from, and
    ``layer_shapes`` ({name: output shape without batch}) and ``model_name`` tell
    `conv` from `conv_1` (`_LayerIndex`)."""
    from ai_edge_litert import schema_py_generated as sc

    model = sc.ModelT.InitFromPackedBuf(model_bytes, 0)
    names = _builtin_names()
    types = _tensor_types()
    sg = model.subgraphs[0]
    out: list[Kernel] = []
    index = _LayerIndex(layer_types or {}, layer_shapes, model_name)
    graph_outputs = [int(t) for t in (sg.outputs if sg.outputs is not None else [])]
    for i, op in enumerate(sg.operators):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = names.get(builtin, f"BUILTIN_{builtin}")
        ins = [sg.tensors[t] for t in op.inputs if t >= 0]
        outs = [sg.tensors[t] for t in op.outputs]
        tname = outs[0].name.decode() if outs and outs[0].name else ""
        in_types = [types.get(int(t.type), f"type_{t.type}") for t in ins]
        out.append(Kernel(
            index=i, op=name,
            input_shapes=[tuple(int(d) for d in t.shape) if t.shape is not None else () for t in ins],
            output_shapes=[tuple(int(d) for d in t.shape) if t.shape is not None else () for t in outs],
            options=_options(op.builtinOptions), tensor_name=tname,
            layers=index.layers_of(tname, name, tuple(int(d) for d in outs[0].shape[1:])
                                   if outs and outs[0].shape is not None else None),
            model_output=next((graph_outputs.index(int(t)) for t in op.outputs
                               if int(t) in graph_outputs), None),
            input_dtypes=in_types,
            output_dtypes=[types.get(int(t.type), f"type_{t.type}") for t in outs],
            input_values=[_constant_values(model, t, d) for t, d in zip(ins, in_types)],
        ))
    readers: dict[int, list[int]] = {}
    for i, op in enumerate(sg.operators):
        for t in op.inputs:
            if t >= 0:
                readers.setdefault(int(t), []).append(i)
    for i, op in enumerate(sg.operators):
        first = int(op.outputs[0]) if len(op.outputs) else -1
        out[i].consumers = [(out[j].op, out[j].options) for j in readers.get(first, [])]
    return out


# Keras layer classes a LiteRT kernel can come from: the kernel is named after such a
# layer first when its fused output tensor names several (conv + BN + activation).
_KERNEL_LAYER_TYPES = {
    "CONV_2D": ("Conv2D", "SeparableConv2D", "Conv1D"),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2D", "SeparableConv2D", "DepthwiseConv1D"),
    "FULLY_CONNECTED": ("Dense", "EinsumDense"),
    "BATCH_MATMUL": ("Dense", "EinsumDense"),
    "TRANSPOSE_CONV": ("Conv2DTranspose",),
    "MEAN": ("GlobalAveragePooling2D", "GlobalAveragePooling1D"),
    "MAX_POOL_2D": ("MaxPooling2D",),
    "AVERAGE_POOL_2D": ("AveragePooling2D",),
    "ADD": ("Add",),
    "SUB": ("Subtract",),
    "MUL": ("Multiply",),
    "MAXIMUM": ("Maximum",),
    "CONCATENATION": ("Concatenate",),
    "REDUCE_MAX": ("GlobalMaxPooling2D", "GlobalMaxPooling1D"),
    "SOFTMAX": ("Softmax", "Activation"),
}
_COMPUTE_TYPES = frozenset({"Conv1D", "Conv2D", "Conv3D", "SeparableConv2D", "DepthwiseConv2D",
                            "Conv2DTranspose", "Dense", "EinsumDense"})


class _LayerIndex:
    """Find Keras layer names inside TFLite tensor names. TensorFlow scopes add
    `_1`-style suffixes (`conv_1` for layer `conv`), so try the name as is, then
    without the suffix. When both are layers (`conv` and `conv_1`, as Keras names
    unnamed layers), the one whose output has the kernel's shape wins; failing that,
    the suffix is taken off when the model's own scope has one (a traced-again model:
    `net_1/conv_1/...` is layer `conv`, `net_1/conv_1_2/...` layer `conv_1`). With
    layer types known, a fused kernel is attributed to the layer whose class produces
    that kernel (the conv of conv + BN + ReLU)."""

    _suffix = re.compile(r"_\d+$")

    def __init__(self, types: dict[str, str], shapes: dict[str, tuple] | None = None,
                 model_name: str = ""):
        self.names = set(types)
        self.types = types
        self.shapes = shapes or {}
        self.model_name = model_name

    def _pick(self, comp: str, retraced: bool, shape: tuple | None) -> str | None:
        cands = [c for c in dict.fromkeys((comp, self._suffix.sub("", comp))) if c in self.names]
        if len(cands) < 2:
            return cands[0] if cands else None
        fits = [c for c in cands if shape is not None and self.shapes.get(c) == shape]
        if len(fits) == 1:
            return fits[0]
        return cands[1] if retraced else cands[0]

    def layers_of(self, tensor_name: str, op: str = "", shape: tuple | None = None) -> list[str]:
        """Layers named in `tensor_name`; `shape`: the kernel's output without batch."""
        found: list[str] = []
        for part in tensor_name.split(";"):
            comps = part.split("/")
            retraced = bool(self.model_name) and comps[0] != self.model_name and (
                self._suffix.sub("", comps[0]) == self.model_name)
            for comp in comps[1:-1] or comps[:1]:
                cand = self._pick(comp, retraced, shape)
                if cand is not None and cand not in found:
                    found.append(cand)
        expected = _KERNEL_LAYER_TYPES.get(op, ())

        def rank(n: str) -> tuple:
            t = self.types[n]
            return (0 if t in expected else 1 if t in _COMPUTE_TYPES else 2, found.index(n))

        return sorted(found, key=rank)


def _attribute_unnamed(kernels: list[Kernel], model: Any) -> None:
    """Kernels whose output tensor names no layer (the model's outputs are renamed
    `Identity`, `StatefulPartitionedCall:0`, ...) are given the layer of the model
    output they write, else the first unclaimed Keras layer of a class that produces
    that kernel and of the same output shape."""
    claimed = {name for k in kernels for name in k.layers}
    _attribute_outputs(kernels, model, claimed)
    _attribute_by_class(kernels, model, claimed)


def _attribute_outputs(kernels: list[Kernel], model: Any, claimed: set[str]) -> None:
    """A kernel writing the model's i-th output comes from the layer of its i-th output
    (the converter keeps their order), when that layer's output has the kernel's shape."""
    outputs = list(getattr(model, "outputs", None) or [])
    for k in kernels:
        if k.layers or k.model_output is None or k.model_output >= len(outputs):
            continue
        layer = getattr(producer_of(outputs[k.model_output]), "name", None)
        shape = tuple(outputs[k.model_output].shape[1:])
        if layer and k.output_shapes and tuple(k.output_shapes[0][1:]) == shape:
            k.layers = [layer]
            claimed.add(layer)


def output_shape(layer: Any) -> tuple | None:
    """A layer's output shape without the batch dimension (None when it has no single
    known one)."""
    try:
        return tuple(int(d) for d in layer.output.shape[1:])
    except (AttributeError, TypeError, ValueError):
        return None


def _attribute_by_class(kernels: list[Kernel], model: Any, claimed: set[str]) -> None:
    """The class-and-shape pass of `_attribute_unnamed`."""
    for k in kernels:
        if k.layers or k.op not in _KERNEL_LAYER_TYPES or not k.output_shapes:
            continue
        shape = tuple(k.output_shapes[0][1:])
        for layer in all_layers(model):
            if layer.name in claimed or type(layer).__name__ not in _KERNEL_LAYER_TYPES[k.op]:
                continue
            if output_shape(layer) == shape:
                k.layers = [layer.name]
                claimed.add(layer.name)
                break


def litert_kernels(model: Any, batch_size: int = 1) -> tuple[list[Kernel], bytes]:
    """Convert a Keras model and return its kernels (and the LiteRT model bytes)."""
    from latency_lab.convert import convert_keras_model

    data = convert_keras_model(model, batch_size=batch_size)
    layers = list(all_layers(model))
    types = {layer.name: type(layer).__name__ for layer in layers}
    kernels = kernels_from_bytes(data, types, {layer.name: output_shape(layer) for layer in layers},
                                 getattr(model, "name", ""))
    _attribute_unnamed(kernels, model)
    return kernels, data


def all_layers(model: Any):
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from all_layers(layer)


def roofline_work(kernel: Kernel) -> tuple[float, float]:
    """(FLOPs, bytes) of a roofline-charged kernel: one FLOP per output element, bytes
    of all float inputs and outputs (4 bytes each)."""
    out_elems = sum(math.prod(s) for s in kernel.output_shapes if s)
    in_elems = sum(math.prod(s) for s in kernel.input_shapes if s)
    return float(out_elems), float(4 * (out_elems + in_elems))


def litert_items(model: Any, *, batch_size: int = 1, input_shape=None,
                 allow_unknown: bool = False, backend: str | None = None) -> WorkItems:
    """The converted model's kernels as work items: timed through their op kinds
    (`op_kinds.kernel_configs`), roofline-charged, or free (left out). A kernel with no
    latency model is an error unless `allow_unknown`."""
    kernels, _ = litert_kernels(model, batch_size=batch_size)
    types = {layer.name: type(layer).__name__ for layer in all_layers(model)}
    items = WorkItems()
    for k in kernels:
        try:
            cfgs = op_kinds.kernel_configs(k)
        except UnsupportedOpError as exc:
            unknown(items, f"LiteRT kernel {k.op} (layer {k.layer!r})", exc, allow_unknown)
            continue
        if cfgs == []:
            continue
        name = k.layer
        ltype = types.get(name, k.op)
        if cfgs is None:
            flops, nbytes = roofline_work(k)
            items.append(WorkItem(name, ltype, None, flops, nbytes, costs.ELEMENTWISE, k.op))
        else:
            items.append(WorkItem(name, ltype, cfgs, kernel=k.op))
    return items
