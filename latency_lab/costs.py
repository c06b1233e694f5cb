"""The cost registry: op type -> pure function giving FLOPs, params and bytes moved.

Every function takes the op and the *alive* channel counts of its inputs and output,
so the same arithmetic serves `analyze` (full counts) and the regularizers (counts of
surviving channels, possibly tensors: the functions use only + - * / on them).

Conventions (see DESIGN.md; they match MorphNet and TensorFlow's profiler):
- FLOPs are 2 per multiply-add. Conv/Dense/Depthwise FLOPs count the multiply-adds of
  the kernel only; a fused bias or activation is not added (as MorphNet and
  `tf.compat.v1.profiler` count Conv2D / MatMul / DepthwiseConv2dNative).
- Standalone elementwise and normalization layers report their own FLOPs with the
  per-element counts in `ACTIVATION_FLOPS` and in each function's docstring.
- Params are all weights, trainable or not (equal to `count_params()`); bytes_read is
  input activations plus weights, bytes_written is the output, both dtype-aware.
- Pure views (Reshape, Flatten, Dropout at inference) move no bytes; copies (padding,
  cropping, concat) read and write theirs.
- A layer that runs several kernels (MultiHeadAttention) is the sum of its steps
  (`attention_parts`), its bytes those of the unfused kernel sequence.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

from latency_lab.errors import InvalidArgumentError, UnsupportedOpError
from latency_lab.graph import (ATTENTION_MASK_ROLES, ATTENTION_ROLES, Op, dtype_bytes,
                               positions)

__all__ = ["ACTIVATION_FLOPS", "DENSE", "DEPTHWISE", "ELEMENTWISE", "DATA", "OpCost",
           "ZERO", "CostFn", "CostRule", "register", "supported_types", "is_supported",
           "rule", "op_class", "cost_of", "how_to_register", "activation_name",
           "activation_flops_per_element", "RESIZE_TAPS", "resize_cost", "UNSUPPORTED_HINTS",
           "ATTENTION_MATMUL_PARTS", "attention_parts", "attention_cost", "embedding_cost"]

# Roofline classes an op's compute time is charged to (profile "compute_flops_per_s").
DENSE, DEPTHWISE, ELEMENTWISE, DATA = "dense", "depthwise", "elementwise", "data"

# FLOPs per output element of an activation function (approximate op counts:
# relu = max, relu6 = max+min, sigmoid = exp+add+div+neg, swish = sigmoid+mul, ...).
ACTIVATION_FLOPS: dict[str, float] = {
    "linear": 0,
    "relu": 1,
    "relu6": 2,
    "leaky_relu": 2,
    "elu": 3,
    "selu": 4,
    "celu": 4,
    "sigmoid": 4,
    "hard_sigmoid": 3,
    "silu": 5,
    "swish": 5,
    "hard_silu": 4,
    "hard_swish": 4,
    "gelu": 8,  # 0.5 x (1 + erf(x / sqrt 2)), erf counted like tanh
    "gelu_approximate": 12,  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    "tanh": 4,
    "softmax": 5,
    "log_softmax": 5,
    "softplus": 3,
    "softsign": 3,
    "mish": 8,
    "exponential": 1,
    "relu_max": 2,
}


@dataclass(frozen=True)
class OpCost:
    flops: float
    params: float
    bytes_read: float
    bytes_written: float

    def __add__(self, other: "OpCost") -> "OpCost":
        return OpCost(
            self.flops + other.flops,
            self.params + other.params,
            self.bytes_read + other.bytes_read,
            self.bytes_written + other.bytes_written,
        )

    @property
    def bytes_total(self) -> float:
        return self.bytes_read + self.bytes_written

    def to_dict(self) -> dict:
        return {k: _num(v) for k, v in asdict(self).items()}


ZERO = OpCost(0, 0, 0, 0)


def _num(v: float) -> float | int:
    f = float(v)
    return int(f) if f.is_integer() else f


CostFn = Callable[[Op, Sequence[float], "float | None"], OpCost]


@dataclass(frozen=True)
class CostRule:
    """`fn` and the roofline class; `heads`: `fn` takes one more alive count after the
    inputs', the alive heads (MultiHeadAttention)."""

    fn: CostFn
    op_class: str
    heads: bool = False


_REGISTRY: dict[str, CostRule] = {}


