"""Map graph ops to the microbenchmark configurations that time them.

Used twice: to draw lookup-table samples from real networks when profiling, and to
look up the timing of each op when predicting. Conv/depthwise/dense configs describe
the fused kernel LiteRT runs (BatchNormalization folded, ReLU/ReLU6 fused), so those
layers map to nothing on their own; activations that do not fuse (sigmoid, swish,
hard-swish) map to a standalone activation sample.
"""

from __future__ import annotations

import math

from latency_lab.graph import Op

# Layers that cost nothing at runtime once the converter has folded/fused them, or
# that are views. Their FLOPs still appear in `analyze`.
FOLDED = {"BatchNormalization", "InputLayer", "Dropout", "Reshape", "Flatten",
          "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "ActivityRegularization",
          "Identity", "Rescaling", "Normalization"}
FUSED_ACTIVATIONS = {"relu", "relu6", "linear"}


def _square(op: Op, key: str) -> int:
    v = op.attrs.get(key, (1,))
    return int(round(math.sqrt(math.prod(v)))) if len(v) > 1 else int(v[0])


def _hw(shape) -> tuple[int, int]:
    if len(shape) == 4:
        return int(shape[1]), int(shape[2])
    if len(shape) == 3:
        return int(shape[1]), 1
    return 1, 1


def bench_configs_for_op(op: Op) -> list[tuple[str, dict]]:
    """[(bench op name, config)] that together time `op` (empty: free at runtime)."""
    t = op.type
    if t in FOLDED or not op.input_shapes:
        return []
    x = op.input_shapes[0]
    h, w = _hw(x)
    cin = int(x[-1])
    if t in ("Conv2D", "Conv1D"):
        from latency_lab.microbench import conv2d_config

        ks = tuple(op.attrs.get("kernel_size", (1,)))
        kh, kw = (ks[0], ks[-1]) if len(ks) > 1 else (ks[0], 1)
        cfg = conv2d_config(h, w, cin // int(op.attrs.get("groups", 1)),
                            int(op.output_shape[-1]), int(kh), int(kw), _square(op, "strides"))
        return [("conv2d", cfg)] + _activation(op, op.output_shape)
    if t == "Conv2DTranspose":
        return [("transpose_conv", dict(h=h, w=w, cin=cin, cout=int(op.output_shape[-1]),
                                        k=_square(op, "kernel_size"), s=_square(op, "strides")))
                ] + _activation(op, op.output_shape)
    if t in ("DepthwiseConv2D", "DepthwiseConv1D"):
        dw = _depthwise(h, w, cin, int(op.attrs.get("depth_multiplier", 1)),
                        _square(op, "kernel_size"), _square(op, "strides"))
        return [dw] + _activation(op, op.output_shape)
    if t in ("SeparableConv2D", "SeparableConv1D"):
        dm = int(op.attrs.get("depth_multiplier", 1))
        ho, wo = _hw(op.output_shape)
        return [_depthwise(h, w, cin, dm, _square(op, "kernel_size"), _square(op, "strides")),
                ("conv2d", dict(h=ho, w=wo, cin=cin * dm, cout=int(op.output_shape[-1]), k=1, s=1))]
    if t == "Dense":
        rows = math.prod(int(d) for d in x[:-1])
        return [("dense", dict(rows=rows, cin=cin, cout=int(op.output_shape[-1])))] + _activation(op, op.output_shape)
    if t in ("MaxPooling2D", "AveragePooling2D"):
        kind = "max" if t.startswith("Max") else "avg"
        return [("pool", dict(h=h, w=w, c=cin, k=_square(op, "pool_size"),
                              s=_square(op, "strides"), kind=kind))]
    if t in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        return [("global_pool", dict(h=h, w=w, c=cin))]
    if t in ("Add", "Multiply", "Subtract", "Maximum", "Minimum", "ops.Add", "ops.Multiply",
             "ops.Subtract", "CustomScaleLayer"):
        oh, ow = _hw(op.output_shape)
        c = int(op.output_shape[-1])
        kind = "multiply" if "Multiply" in t else "add"
        broadcast = any(math.prod(s) != math.prod(op.output_shape) for s in op.input_shapes)
        n = max(len(op.input_shapes) - 1, 1) if not t.startswith("ops.") else 1
        return [(kind, dict(h=oh, w=ow, c=c, broadcast=broadcast))] * n
    if t == "Concatenate":
        oh, ow = _hw(op.output_shape)
        chans = [int(s[-1]) for s in op.input_shapes]
        first = chans[0]
        out = []
        for c in chans[1:]:  # a k-way concat as k-1 pairwise copies of growing width
            out.append(("concat", dict(h=oh, w=ow, c1=first, c2=c)))
            first += c
        return out
    if t in ("Activation", "ReLU", "LeakyReLU", "ELU", "ops.Sigmoid", "ops.Silu",
             "ops.HardSilu", "ops.Tanh", "ops.Gelu"):
        from latency_lab.costs import activation_name

        return _standalone_activation(activation_name(op), op.output_shape)
    if t == "ZeroPadding2D":
        return [("pad", dict(h=h, w=w, c=cin))]
    if t == "UpSampling2D":
        kind = "nearest" if op.attrs.get("interpolation", "nearest") == "nearest" else "bilinear"
        return [("resize", dict(h=h, w=w, c=cin, scale=_square(op, "size"), kind=kind))]
    return []


def _depthwise(h: int, w: int, cin: int, dm: int, k: int, s: int) -> tuple[str, dict]:
    """A depth multiplier above 1 runs as a kernel of its own (`depthwise_multiplier`)."""
    if dm > 1:
        return ("depthwise_multiplier", dict(h=h, w=w, c=cin, dm=dm, k=k, s=s))
    return ("depthwise", dict(h=h, w=w, c=cin, k=k, s=s))


def _activation(op: Op, shape) -> list[tuple[str, dict]]:
    name = op.attrs.get("activation") or "linear"
    if name in FUSED_ACTIVATIONS:
        return []
    return _standalone_activation(name, shape)


def _standalone_activation(name: str, shape) -> list[tuple[str, dict]]:
    from latency_lab.microbench import ACTIVATIONS

    aliases = {"silu": "swish", "hard_silu": "hard_swish", "hard_sigmoid": "hard_swish"}
    name = aliases.get(name, name)
    # LiteRT fuses ReLU/ReLU6 into the producing conv, add or mul kernel.
    if name in FUSED_ACTIVATIONS or name not in ACTIVATIONS:
        return []
    h, w = _hw(shape)
    return [("activation", dict(h=h, w=w, c=int(shape[-1]), fn=name))]
