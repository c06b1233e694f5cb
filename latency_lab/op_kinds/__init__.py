"""Op kinds: one module per kind of kernel the profiler times (see `base.OpKind`), and
the front door to their registries.

    from latency_lab import op_kinds
    op_kinds.get("conv2d").work(config)          # FLOPs/bytes of a sample
    op_kinds.layer_configs(op)                   # a Keras layer (IR op) -> samples
    op_kinds.kernel_configs(kernel)              # a LiteRT kernel -> samples

Where a layer or kernel is not timed by a sample of its own, the tables here say how
it is charged: FOLDED_LAYERS and FREE_KERNELS cost nothing, ROOFLINE_KERNELS are
charged by the roofline as elementwise work.
"""

from __future__ import annotations

from typing import Any

from latency_lab.errors import UnsupportedOpError
from latency_lab.graph import Op
from latency_lab.op_kinds import (activation, auxiliary, batch_matmul, concat,  # noqa: F401
                                  conv2d, dense, depthwise, elementwise, gather, layout, pad,
                                  pool, reduce, resize, softmax, transpose_conv, unary)
from latency_lab.op_kinds.base import (CHANNEL_KEYS, KERAS_LAYERS, LITERT_KERNELS, Config,
                                       OpKind, get, kinds, names, same_out)

__all__ = ["OpKind", "Config", "CHANNEL_KEYS", "get", "kinds", "names", "same_out",
           "work", "weight_bytes", "moved_bytes", "op_class", "table_kinds", "AUXILIARY",
           "layer_configs", "kernel_configs", "FOLDED_LAYERS", "FREE_KERNELS",
           "ROOFLINE_KERNELS", "KERAS_LAYERS", "LITERT_KERNELS"]

# Kinds that characterize the device (overheads, memory hierarchy), not the table.
AUXILIARY = frozenset(k.name for k in kinds() if k.auxiliary)


def table_kinds() -> list[OpKind]:
    """The kinds whose samples fill the lookup table."""
    return [k for k in kinds() if not k.auxiliary]


def work(op: str, config: Config):
    """FLOPs and bytes of one sample of op kind `op`, from the cost registry."""
    return get(op).work(config)


def weight_bytes(op: str, config: Config) -> float:
    return get(op).weight_bytes(config)


def moved_bytes(op: str, config: Config, work=None) -> float:
    """Bytes the runtime moves for one sample: the cost registry's count (`work`, given
    when the caller has it) less what it never reads (`OpKind.unread_bytes`: input a
    stride skips). Every roofline over op kinds uses it; `analyze` keeps the
    registry's whole-tensor count."""
    kind = get(op)
    return (work or kind.work(config)).bytes_total - kind.unread_bytes(config)


def op_class(op: str, config: Config) -> str:
    return get(op).op_class(config)


# ------------------------------------------------------------------ Keras layers

# Layers that cost nothing at runtime once the converter has folded/fused them, or
# that are views. Their FLOPs still appear in `analyze`. (BatchNormalization is not
# here: LiteRT folds it into the conv before any kernel exists, but the keras runtime
# runs it, `op_kinds.elementwise`.)
FOLDED_LAYERS = frozenset({
    "InputLayer", "Dropout", "Reshape", "Flatten",
    "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "ActivityRegularization",
    "Identity", "Rescaling", "Normalization"})


def layer_configs(op: Op) -> list[tuple[str, Config]]:
    """[(op kind, config)] that together time the Keras layer `op` (an IR op); empty
    when it is free at runtime (`FOLDED_LAYERS`, an activation fused into its producer)
    or has no op kind."""
    if op.type in FOLDED_LAYERS or not op.input_shapes:
        return []
    mapping = KERAS_LAYERS.get(op.type)
    return mapping(op) if mapping is not None else []


# ----------------------------------------------------------------- LiteRT kernels

# Kernels that cost (almost) nothing: metadata changes or no-ops in XNNPACK.
FREE_KERNELS = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE", "DELEGATE"})

# Real work with no op kind of its own: charged through the roofline as an elementwise
# op over its output (and read inputs). GATHER, SELECT and SELECT_V2 have op kinds for
# some of their forms (a gather of rows, integer index arithmetic: `op_kinds.gather`);
# their other forms are charged here.
ROOFLINE_KERNELS = frozenset({
    "DIV", "MAXIMUM", "MINIMUM", "PRELU", "SUM", "REDUCE_MAX",
    "MIRROR_PAD", "PADV2", "PACK", "UNPACK", "TILE", "GATHER",
    "QUANTIZE", "DEQUANTIZE", "POW", "SELECT",
    "SELECT_V2", "CAST", "LOG_SOFTMAX",
    # padding masks read by an attention (Embedding(mask_zero=True), an attention_mask
    # from keras.ops.not_equal(ids, 0), or both): comparisons of ids and the masks
    # combined, small boolean tensors (tokens x tokens). LESS has an op kind (integer
    # index arithmetic, op_kinds.gather); its other forms and the rest come here.
    "NOT_EQUAL", "EQUAL", "GREATER", "GREATER_EQUAL", "LESS_EQUAL",
    "LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT"})


def kernel_configs(kernel: Any) -> list[tuple[str, Config]] | None:
    """[(op kind, config)] that time a LiteRT kernel; [] when it is free; None when it
    is charged through the roofline (listed in ROOFLINE_KERNELS, and not taken by its
    mapping: a mapping returns None for the forms of a kernel it has no sample for).
    An unknown kernel is an error naming the op."""
    if kernel.op in FREE_KERNELS:
        return []
    fn = LITERT_KERNELS.get(kernel.op)
    if fn is not None:
        cfgs = fn(kernel)
        if cfgs is not None:
            return cfgs
    if kernel.op in ROOFLINE_KERNELS:
        return None
    if fn is not None:
        raise UnsupportedOpError(
            f"LiteRT kernel {kernel.op} (layer {kernel.layer!r}, {kernel.describe()}, "
            f"dtypes {list(getattr(kernel, 'input_dtypes', []) or ['float32'])}) has no "
            f"latency model: its op kind mapping ({fn.__module__}) times other forms of "
            f"{kernel.op} only. Add this form to that mapping, or list {kernel.op} in "
            "op_kinds.ROOFLINE_KERNELS to charge it through the roofline.")
    raise UnsupportedOpError(
        f"LiteRT kernel {kernel.op} (layer {kernel.layer!r}, {kernel.describe()}) has no "
        f"latency model. Timed kernels: {', '.join(sorted(LITERT_KERNELS))}; "
        f"roofline-costed: {', '.join(sorted(ROOFLINE_KERNELS))}. Add an op kind in "
        "latency_lab/op_kinds/ (or list the kernel in op_kinds.ROOFLINE_KERNELS)."
    )