def register(*op_types: str, op_class: str, heads: bool = False) -> Callable[[CostFn], CostFn]:
    """Decorator: `fn(op, alive_in, alive_out)` is the cost of these op types (with
    `heads`, `alive_in` may end with the alive head count)."""

    def deco(fn: CostFn) -> CostFn:
        for t in op_types:  # check all first: a failed call registers nothing
            if t in _REGISTRY:
                raise ValueError(f"cost for op type {t!r} registered twice")
        for t in op_types:
            _REGISTRY[t] = CostRule(fn, op_class, heads)
        return fn

    return deco


def supported_types() -> list[str]:
    return sorted(_REGISTRY)


def is_supported(op_type: str) -> bool:
    return op_type in _REGISTRY


# Layer types that can never have a cost function, with what to do instead.
UNSUPPORTED_HINTS = {
    "Lambda": "runs Python code whose work cannot be read from the graph. Write it with "
              "keras.ops calls (x[..., :c], keras.ops.split, keras.ops.transpose: each is "
              "costed), or predict with a LiteRT profile, which costs the kernels the "
              "Lambda converts to; --allow-unknown counts it as zero.",
}


def how_to_register(op_type: str) -> str:
    """How a user gives `op_type` (typically their own layer class) a cost: the same
    words wherever a missing cost stops a command."""
    return (f"Register one in a module you pass with --import MODULE (Python: import it "
            f"first): decorate a function (op, alive_in, alive_out) -> "
            f"latency_lab.costs.OpCost with @latency_lab.costs.register({op_type!r}, "
            "op_class=latency_lab.costs.ELEMENTWISE) (op_class: the roofline ceiling its "
            "FLOPs run at, DENSE, DEPTHWISE, ELEMENTWISE or DATA)")


def rule(op_type: str, *, layer: str | None = None) -> CostRule:
    try:
        return _REGISTRY[op_type]
    except KeyError:
        where = f"layer {layer!r} of type {op_type!r}" if layer else f"op type {op_type!r}"
        if op_type in UNSUPPORTED_HINTS:
            raise UnsupportedOpError(f"{where} {UNSUPPORTED_HINTS[op_type]}") from None
        raise UnsupportedOpError(
            f"{where} has no cost function. {how_to_register(op_type)}, or pass "
            "--allow-unknown to count it as zero. Supported types: "
            f"{', '.join(supported_types())}."
        ) from None


def op_class(op_type: str) -> str:
    return rule(op_type).op_class


def cost_of(
    op: Op,
    alive_in: float | Sequence[float] | None = None,
    alive_out: float | None = None,
) -> OpCost:
    """Cost of `op` with `alive_in` channels per input (one number for all inputs, a
    sequence per input, or None for full; for an op whose rule counts heads, the
    sequence may end with the alive heads) and `alive_out` output channels (None: what
    the op produces from alive_in)."""
    r = rule(op.type, layer=op.name)
    full = [_channels(s, op) for s in op.input_shapes]
    if alive_in is None:
        a_in = full
    elif isinstance(alive_in, (list, tuple)):
        if len(alive_in) != len(full) and not (r.heads and len(alive_in) == len(full) + 1):
            raise InvalidArgumentError(
                f"op {op.name!r}: {len(alive_in)} alive counts for {len(full)} inputs"
                + (" (and its heads)" if r.heads else ""))
        a_in = list(alive_in)
    else:
        a_in = [alive_in] * len(full)
    cost = r.fn(op, a_in, alive_out)
    if op.attrs.get("shared_from"):
        # A second call of a shared layer re-reads the weights but owns none of them.
        cost = OpCost(cost.flops, 0, cost.bytes_read, cost.bytes_written)
    return cost


# --------------------------------------------------------------------------- helpers


def _axis(op: Op) -> int:
    return op.channel_axis


def _channels(shape: Sequence[int], op: Op) -> int:
    return int(shape[_axis(op)]) if len(shape) >= 2 else 1


def _pos(shape: Sequence[int], op: Op) -> int:
    return positions(tuple(shape), _axis(op))


def _act_bytes(op: Op) -> int:
    return dtype_bytes(op.dtype)


def _input_dtype_bytes(op: Op, i: int) -> int:
    """Bytes per element of input i: its own dtype (int indices, bool masks), except a
    float input of an op computing in floats, read at the op's dtype (under mixed
    precision Keras autocasts it)."""
    dtypes = op.attrs.get("input_dtypes")
    if not dtypes or (_is_float(dtypes[i]) and _is_float(op.dtype)):
        return _act_bytes(op)
    return dtype_bytes(dtypes[i])


def _is_float(dtype: str) -> bool:
    return "float" in str(dtype)


def _w_bytes(op: Op) -> int:
    return dtype_bytes(op.attrs.get("weight_dtype", op.dtype))


def _kernel_area(op: Op) -> int:
    return int(math.prod(op.attrs.get("kernel_size", (1,))))


def _bias(op: Op) -> int:
    return 1 if op.attrs.get("use_bias", True) else 0


def _reads(op: Op, a_in: Sequence[float]) -> float:
    """Bytes of all input activations at the alive channel counts, each at its dtype."""
    return sum(_pos(s, op) * a * _input_dtype_bytes(op, i)
               for i, (s, a) in enumerate(zip(op.input_shapes, a_in)))


def _writes(op: Op, a_out: float) -> float:
    return _pos(op.output_shape, op) * a_out * _act_bytes(op)


def _out_or(a_out: float | None, default: float) -> float:
    return default if a_out is None else a_out


def _full_out(op: Op) -> int:
    return _channels(op.output_shape, op)


# ----------------------------------------------------------------- compute-heavy ops


@register("Conv1D", "Conv2D", "Conv3D", op_class=DENSE)
def conv_cost(op: Op, a_in, a_out):
    """2 * out positions * kernel area * A_in/groups * A_out."""
    a_out = _out_or(a_out, _full_out(op))
    groups = int(op.attrs.get("groups", 1))
    k = _kernel_area(op)
    params = k * (a_in[0] / groups) * a_out + _bias(op) * a_out
    flops = 2 * _pos(op.output_shape, op) * k * (a_in[0] / groups) * a_out
    return OpCost(flops, params, _reads(op, a_in) + params * _w_bytes(op), _writes(op, a_out))


@register("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", op_class=DENSE)
def conv_transpose_cost(op: Op, a_in, a_out):
    """Every input position scatters a kernel: 2 * in positions * area * A_in * A_out."""
    a_out = _out_or(a_out, _full_out(op))
    k = _kernel_area(op)
    params = k * a_in[0] * a_out + _bias(op) * a_out
    flops = 2 * _pos(op.input_shapes[0], op) * k * a_in[0] * a_out
    return OpCost(flops, params, _reads(op, a_in) + params * _w_bytes(op), _writes(op, a_out))


@register("DepthwiseConv1D", "DepthwiseConv2D", op_class=DEPTHWISE)
def depthwise_cost(op: Op, a_in, a_out):
    """2 * out positions * kernel area * A * depth_multiplier; output = A * dm."""
    dm = int(op.attrs.get("depth_multiplier", 1))
    a_out = _out_or(a_out, a_in[0] * dm)
    k = _kernel_area(op)
    params = k * a_out + _bias(op) * a_out
    flops = 2 * _pos(op.output_shape, op) * k * a_out
    return OpCost(flops, params, _reads(op, a_in) + params * _w_bytes(op), _writes(op, a_out))


@register("SeparableConv1D", "SeparableConv2D", op_class=DENSE)
def separable_cost(op: Op, a_in, a_out):
    """Depthwise (A_in * dm channels, strided) followed by a 1x1 conv to A_out."""
    dm = int(op.attrs.get("depth_multiplier", 1))
    a_out = _out_or(a_out, _full_out(op))
    k = _kernel_area(op)
    mid = a_in[0] * dm
    pos = _pos(op.output_shape, op)
    params = k * mid + mid * a_out + _bias(op) * a_out
    flops = 2 * pos * k * mid + 2 * pos * mid * a_out
    return OpCost(flops, params, _reads(op, a_in) + params * _w_bytes(op), _writes(op, a_out))


@register("Dense", "EinsumDense", op_class=DENSE)
def dense_cost(op: Op, a_in, a_out):
    """2 * rows * A_in * A_out with rows = product of all non-channel dims (batch
    included): a Dense on a (B, H, W, C) tensor does B*H*W row products."""
    if op.type == "EinsumDense":
        raise UnsupportedOpError(
            f"layer {op.name!r} (EinsumDense): only Dense is costed; rewrite it as Dense"
        )
    a_out = _out_or(a_out, _full_out(op))
    params = a_in[0] * a_out + _bias(op) * a_out
    flops = 2 * _pos(op.input_shapes[0], op) * a_in[0] * a_out
    return OpCost(flops, params, _reads(op, a_in) + params * _w_bytes(op), _writes(op, a_out))


@register("ops.Matmul", op_class=DENSE)
def matmul_cost(op: Op, a_in, a_out):
    """A product of two activations (x @ y: attention's Q.K^T, A.V), no weights:
    2 * (output positions) * K * N, K the shared dimension (x's alive channels), N the
    output's."""
    a_out = _out_or(a_out, _full_out(op))
    flops = 2 * _pos(op.output_shape, op) * a_in[0] * a_out
    return OpCost(flops, 0, _reads(op, a_in), _writes(op, a_out))


# ---------------------------------------------------------------------- attention

# The parts of a MultiHeadAttention that are products (with a weight matrix or of two
# activations); the others are elementwise passes (scale, mask, softmax, gate).
ATTENTION_MATMUL_PARTS = ("query", "key", "value", "gate", "scores", "context", "output")
# Keras 3's MultiHeadAttention takes the query's mask from the query's Keras mask only:
# a query_mask tensor passed to it is an input that does no work.
_UNUSED_ATTENTION_ROLES = ("query_mask",)


def _required(op: Op, key: str):
    value = op.attrs.get(key)
    if value is None:
        raise InvalidArgumentError(
            f"layer {op.name!r} ({op.type}) has no {key!r} attribute, which its cost "
            f"needs; build the op with latency_lab.keras_graph.from_keras, or give "
            f"attrs[{key!r}].")
    return value


def attention_parts(op: Op, a_in: Sequence[float] | None = None,
                    a_out: float | None = None) -> dict[str, OpCost]:
    """The cost of each step of a MultiHeadAttention, as Keras runs it; their sum is
    `attention_cost`. Inputs are named by attrs["input_roles"] (the graph builder
    records them in `graph.ATTENTION_ROLES` order: query, value, then key and the masks
    when given; without the attr the inputs are taken as query, value, key,
    attention_mask); `a_in` holds their alive channels (None: full), and may hold one
    more entry, the alive heads (a regularizer's count; else attrs num_heads); `a_out`
    is the output's. Needs attrs num_heads and key_dim (value_dim: key_dim when absent).

    With Tq = query rows (every non-channel dim, batch included), Tk = the key's
    attention-axis positions, h heads, dk = key_dim, dv = value_dim, S = h * Tq * Tk
    (elements of the attention matrix):
    - query, key, value, output (and gate with use_gate): projections, 2 FLOPs per
      multiply-add, biases not added (as `dense_cost`); they hold all the params.
    - scores: Q.K^T, 2 * S * dk. context: A.V, 2 * S * dv.
    - scale by 1/sqrt(dk): 1 FLOP per element of what Keras scales: the scores when it
      runs the fused `ops.dot_product_attention` (rank-3 inputs, dropout 0, no
      attention scores returned), else the projected query (Tq * h * dk).
    - mask (when any applies: attention_mask, value_mask and key_mask tensors, Keras
      masks on query/value/key, use_causal_mask, sliding_window): 1 select per element
      of S, 1 FLOP per (Tq x Tk) element to merge each further mask source and to
      build each computed one (causal, sliding window). A query_mask tensor is read by
      nothing: Keras takes the query's mask from its Keras mask only.
    - softmax: ACTIVATION_FLOPS["softmax"] per element of S.
    - gate_activation (sigmoid, fused into the gate projection) and gate_multiply.
    - head_gate (regularizers.GatedMultiHeadAttention): 1 multiply per context element.
    Bytes are what the unfused sequence of kernels moves: each projection reads its
    input and its weights and writes its result; every intermediate (projected Q, K,
    V, the attention matrix, the context) is written once by its producer and read by
    each consumer; each elementwise pass over the attention matrix (scale, mask,
    softmax) reads and writes all S elements; mask tensors are read at their dtype.
    Dropout is the identity at inference.
    """
    n = len(op.input_shapes)
    roles = tuple(op.attrs.get("input_roles") or ATTENTION_ROLES[:n])
    if len(roles) != n or "query" not in roles or "value" not in roles:
        raise InvalidArgumentError(
            f"layer {op.name!r} ({op.type}) has inputs {list(roles)} for {n} input "
            "shapes; it needs a query and a value (attrs['input_roles'] names each "
            "input: query, value, key, attention_mask, ...).")
    at = {r: i for i, r in enumerate(roles)}
    if a_in is None:
        a_in = [_channels(s, op) for s in op.input_shapes]
    a_out = _out_or(a_out, _full_out(op))
    # one more entry than inputs: the alive heads (a regularizer's count)
    heads = a_in[n] if len(a_in) > n else int(_required(op, "num_heads"))
    dk = int(_required(op, "key_dim"))
    dv = int(op.attrs.get("value_dim") or dk)
    q_shape, v_shape = op.input_shapes[at["query"]], op.input_shapes[at["value"]]
    rank = len(q_shape)
    axes = op.attrs.get("attention_axes")
    axes = tuple(range(1, len(v_shape) - 1)) if axes is None else tuple(
        axes if isinstance(axes, (tuple, list)) else (axes,))
    tk = math.prod(int(v_shape[int(a) % len(v_shape)]) for a in axes)
    rows_q, rows_kv = _pos(q_shape, op), _pos(v_shape, op)
    d_query, d_value = a_in[at["query"]], a_in[at["value"]]
    d_key = a_in[at["key"]] if "key" in at else d_value
    key_bytes = _input_dtype_bytes(op, at["key"] if "key" in at else at["value"])
    out_row = (_pos(op.output_shape, op) // rows_q) * a_out  # output_shape=(2, 4): 8
    act, w, bias = _act_bytes(op), _w_bytes(op), _bias(op)
    s = heads * rows_q * tk  # attention matrix elements
    grid = rows_q * tk
    q_el, k_el = rows_q * heads * dk, rows_kv * heads * dk
    v_el, ctx_el = rows_kv * heads * dv, rows_q * heads * dv

    def proj(rows, d_in, d_out, in_bytes):
        params = d_in * d_out + bias * d_out
        return OpCost(2 * rows * d_in * d_out, params,
                      rows * d_in * in_bytes + params * w, rows * d_out * act)

    def passes(elems, flops_per_elem, extra_read=0):  # an elementwise read+write pass
        return OpCost(flops_per_elem * elems, 0, elems * act + extra_read, elems * act)

    parts = {
        "query": proj(rows_q, d_query, heads * dk, _input_dtype_bytes(op, at["query"])),
        "key": proj(rows_kv, d_key, heads * dk, key_bytes),
        "value": proj(rows_kv, d_value, heads * dv, _input_dtype_bytes(op, at["value"])),
    }
    fused = (rank == 3 and not float(op.attrs.get("dropout") or 0)
             and not op.attrs.get("return_attention_scores"))
    parts["scale"] = passes(s if fused else q_el, 1)
    parts["scores"] = OpCost(2 * s * dk, 0, (q_el + k_el) * act, s * act)
    tensors = [r for r in ATTENTION_MASK_ROLES if r in at and r not in _UNUSED_ATTENTION_ROLES]
    # an explicit value_mask / key_mask replaces that input's Keras mask
    keras_masks = tuple(r for r in op.attrs.get("keras_masks") or ()
                        if r == "query" or f"{r}_mask" not in at)
    computed = int(bool(op.attrs.get("use_causal_mask"))) + int(
        bool(op.attrs.get("sliding_window")))
    sources = len(tensors) + len(keras_masks) + computed
    if sources:
        mask_read = sum(math.prod(op.input_shapes[at[r]]) * _input_dtype_bytes(op, at[r])
                        for r in tensors)
        mask_read += sum((rows_q if r == "query" else rows_kv) * dtype_bytes("bool")
                         for r in keras_masks)
        mask = passes(s, 1, mask_read)
        parts["mask"] = OpCost(mask.flops + (sources - 1 + computed) * grid, 0,
                               mask.bytes_read, mask.bytes_written)
    parts["softmax"] = passes(s, ACTIVATION_FLOPS["softmax"])
    parts["context"] = OpCost(2 * s * dv, 0, (s + v_el) * act, ctx_el * act)
    if op.attrs.get("use_gate"):
        parts["gate"] = proj(rows_q, d_query, heads * dv, _input_dtype_bytes(op, at["query"]))
        parts["gate_activation"] = OpCost(ACTIVATION_FLOPS["sigmoid"] * ctx_el, 0, 0, 0)
        parts["gate_multiply"] = OpCost(ctx_el, 0, 2 * ctx_el * act, ctx_el * act)
    if op.type == "GatedMultiHeadAttention":  # each head's context times its 0/1 gate
        parts["head_gate"] = OpCost(ctx_el, 0, ctx_el * act, ctx_el * act)
    parts["output"] = proj(rows_q, heads * dv, out_row, act)
    return parts


@register("MultiHeadAttention", "GatedMultiHeadAttention", op_class=DENSE, heads=True)
def attention_cost(op: Op, a_in, a_out):
    """The sum of `attention_parts` (see there for what is counted)."""
    return sum(attention_parts(op, a_in, a_out).values(), ZERO)


# ------------------------------------------------------------------ normalization


@register("BatchNormalization", op_class=ELEMENTWISE)
def batchnorm_cost(op: Op, a_in, a_out):
    """Inference form x * s + t: 2 FLOPs per element. Params: gamma (if scale), beta
    (if center), moving mean and variance."""
    c = a_in[0]
    params = c * (2 + int(bool(op.attrs.get("scale", True))) + int(bool(op.attrs.get("center", True))))
    elems = _pos(op.input_shapes[0], op) * c
    return OpCost(2 * elems, params, _reads(op, a_in) + params * _w_bytes(op), _writes(op, c))


def _normalized_size(op: Op, a_in: float) -> float:
    """Product of the dims over `axis` (channel axis replaced by its alive count)."""
    axis = op.attrs.get("axis", -1)
    axes = axis if isinstance(axis, tuple) else (axis,)
    shape = op.input_shapes[0]
    rank = len(shape)
    ch = _axis(op) % rank
    size: float = 1
    for ax in axes:
        ax = int(ax) % rank
        size = size * (a_in if ax == ch else int(shape[ax]))
    return size


@register("LayerNormalization", op_class=ELEMENTWISE)
def layernorm_cost(op: Op, a_in, a_out):
    """8 FLOPs per element: mean (add), variance (sub, mul, add), normalize (sub, mul),
    scale and shift (mul, add); rsqrt per row is negligible. Params: gamma (scale) and
    beta (center) over the normalized axes; rms_scaling=True keeps gamma only."""
    c = a_in[0]
    n = _normalized_size(op, c)
    rms = bool(op.attrs.get("rms_scaling", False))  # (deprecated) gamma only, always
    gamma = int(rms or bool(op.attrs.get("scale", True)))
    beta = int(not rms and bool(op.attrs.get("center", True)))
    params = n * (gamma + beta)
    elems = _pos(op.input_shapes[0], op) * c
    return OpCost(8 * elems, params, _reads(op, a_in) + params * _w_bytes(op), _writes(op, c))


@register("Normalization", op_class=ELEMENTWISE)
def normalization_cost(op: Op, a_in, a_out):
    """(x - mean) / sqrt(var): 2 FLOPs per element. Params: mean, variance, count
    (none when mean and variance were given as constants: attrs constant_stats)."""
    c = a_in[0]
    n = _normalized_size(op, c)
    constant = bool(op.attrs.get("constant_stats", False))
    params = 0 if constant else 2 * n + 1
    weights_read = 2 * n if constant else params
    elems = _pos(op.input_shapes[0], op) * c
    return OpCost(2 * elems, params, _reads(op, a_in) + weights_read * _w_bytes(op),
                  _writes(op, c))


@register("Rescaling", op_class=ELEMENTWISE)
def rescaling_cost(op: Op, a_in, a_out):
    """x * scale (+ offset when non-zero): 1 or 2 FLOPs per element."""
    c = a_in[0]
    per = 1 + (1 if op.attrs.get("offset", 0) not in (0, 0.0, None) else 0)
    elems = _pos(op.input_shapes[0], op) * c
    return OpCost(per * elems, 0, _reads(op, a_in), _writes(op, c))


# -------------------------------------------------------------------- activations


def activation_name(op: Op) -> str:
    """Canonical activation of an activation layer (ReLU(max_value=6) -> relu6)."""
    t = op.type
    if t == "ReLU":
        mv = op.attrs.get("max_value")
        if op.attrs.get("negative_slope", 0) not in (0, 0.0, None):
            return "leaky_relu"
        if mv is None:
            return "relu"
        return "relu6" if float(mv) == 6.0 else "relu_max"
    fixed = {"LeakyReLU": "leaky_relu", "ELU": "elu", "Softmax": "softmax",
             "PReLU": "leaky_relu", "ops.Sigmoid": "sigmoid", "ops.Relu": "relu",
             "ops.Relu6": "relu6", "ops.HardSigmoid": "hard_sigmoid",
             "ops.Silu": "silu", "ops.HardSilu": "hard_silu", "ops.Gelu": "gelu",
             "ops.Tanh": "tanh", "ops.Softmax": "softmax"}
    if t == "ops.Gelu" and op.attrs.get("approximate"):  # keras.ops.gelu's default
        return "gelu_approximate"
    if t in fixed:
        return fixed[t]
    return str(op.attrs.get("activation") or "linear")


def activation_flops_per_element(name: str, *, layer: str) -> float:
    try:
        return ACTIVATION_FLOPS[name]
    except KeyError:
        raise UnsupportedOpError(
            f"layer {layer!r} uses activation {name!r}, which has no FLOP count. Known "
            f"activations: {', '.join(sorted(ACTIVATION_FLOPS))}. Add it to "
            "latency_lab.costs.ACTIVATION_FLOPS."
        ) from None


@register("Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "PReLU",
          "ops.Sigmoid", "ops.Relu", "ops.Relu6", "ops.HardSigmoid", "ops.Silu",
          "ops.HardSilu", "ops.Gelu", "ops.Tanh", "ops.Softmax", op_class=ELEMENTWISE)
def activation_cost(op: Op, a_in, a_out):
    """Per-element FLOPs from ACTIVATION_FLOPS; PReLU carries one alpha per element
    of its shared axes."""
    c = a_in[0]
    per = activation_flops_per_element(activation_name(op), layer=op.name)
    elems = _pos(op.input_shapes[0], op) * c
    params: float = 0
    if op.type == "PReLU":
        shared = op.attrs.get("shared_axes") or ()
        shape = op.input_shapes[0][1:]
        params = math.prod(1 if (i + 1) in shared else int(d) for i, d in enumerate(shape[:-1])) * c
    return OpCost(per * elems, params, _reads(op, a_in) + params * _w_bytes(op), _writes(op, c))


# ---------------------------------------------------------------- merges and math


_MERGE_FLOPS_PER_INPUT = {"Add": 1, "Subtract": 1, "Multiply": 1, "Maximum": 1, "Minimum": 1}


@register("Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average", op_class=ELEMENTWISE)
def merge_cost(op: Op, a_in, a_out):
    """n inputs combine with n-1 binary ops per output element (Average: n, the
    extra one is the division). Broadcast inputs (squeeze-excite scales) are read
    at their own size."""
    a_out = _out_or(a_out, max(a_in) if all(isinstance(a, (int, float)) for a in a_in) else a_in[0])
    n = len(a_in)
    per = n if op.type == "Average" else n - 1
    elems = _pos(op.output_shape, op) * a_out
    return OpCost(per * elems, 0, _reads(op, a_in), _writes(op, a_out))


@register("ops.Add", "ops.Subtract", "ops.Multiply", "ops.Divide", "ops.TrueDivide",
          "ops.Maximum", "ops.Minimum", "ops.Power", "ops.Equal", "ops.NotEqual",
          "ops.Greater", "ops.GreaterEqual", "ops.Less", "ops.LessEqual", "ops.LogicalAnd",
          "ops.LogicalOr", "ops.LogicalNot", "ops.LogicalXor", op_class=ELEMENTWISE)
def ops_binary_cost(op: Op, a_in, a_out):
    """keras.ops arithmetic, comparisons and logic in a functional graph (`x + 3.0`,
    `x * y`, a padding mask `keras.ops.not_equal(ids, 0)`): one FLOP per output element
    per binary operation (a unary one counts one); inputs read at their dtypes, the
    output written at its own (a comparison's bool)."""
    a_out = _out_or(a_out, a_in[0])
    n_operands = len(a_in) + int(op.attrs.get("constant_operands", 0))
    elems = _pos(op.output_shape, op) * a_out
    return OpCost(max(n_operands - 1, 1) * elems, 0, _reads(op, a_in), _writes(op, a_out))


@register("CustomScaleLayer", op_class=ELEMENTWISE)
def scaled_residual_cost(op: Op, a_in, a_out):
    """InceptionResNetV2's `x + scale * branch`: 2 FLOPs per element."""
    a_out = _out_or(a_out, a_in[0])
    elems = _pos(op.output_shape, op) * a_out
    return OpCost(2 * elems, 0, _reads(op, a_in), _writes(op, a_out))


@register("Concatenate", op_class=DATA)
def concat_cost(op: Op, a_in, a_out):
    """A copy: no FLOPs; along the channel axis the output has sum(A_in) channels."""
    rank = len(op.output_shape)
    axis = int(op.attrs.get("axis", -1)) % rank
    if axis == _axis(op) % rank:
        a_out = _out_or(a_out, sum(a_in))
    else:
        a_out = _out_or(a_out, a_in[0])
    return OpCost(0, 0, _reads(op, a_in), _writes(op, a_out))


# ------------------------------------------------------------------------ pooling


@register("MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
          "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", op_class=ELEMENTWISE)
def pool_cost(op: Op, a_in, a_out):
    """One compare/add per window element per output element (average adds a divide)."""
    c = a_in[0]
    window = int(math.prod(op.attrs.get("pool_size", (1,))))
    per = window + (1 if op.type.startswith("Average") else 0)
    elems = _pos(op.output_shape, op) * c
    return OpCost(per * elems, 0, _reads(op, a_in), _writes(op, c))


@register("GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
          "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
          "AdaptiveMaxPooling1D", "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D",
          "AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D", "AdaptiveAveragePooling3D",
          op_class=ELEMENTWISE)
def global_pool_cost(op: Op, a_in, a_out):
    """One FLOP per input element (plus a divide per output for average); adaptive
    pooling counted the same way (its windows cover the input once)."""
    c = a_in[0]
    out_pos = _pos(op.output_shape, op)  # batch (x 1 x 1 with keepdims)
    extra = out_pos * c if "Average" in op.type else 0
    flops = _pos(op.input_shapes[0], op) * c + extra
    return OpCost(flops, 0, _reads(op, a_in), out_pos * c * _act_bytes(op))


# --------------------------------------------------------------- data movement only


@register("InputLayer", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
          "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
          "ActivityRegularization", "Identity", "Reshape", "Flatten", "ops.Reshape",
          "ops.ExpandDims", "ops.Squeeze",
          "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom",
          "RandomPerspective", "RandomElasticTransform",
          "RandomGaussianBlur", "RandomBrightness", "RandomContrast", "RandomErasing",
          "RandomInvert", "Solarization", op_class=DATA)
def view_cost(op: Op, a_in, a_out):
    """No work at inference: identity (dropouts, noise, random augmentations), or a
    view of the same buffer."""
    return ZERO


@register("Embedding", op_class=DATA)
def embedding_cost(op: Op, a_in, a_out):
    """A gather of one row of A_out weights per index: no FLOPs (mask_zero adds one
    compare per index, and writes the boolean mask). Params: input_dim (vocabulary)
    x A_out. Bytes read: the indices at their dtype (attrs["input_dtypes"]; 4 bytes
    when absent) and the rows gathered (indices x A_out weights), not the whole table;
    written: the output."""
    a_out = _out_or(a_out, _full_out(op))
    vocab = int(_required(op, "input_dim"))
    indices = math.prod(int(d) for d in op.input_shapes[0])
    index_bytes = _input_dtype_bytes(op, 0)
    masked = int(bool(op.attrs.get("mask_zero")))
    return OpCost(masked * indices, vocab * a_out,
                  indices * index_bytes + indices * a_out * _w_bytes(op),
                  indices * a_out * _act_bytes(op) + masked * indices * dtype_bytes("bool"))


@register("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D",
          "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
          "CenterCrop", "RandomCrop", "RepeatVector", op_class=DATA)
def copy_cost(op: Op, a_in, a_out):
    """A copy into a new buffer; bilinear upsampling adds 7 FLOPs per output
    (4 multiplies, 3 adds)."""
    a_out = _out_or(a_out, a_in[0])
    flops = 0
    if op.type.startswith("UpSampling") and op.attrs.get("interpolation", "nearest") != "nearest":
        flops = 7 * _pos(op.output_shape, op) * a_out
    return OpCost(flops, 0, _reads(op, a_in), _writes(op, a_out))


@register("Permute", "ops.Transpose", "ops.Split", op_class=DATA)
def rearrange_cost(op: Op, a_in, a_out):
    """A copy of every input element into a new order (a transpose, e.g. a channel
    shuffle's permute) or into pieces (a split): no FLOPs, the input read and written
    once. The output count is not used: its channel axis may be another axis."""
    return OpCost(0, 0, _reads(op, a_in), _reads(op, a_in))


@register("ops.GetItem", op_class=DATA)
def slice_cost(op: Op, a_in, a_out):
    """``x[..., a:b]``: a strided copy of the selected elements (read and written)."""
    a_out = _out_or(a_out, _full_out(op))
    return OpCost(0, 0, _writes(op, a_out), _writes(op, a_out))


# Taps per output element of each Resizing interpolation (a 2-D kernel).
RESIZE_TAPS = {"nearest": 0, "bilinear": 4, "bicubic": 16, "lanczos3": 36, "lanczos5": 100}


@register("Resizing", op_class=DATA)
def resize_cost(op: Op, a_in, a_out):
    """A resize of each channel: ``2 * taps - 1`` FLOPs per output element (taps
    multiplies, taps - 1 adds; nearest: a copy); "area" one add per input element and
    one divide per output element. The channel count is the input's."""
    c = _out_or(a_out, a_in[0])
    interp = str(op.attrs.get("interpolation", "bilinear"))
    out_elems = _pos(op.output_shape, op) * c
    if interp == "area":
        flops = _pos(op.input_shapes[0], op) * c + out_elems
    elif interp in RESIZE_TAPS:
        taps = RESIZE_TAPS[interp]
        flops = (2 * taps - 1) * out_elems if taps else 0
    else:
        raise UnsupportedOpError(
            f"layer {op.name!r} (Resizing) has interpolation {interp!r}; costed are "
            f"{', '.join(sorted(RESIZE_TAPS))} and 'area'.")
    return OpCost(flops, 0, _reads(op, a_in), _writes(op, c))
