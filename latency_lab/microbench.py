"""Microbenchmarks: which single ops to time, in which configurations, and what the
timings say about the device (roofline ceilings, per-op overhead).

An op benchmark is described once here, in a registry: its config keys, the IR op
whose cost-registry FLOPs/bytes it has (so a sample's work is computed by the same
functions `analyze` uses), and a builder written with `keras.ops` so every runtime can
compile it (LiteRT converts it with constant weights, which is the form the converter
produces after folding BatchNormalization into the conv and fusing the activation).

Sampling plans draw configurations from the layers of keras.applications families,
because that is where real (and slimmed) networks live, then add random channel
slimming so the regularizer's outputs are covered too.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from latency_lab import costs
from latency_lab.errors import ProfileError
from latency_lab.graph import Op

Config = dict[str, Any]


def same_out(size: int, stride: int) -> int:
    return -(-int(size) // int(stride))


@dataclass(frozen=True)
class BenchOp:
    """One kind of op the profiler times."""

    name: str
    keys: tuple[str, ...]
    to_ir: Callable[[Config], Op]
    build: Callable[[Config, np.random.Generator], tuple[list[tuple], Callable]]

    def input_shapes(self, config: Config) -> list[tuple]:
        return [tuple(s) for s in self.to_ir(config).input_shapes]

    def check(self, config: Config) -> None:
        missing = [k for k in self.keys if k not in config]
        if missing:
            raise ProfileError(
                f"sample of op {self.name!r} lacks config key(s) {missing}; expected "
                f"keys {list(self.keys)}"
            )


BENCH_OPS: dict[str, BenchOp] = {}


def bench_op(name: str, keys: Sequence[str]):
    def deco(pair):
        to_ir, build = pair
        BENCH_OPS[name] = BenchOp(name, tuple(keys), to_ir, build)
        return pair

    return deco


def get_bench_op(name: str) -> BenchOp:
    try:
        return BENCH_OPS[name]
    except KeyError:
        raise ProfileError(
            f"unknown microbenchmark op {name!r}; known: {', '.join(sorted(BENCH_OPS))}"
        ) from None


def work(op: str, config: Config) -> costs.OpCost:
    """FLOPs and bytes of one sample, from the cost registry."""
    return costs.cost_of(get_bench_op(op).to_ir(config))


def weight_bytes(op: str, config: Config) -> float:
    """float32 weight bytes of one sample (what a network streams for it)."""
    return 4.0 * work(op, config).params


def op_class(op: str, config: Config) -> str:
    return costs.op_class(get_bench_op(op).to_ir(config).type)


# --------------------------------------------------------------- op definitions
# Builders return (input shapes, fn(*inputs)) with weights as numpy constants that fn
# turns into tensors inside the traced function.


def _w(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.05).astype(np.float32)


def _conv_ir(c: Config) -> Op:
    ho, wo = same_out(c["h"], c["s"]), same_out(c["w"], c["s"])
    return Op("conv2d", "Conv2D", ["x"], [(1, c["h"], c["w"], c["cin"])],
              [(1, ho, wo, c["cout"])],
              {"kernel_size": (c["k"], c["k"]), "strides": (c["s"], c["s"]), "use_bias": True})


def _conv_build(c: Config, rng):
    import keras

    kernel, bias = _w(rng, c["k"], c["k"], c["cin"], c["cout"]), _w(rng, c["cout"])

    def fn(x):
        y = keras.ops.conv(x, keras.ops.convert_to_tensor(kernel), strides=c["s"], padding="same")
        return keras.ops.relu(y + keras.ops.convert_to_tensor(bias))

    return [(1, c["h"], c["w"], c["cin"])], fn


bench_op("conv2d", ("h", "w", "cin", "cout", "k", "s"))((_conv_ir, _conv_build))


def conv2d_config(h: int, w: int, cin: int, cout: int, kh: int, kw: int, s: int) -> Config:
    """The conv2d sample that times a kh x kw conv. The table's kernels are square, so
    a 1x7 or 7x1 (Inception) is timed as the square kernel of about as many taps,
    k = round(sqrt(kh * kw)), over the input channels that keep its multiply-adds:
    cin * kh * kw / k^2. On the EPYC VM (LiteRT, 1 thread), seven 1x3..7x1 convs
    measured alone were predicted -10..-1% off this way, +18..+30% off (and a 1x5
    -21%) as the k x k conv over all input channels."""
    k = max(1, int(round(math.sqrt(kh * kw))))
    if kh != kw:
        cin = max(1, int(round(cin * kh * kw / k ** 2)))
    return dict(h=h, w=w, cin=cin, cout=cout, k=k, s=s)


def _tconv_ir(c: Config) -> Op:
    return Op("transpose_conv", "Conv2DTranspose", ["x"], [(1, c["h"], c["w"], c["cin"])],
              [(1, c["h"] * c["s"], c["w"] * c["s"], c["cout"])],
              {"kernel_size": (c["k"], c["k"]), "strides": (c["s"], c["s"]), "use_bias": False})


def _tconv_build(c: Config, rng):
    """The TRANSPOSE_CONV kernel, without a bias: a layer's bias is the kernel's fourth
    input (an add per output, little beside the scatter), and a zero one is dropped."""
    import keras

    kernel = _w(rng, c["k"], c["k"], c["cout"], c["cin"])

    def fn(x):
        return keras.ops.conv_transpose(x, keras.ops.convert_to_tensor(kernel),
                                        strides=c["s"], padding="same")

    return [(1, c["h"], c["w"], c["cin"])], fn


# A decoder's upsampling conv (U-Net, FCN): h, w are its input's size, the output
# h * s by w * s. LiteRT runs it far slower than a conv of as many multiply-adds (EPYC
# VM: 2x2 stride 2 at 32x32, 32->16 channels, 142 us against 50 us for the 1x1 conv
# that is the same GEMM), so it has a table of its own (`transpose_conv_configs`).
bench_op("transpose_conv", ("h", "w", "cin", "cout", "k", "s"))((_tconv_ir, _tconv_build))


def _dw_ir(c: Config) -> Op:
    ho, wo = same_out(c["h"], c["s"]), same_out(c["w"], c["s"])
    return Op("depthwise", "DepthwiseConv2D", ["x"], [(1, c["h"], c["w"], c["c"])],
              [(1, ho, wo, c["c"])],
              {"kernel_size": (c["k"], c["k"]), "strides": (c["s"], c["s"]), "use_bias": True})


def _dw_build(c: Config, rng):
    import keras

    kernel, bias = _w(rng, c["k"], c["k"], c["c"], 1), _w(rng, c["c"])

    def fn(x):
        y = keras.ops.depthwise_conv(x, keras.ops.convert_to_tensor(kernel),
                                     strides=c["s"], padding="same")
        return keras.ops.relu6(y + keras.ops.convert_to_tensor(bias))

    return [(1, c["h"], c["w"], c["c"])], fn


bench_op("depthwise", ("h", "w", "c", "k", "s"))((_dw_ir, _dw_build))


def _dwm_ir(c: Config) -> Op:
    ho, wo = same_out(c["h"], c["s"]), same_out(c["w"], c["s"])
    return Op("depthwise_multiplier", "DepthwiseConv2D", ["x"], [(1, c["h"], c["w"], c["c"])],
              [(1, ho, wo, c["c"] * c["dm"])],
              {"kernel_size": (c["k"], c["k"]), "strides": (c["s"], c["s"]), "use_bias": True,
               "depth_multiplier": c["dm"]})


def _dwm_build(c: Config, rng):
    import keras

    kernel, bias = _w(rng, c["k"], c["k"], c["c"], c["dm"]), _w(rng, c["c"] * c["dm"])

    def fn(x):
        y = keras.ops.depthwise_conv(x, keras.ops.convert_to_tensor(kernel),
                                     strides=c["s"], padding="same")
        return keras.ops.relu6(y + keras.ops.convert_to_tensor(bias))

    return [(1, c["h"], c["w"], c["c"])], fn


# A depthwise conv with a depth multiplier above 1 (MobileNet(depth_multiplier=2)): c
# input channels, c * dm outputs. Not the depthwise kernels' fast path: on the EPYC VM
# 3x3 at 24x24 over 24 channels with dm 2 took 78 us, over 48 channels with dm 1 15 us.
bench_op("depthwise_multiplier", ("h", "w", "c", "dm", "k", "s"))((_dwm_ir, _dwm_build))


def _dense_ir(c: Config) -> Op:
    return Op("dense", "Dense", ["x"], [(c["rows"], c["cin"])], [(c["rows"], c["cout"])],
              {"use_bias": True})


def _dense_build(c: Config, rng):
    import keras

    kernel, bias = _w(rng, c["cin"], c["cout"]), _w(rng, c["cout"])

    def fn(x):
        return keras.ops.matmul(x, keras.ops.convert_to_tensor(kernel)) + keras.ops.convert_to_tensor(bias)

    return [(c["rows"], c["cin"])], fn


bench_op("dense", ("rows", "cin", "cout"))((_dense_ir, _dense_build))


def _pool_ir(c: Config) -> Op:
    ho, wo = same_out(c["h"], c["s"]), same_out(c["w"], c["s"])
    t = "MaxPooling2D" if c["kind"] == "max" else "AveragePooling2D"
    return Op("pool", t, ["x"], [(1, c["h"], c["w"], c["c"])], [(1, ho, wo, c["c"])],
              {"pool_size": (c["k"], c["k"]), "strides": (c["s"], c["s"])})


def _pool_build(c: Config, rng):
    import keras

    f = keras.ops.max_pool if c["kind"] == "max" else keras.ops.average_pool

    def fn(x):
        return f(x, c["k"], strides=c["s"], padding="same")

    return [(1, c["h"], c["w"], c["c"])], fn


bench_op("pool", ("h", "w", "c", "k", "s", "kind"))((_pool_ir, _pool_build))


def _gpool_ir(c: Config) -> Op:
    return Op("global_pool", "GlobalAveragePooling2D", ["x"], [(1, c["h"], c["w"], c["c"])],
              [(1, c["c"])], {})


def _gpool_build(c: Config, rng):
    import keras

    def fn(x):
        return keras.ops.mean(x, axis=(1, 2))

    return [(1, c["h"], c["w"], c["c"])], fn


bench_op("global_pool", ("h", "w", "c"))((_gpool_ir, _gpool_build))


def _binary_ir(kind: str):
    def ir(c: Config) -> Op:
        shape = (1, c["h"], c["w"], c["c"])
        second = (1, 1, 1, c["c"]) if c.get("broadcast") else shape
        return Op(kind, kind.capitalize(), ["x", "y"], [shape, second], [shape], {})

    return ir


def _keras_binary(kind: str):
    import keras

    return keras.ops.add if kind == "add" else keras.ops.multiply


def _binary_build(kind: str):
    def build(c: Config, rng):
        f = _keras_binary(kind)
        shape = (1, c["h"], c["w"], c["c"])
        second = (1, 1, 1, c["c"]) if c.get("broadcast") else shape
        return [shape, second], lambda x, y: f(x, y)

    return build


bench_op("add", ("h", "w", "c", "broadcast"))((_binary_ir("add"), _binary_build("add")))
bench_op("multiply", ("h", "w", "c", "broadcast"))(
    (_binary_ir("multiply"), _binary_build("multiply"))
)


# x + scalar, x * scalar (Rescaling, hard_sigmoid's "+ 3" and "/ 6"): XNNPACK runs them
# with its own constant-operand kernels, several times faster than a per-channel
# broadcast, which is slowest on the few channels where Rescaling sits (an image's 3).
def _scalar_ir(kind: str):
    def ir(c: Config) -> Op:
        shape = (1, c["h"], c["w"], c["c"])
        return Op(kind, f"ops.{kind.capitalize()}", ["x"], [shape], [shape],
                  {"constant_operands": 1})

    return ir


def _scalar_build(kind: str):
    def build(c: Config, rng):
        f = _keras_binary(kind)
        constant = np.float32(0.5 + rng.random())
        return [(1, c["h"], c["w"], c["c"])], lambda x: f(x, constant)

    return build


bench_op("add_scalar", ("h", "w", "c"))((_scalar_ir("add"), _scalar_build("add")))
bench_op("multiply_scalar", ("h", "w", "c"))((_scalar_ir("multiply"), _scalar_build("multiply")))


def _concat_ir(c: Config) -> Op:
    a, b = (1, c["h"], c["w"], c["c1"]), (1, c["h"], c["w"], c["c2"])
    return Op("concat", "Concatenate", ["x", "y"], [a, b], [(1, c["h"], c["w"], c["c1"] + c["c2"])],
              {"axis": -1})


def _concat_build(c: Config, rng):
    import keras

    a, b = (1, c["h"], c["w"], c["c1"]), (1, c["h"], c["w"], c["c2"])
    return [a, b], lambda x, y: keras.ops.concatenate([x, y], axis=-1)


bench_op("concat", ("h", "w", "c1", "c2"))((_concat_ir, _concat_build))

# Standalone activations as LiteRT runs them (swish = LOGISTIC + MUL). The last four
# no application family uses; user CNNs do, and an elementwise roofline at the table's
# median efficiency put them 2-3x off (EPYC VM: a LeakyReLU at 24x24x48 measured
# 3.4 us, predicted 9.4 us).
ACTIVATIONS = ("relu", "relu6", "sigmoid", "swish", "hard_swish", "leaky_relu", "elu",
               "tanh", "gelu")


def _act_ir(c: Config) -> Op:
    shape = (1, c["h"], c["w"], c["c"])
    return Op("activation", "Activation", ["x"], [shape], [shape], {"activation": c["fn"]})


def _act_build(c: Config, rng):
    import keras

    f = {"relu": keras.ops.relu, "relu6": keras.ops.relu6, "sigmoid": keras.ops.sigmoid,
         "swish": keras.ops.silu, "hard_swish": keras.ops.hard_silu,
         "leaky_relu": keras.ops.leaky_relu, "elu": keras.ops.elu, "tanh": keras.ops.tanh,
         "gelu": lambda x: keras.ops.gelu(x, approximate=False)}[c["fn"]]  # Keras' default
    return [(1, c["h"], c["w"], c["c"])], f


bench_op("activation", ("h", "w", "c", "fn"))((_act_ir, _act_build))


def _pad_ir(c: Config) -> Op:
    return Op("pad", "ZeroPadding2D", ["x"], [(1, c["h"], c["w"], c["c"])],
              [(1, c["h"] + 1, c["w"] + 1, c["c"])], {})


def _pad_build(c: Config, rng):
    import keras

    return [(1, c["h"], c["w"], c["c"])], lambda x: keras.ops.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))


bench_op("pad", ("h", "w", "c"))((_pad_ir, _pad_build))

# Upsampling by a whole factor (UpSampling2D, a decoder's or FPN's resize): h, w, c of
# the input. LiteRT's nearest resize is no plain copy (EPYC VM, 64x64x32 doubled:
# nearest 271 us, bilinear 177 us; the elementwise roofline said 200 us for both).
RESIZE_KINDS = ("nearest", "bilinear")


def _resize_ir(c: Config) -> Op:
    return Op("resize", "UpSampling2D", ["x"], [(1, c["h"], c["w"], c["c"])],
              [(1, c["h"] * c["scale"], c["w"] * c["scale"], c["c"])],
              {"size": (c["scale"], c["scale"]), "interpolation": c["kind"]})


def _resize_build(c: Config, rng):
    import keras

    size = (c["h"] * c["scale"], c["w"] * c["scale"])
    return [(1, c["h"], c["w"], c["c"])], lambda x: keras.ops.image.resize(
        x, size, interpolation=c["kind"])


bench_op("resize", ("h", "w", "c", "scale", "kind"))((_resize_ir, _resize_build))


def _chain_ir(c: Config) -> Op:
    shape = (1, c["size"])
    return Op("chain", "Add", ["x", "y"], [shape, shape], [shape], {})


def _chain_build(c: Config, rng):
    """`n` dependent tiny adds: time = per_invocation + n * per_op."""
    import keras

    def fn(x):
        y = x
        for i in range(int(c["n"])):
            y = keras.ops.add(y, x) if i % 2 == 0 else keras.ops.multiply(y, x)
        return y

    return [(1, c["size"])], fn


bench_op("chain", ("n", "size"))((_chain_ir, _chain_build))


def _stream_ir(c: Config) -> Op:
    # The cost of one layer of the chain; the chain's bytes are n times its weights.
    return Op("weight_stream", "Dense", ["x"], [(1, c["c"])], [(1, c["c"])], {"use_bias": False})


def _stream_build(c: Config, rng):
    """`n` matrix-vector products with distinct c x c weights: time is the time to
    stream n*c*c*4 bytes of weights, from whichever memory level holds that many."""
    import keras

    mats = [_w(rng, c["c"], c["c"]) for _ in range(int(c["n"]))]

    def fn(x):
        y = x
        for m in mats:
            y = keras.ops.matmul(y, keras.ops.convert_to_tensor(m))
        return y

    return [(1, c["c"])], fn


bench_op("weight_stream", ("n", "c"))((_stream_ir, _stream_build))

# Samples that characterize the device (overheads, the memory hierarchy) rather than
# populate the lookup table.
AUXILIARY_OPS = frozenset({"chain", "weight_stream"})


# ------------------------------------------------------------------ plans


@dataclass(frozen=True)
class PlannedSample:
    op: str
    config: Config
    phase: str  # "roofline", "table" or "adaptive"

    @property
    def key(self) -> str:
        from latency_lab.profile import sample_key

        return sample_key(self.op, self.config)


CHAIN_LENGTHS = (1, 9, 17, 33)


def roofline_plan(quick: bool) -> list[PlannedSample]:
    """Large, regular ops that reach the device's ceilings, plus tiny-op chains for
    overheads. Memory bandwidth uses an add whose working set (3 x 16 MiB) is past any
    last-level cache of a CPU we expect."""
    items: list[tuple[str, Config]] = [
        ("conv2d", dict(h=28, w=28, cin=256, cout=256, k=1, s=1)),
        ("conv2d", dict(h=56, w=56, cin=64, cout=64, k=3, s=1)),
        ("dense", dict(rows=64, cin=1024, cout=1024)),
        ("depthwise", dict(h=112, w=112, c=64, k=3, s=1)),
        ("depthwise", dict(h=28, w=28, c=512, k=3, s=1)),
        ("add", dict(h=56, w=56, c=64, broadcast=False)),
        ("add", dict(h=1024, w=1024, c=4, broadcast=False)),
    ]
    if not quick:
        items += [
            ("conv2d", dict(h=14, w=14, cin=512, cout=512, k=3, s=1)),
            ("depthwise", dict(h=56, w=56, c=256, k=5, s=1)),
            ("multiply", dict(h=28, w=28, c=256, broadcast=False)),
            ("add", dict(h=2048, w=1024, c=4, broadcast=False)),
        ]
    items += [("chain", dict(n=n, size=8)) for n in CHAIN_LENGTHS]
    items += [("weight_stream", cfg) for cfg in WEIGHT_STREAM_QUICK]
    if not quick:
        items += [("weight_stream", cfg) for cfg in WEIGHT_STREAM_FULL]
    return [PlannedSample(op, cfg, "roofline") for op, cfg in items]


# Working sets of weights from L2-resident to far past the last-level cache: 0.25 MiB
# to 128 MiB (c=256: 0.25 MiB per matrix, c=512: 1 MiB, c=1024: 4 MiB).
WEIGHT_STREAM_QUICK = (dict(n=1, c=256), dict(n=2, c=512), dict(n=2, c=1024),
                       dict(n=8, c=1024), dict(n=32, c=1024))
WEIGHT_STREAM_FULL = (dict(n=2, c=256), dict(n=1, c=512), dict(n=4, c=512),
                      dict(n=4, c=1024), dict(n=4, c=2048), dict(n=6, c=2048),
                      dict(n=16, c=1024), dict(n=24, c=1024), dict(n=8, c=2048))


def weight_bandwidth_curve(samples: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """(working-set bytes, attained bytes/s) of the weight_stream samples, sorted by
    size; empty arrays when the profile has none."""
    pts = sorted((4.0 * s.config["n"] * s.config["c"] ** 2, s.min_ms) for s in samples
                 if s.op == "weight_stream")
    if not pts:
        return np.array([]), np.array([])
    size = np.array([p[0] for p in pts])
    bw = size / (np.array([p[1] for p in pts]) / 1e3)
    return size, bw


def bandwidth_at(curve: tuple[np.ndarray, np.ndarray], nbytes: float) -> float | None:
    """Weight-streaming bandwidth for a working set of `nbytes`, interpolated in log
    space and held constant beyond the measured range; None without a curve."""
    size, bw = curve
    if size.size == 0:
        return None
    return float(np.exp(np.interp(math.log(max(nbytes, 1.0)), np.log(size), np.log(bw))))


def application_layer_configs(families: Iterable[tuple[str, dict]],
                              runtime: str = "litert") -> list[tuple[str, Config]]:
    """(bench op, config) of every kernel `runtime` runs for the given keras.applications
    builds: the same kernel list predictions use (for LiteRT, the converted model's
    kernels, so swish is timed as LOGISTIC + MUL as it really runs). Deduplicated."""
    import keras

    from latency_lab.predict import work_items
    from latency_lab.profile import sample_key

    seen: dict[str, tuple[str, Config]] = {}
    for name, kwargs in families:
        model = getattr(keras.applications, name)(weights=None, **kwargs)
        for item in work_items(model, runtime):
            for bop, cfg in item.configs or ():
                seen.setdefault(sample_key(bop, cfg), (bop, cfg))
        del model
        keras.backend.clear_session()
    return list(seen.values())


QUICK_FAMILIES = (
    ("MobileNetV2", {"alpha": 0.5, "input_shape": (128, 128, 3)}),
    ("ResNet50", {"input_shape": (64, 64, 3)}),
    ("MobileNetV3Small", {"input_shape": (128, 128, 3)}),  # hard-swish, squeeze-excite
    ("EfficientNetB0", {"input_shape": (64, 64, 3)}),  # swish (sigmoid + mul)
)
FULL_FAMILIES = (
    ("MobileNet", {"alpha": 0.5, "input_shape": (160, 160, 3)}),
    ("MobileNetV2", {"alpha": 1.0, "input_shape": (224, 224, 3)}),
    ("MobileNetV2", {"alpha": 0.35, "input_shape": (96, 96, 3)}),
    ("MobileNetV3Small", {"input_shape": (224, 224, 3)}),
    ("MobileNetV3Large", {"alpha": 0.75, "input_shape": (160, 160, 3)}),
    ("ResNet50", {"input_shape": (160, 160, 3)}),
    ("EfficientNetB0", {"input_shape": (224, 224, 3)}),
    ("DenseNet121", {"input_shape": (96, 96, 3)}),
)


CHANNEL_KEYS = ("cin", "cout", "c", "c1", "c2")


def _slim(cfg: Config, rng: random.Random) -> Config:
    """A channel-slimmed variant, as the regularizer will produce."""
    out = dict(cfg)
    for key in CHANNEL_KEYS:
        if key in out and out[key] > 4:
            out[key] = max(1, int(round(out[key] * rng.uniform(0.2, 1.0))))
    return out


_MIN_DISTINCT = 8  # configurations per op kind a table needs to be more than a point


def _resize(cfg: Config, rng: random.Random) -> Config:
    """The same op at another input size (h and w scaled together)."""
    out = dict(cfg)
    scale = rng.uniform(0.25, 1.5)
    for key in ("h", "w"):
        if key in out:
            out[key] = max(1, int(round(out[key] * scale)))
    return out


NARROW_MAX_CHANNELS = 48  # a few SIMD tiles: where a partial tile is most of the work
NARROW_OPS = frozenset({"conv2d", "depthwise"})


def _narrow(cfg: Config, rng: random.Random) -> Config:
    """The layer cut to a handful of channels (1..NARROW_MAX_CHANNELS, mostly not a
    multiple of 8), as a strongly slimmed network has them. XNNPACK runs a partial
    SIMD tile through a slower remainder path: on the EPYC VM a 3x3 depthwise at
    48x48 takes 17 us over 8 channels, 25 us over 1-7 and 34 us over 9-15, and
    slimming by a random fraction of a real layer's width rarely lands there."""
    out = dict(cfg)
    for key in CHANNEL_KEYS:
        if key in out and out[key] > 4:  # 3 image channels stay 3
            out[key] = rng.randint(1, min(out[key], NARROW_MAX_CHANNELS))
    return out


def _variant(op: str, cfg: Config, rng: random.Random) -> Config:
    """A planned variant of a real layer: channel-slimmed (what the regularizer
    produces), at another input size, or both, in equal shares; convs also cut to a
    few channels (`_narrow`) in an equal share. The families are built at one input
    size each, so without resizing a table has no big-weight conv at the 2x2 and 4x4
    maps of a network fed 64 pixels: ResNet50 at 64 had its 512-channel 3x3 on 2x2
    predicted 73% slower than its one-op measurement (0.44 vs 0.25 ms)."""
    if "h" not in cfg:
        return _slim(cfg, rng)
    mode = rng.randrange(4 if op in NARROW_OPS else 3)
    if mode == 0:
        return _slim(cfg, rng)
    if mode == 1:
        return _resize(cfg, rng)
    if mode == 2:
        return _slim(_resize(cfg, rng), rng)
    return _narrow(cfg, rng)


# Share of the table budget per op kind, by where network latency goes and where
# the regressor still learns from more samples. Learning curves on an EPYC profile
# (held-out RMSPE at 40/60/80/100% of the samples, rep7 profile 2): conv2d
# 14.0/11.2/12.0/8.6%, depthwise 22.7/18.8/12.7/12.2%, dense 44.6/20.0/21.0/16.9%,
# but activation 7.0/2.9/3.7/2.0% and multiply 9.0/7.6/6.2/5.1%: elementwise tables
# are learnt from a few dozen samples, convs are not, and convs are 55-95% of a
# CNN's time.
TABLE_SHARE = {"conv2d": 18, "depthwise": 10, "dense": 4, "activation": 4, "multiply": 3,
               "add": 2, "add_scalar": 2, "multiply_scalar": 2, "concat": 2, "pool": 2,
               "global_pool": 2, "pad": 2}


def table_plan(quick: bool, seed: int = 0, max_samples: int | None = None,
               runtime: str = "litert") -> list[PlannedSample]:
    """Lookup-table samples: real layer configs and variants of them (`_variant`),
    subsampled per op by TABLE_SHARE so every op kind is represented."""
    families = QUICK_FAMILIES if quick else FULL_FAMILIES
    rng = random.Random(seed)
    configs = application_layer_configs(families, runtime)
    per_op: dict[str, list[Config]] = {}
    for op, cfg in configs:
        per_op.setdefault(op, []).append(cfg)
    budget = max_samples or (200 if quick else 720)
    weights = TABLE_SHARE
    total_w = sum(weights[o] for o in per_op if o in weights) or 1
    plan: list[PlannedSample] = []
    from latency_lab.profile import sample_key

    seen: set[str] = set()
    for op in sorted(per_op):
        cfgs = per_op[op]
        rng.shuffle(cfgs)
        n = max(4, budget * weights.get(op, 1) // total_w)
        n_real = min(len(cfgs), (n + 1) // 2)
        chosen = cfgs[:n_real]
        chosen += [_variant(op, rng.choice(cfgs), rng) for _ in range(n - n_real)]
        # Ops the families use at few channel counts (a Rescaling on 3 image channels)
        # slim into duplicates; other input sizes keep their table from being a point.
        distinct = {sample_key(op, c) for c in chosen}
        for _ in range(4 * n):
            if len(distinct) >= min(n, _MIN_DISTINCT):
                break
            cfg = _resize(rng.choice(cfgs), rng)
            distinct.add(sample_key(op, cfg))
            chosen.append(cfg)
        for cfg in chosen:
            k = sample_key(op, cfg)
            if k not in seen:
                seen.add(k)
                plan.append(PlannedSample(op, cfg, "table"))
    extras = (coverage_configs(quick) + small_map_configs(configs) + broadcast_configs(quick)
              + transpose_conv_configs(quick) + resize_configs(quick)
              + depthwise_multiplier_configs(quick)
              + category_configs(configs, runtime))
    for op, cfg in extras:
        k = sample_key(op, cfg)
        if k not in seen:
            seen.add(k)
            plan.append(PlannedSample(op, cfg, "table"))
    # Measured in a shuffled order: on a shared machine the noise comes in spells of
    # seconds to minutes, and measuring one op kind after another turned each spell
    # into a bias of a whole op kind; shuffled, it is per-sample noise the table's
    # regressor averages out. A --budget cut also leaves every op kind some samples.
    rng.shuffle(plan)
    return plan


def coverage_configs(quick: bool) -> list[tuple[str, Config]]:
    """Regular convs with 5x5 and 7x7 kernels at strides 1 and 2: the application
    families have almost none (5x5 and 7x7 appear as depthwise convs and one ResNet
    stem), yet user networks and searched architectures use them."""
    sizes = ((28, 32),) if quick else ((56, 32), (28, 64), (14, 128))
    return [("conv2d", dict(h=h, w=h, cin=c, cout=c, k=k, s=s))
            for h, c in sizes for k in (5, 7) for s in (1, 2)]


def broadcast_configs(quick: bool) -> list[tuple[str, Config]]:
    """Per-channel broadcast adds and multiplies the families lack (their adds are
    residual, their broadcast multiplies squeeze-excite gates over many channels): an
    input Normalization's (x - mean) / std over an image's 3 channels (EfficientNetV2
    preprocesses so), where XNNPACK's broadcast kernel is slowest (an add at 96x96x3:
    42 us, 1.5 ns an element, against 0.2 ns for a residual add on the EPYC VM; the
    table without these predicted 3 us), and broadcast adds at network widths."""
    sides = (96,) if quick else (64, 96, 128, 160, 224)
    out = [(op, dict(h=s, w=s, c=3, broadcast=True)) for op in ("add", "multiply") for s in sides]
    widths = ((28, 32),) if quick else ((56, 24), (28, 40), (14, 112), (7, 320))
    return out + [("add", dict(h=h, w=h, c=c, broadcast=True)) for h, c in widths]


def transpose_conv_configs(quick: bool) -> list[tuple[str, Config]]:
    """Transposed convs at decoder sizes: the application families have none. Kernel
    and stride as decoders use them (2x2 and 4x4 stride 2 upsample without overlap or
    with it, 3x3 stride 2 and 1), from a wide shallow map to a small deep one."""
    kernels = ((2, 2), (3, 2)) if quick else ((2, 2), (3, 2), (4, 2), (3, 1))
    maps = ((32, 32, 16), (8, 128, 64)) if quick else (
        (64, 16, 16), (32, 32, 16), (32, 64, 32), (16, 128, 64), (8, 256, 128))
    return [("transpose_conv", dict(h=h, w=h, cin=cin, cout=cout, k=k, s=s))
            for k, s in kernels for h, cin, cout in maps]


def depthwise_multiplier_configs(quick: bool) -> list[tuple[str, Config]]:
    """Depthwise convs with a depth multiplier: the application families have none."""
    dms = (2,) if quick else (2, 4)
    maps = ((48, 16), (12, 64)) if quick else ((48, 16), (24, 32), (12, 64))
    return [("depthwise_multiplier", dict(h=h, w=h, c=c, dm=dm, k=3, s=s))
            for dm in dms for h, c in maps for s in (1, 2)]


def resize_configs(quick: bool) -> list[tuple[str, Config]]:
    """Upsampling at decoder sizes, both kinds: the application families have none."""
    scales = (2,) if quick else (2, 4)
    maps = ((32, 32), (16, 128)) if quick else ((64, 16), (32, 64), (16, 128), (8, 256))
    return [("resize", dict(h=h, w=h, c=c, scale=f, kind=kind))
            for kind in RESIZE_KINDS for f in scales for h, c in maps]


# Values of an op's categorical keys the profile should time. A category no family
# uses (a ReLU the converter could not fuse, Xception's before each separable conv)
# gets samples of its own, at the sizes the families use the op (`category_configs`).
CATEGORIES = {"activation": {"fn": ACTIVATIONS}, "pool": {"kind": ("max", "avg")}}
CATEGORY_SAMPLES = 6  # per missing value


def category_configs(configs: Iterable[tuple[str, Config]],
                     runtime: str = "litert") -> list[tuple[str, Config]]:
    """For each value in CATEGORIES that none of `configs` (the families' layers) has,
    CATEGORY_SAMPLES of the op's configurations with that value swapped in, spread from
    the smallest to the largest. Under LiteRT only the activations it runs as one
    kernel (swish is a LOGISTIC and a MUL, timed as those)."""
    if runtime == "litert":
        from latency_lab.litert_graph import ACTIVATION_KERNELS

        runs = set(ACTIVATION_KERNELS.values())
    else:
        runs = set(ACTIVATIONS)
    by_op: dict[str, list[Config]] = {}
    for op, cfg in configs:
        by_op.setdefault(op, []).append(cfg)
    out = []
    for op, keys in CATEGORIES.items():
        cfgs = sorted(by_op.get(op, []), key=lambda c: (work(op, c).bytes_total, sorted(c.items())))
        for key, values in keys.items():
            present = {c[key] for c in cfgs}
            for value in values:
                if value in present or not cfgs or (op == "activation" and value not in runs):
                    continue
                n = min(CATEGORY_SAMPLES, len(cfgs))
                picks = [cfgs[round(i * (len(cfgs) - 1) / max(n - 1, 1))] for i in range(n)]
                out.extend((op, dict(c, **{key: value})) for c in picks)
    return out


SMALL_MAP_WEIGHT_BYTES = 2**20  # past a core's L2: the weights come from L3 or DRAM
SMALL_MAP_SIZES = (1, 2, 4)  # output pixels per side


def small_map_configs(configs: Iterable[tuple[str, Config]]) -> list[tuple[str, Config]]:
    """The families' convs with at least SMALL_MAP_WEIGHT_BYTES of weights, at 1x1,
    2x2 and 4x4 outputs: where a network fed a small input ends, the time of such a
    conv is the fetch of its weights, a regime the families' own maps (5x5 and up)
    never reach. Random variants rarely land there (one in a 690-sample plan)."""
    out = []
    for op, cfg in configs:
        if op != "conv2d" or weight_bytes(op, cfg) < SMALL_MAP_WEIGHT_BYTES:
            continue
        for size in SMALL_MAP_SIZES:
            h = size * cfg["s"]
            out.append((op, dict(cfg, h=h, w=h)))
    return out


# --------------------------------------------------------- derived figures


def ceilings_from_samples(samples: Sequence) -> dict:
    """Roofline ceilings (best observed throughput per class) and memory bandwidth
    (best bytes/s of elementwise ops whose working set exceeds 32 MiB)."""
    best = {costs.DENSE: 0.0, costs.DEPTHWISE: 0.0, costs.ELEMENTWISE: 0.0}
    bandwidth = 0.0
    for s in samples:
        if s.op in AUXILIARY_OPS or s.op not in BENCH_OPS:
            continue
        w = work(s.op, s.config)
        seconds = s.min_ms / 1e3
        cls = op_class(s.op, s.config)
        if cls in best and w.flops > 0:
            best[cls] = max(best[cls], w.flops / seconds)
        if cls == costs.ELEMENTWISE and w.bytes_total >= 32 * 2**20:
            bandwidth = max(bandwidth, w.bytes_total / seconds)
    if bandwidth == 0.0:
        raise ProfileError(
            "no large elementwise sample to derive memory bandwidth from; the roofline "
            "phase must run first (re-run `latency-lab profile` without --resume)"
        )
    missing = [k for k, v in best.items() if v <= 0]
    if missing:
        raise ProfileError(f"no samples to derive the {missing} ceiling(s) from")
    return {"compute_flops_per_s": best, "memory_bytes_per_s": bandwidth,
            "precision": "fp32"}


def overhead_from_samples(samples: Sequence) -> dict:
    """Least-squares line through the chain timings: slope = per op, intercept = per
    invocation (clamped at zero: a negative intercept is noise)."""
    pts = sorted((int(s.config["n"]), s.min_ms) for s in samples if s.op == "chain")
    if len(pts) < 2:
        return {"per_op_ms": 0.0, "per_invocation_ms": 0.0}
    n = np.array([p[0] for p in pts], dtype=float)
    t = np.array([p[1] for p in pts], dtype=float)
    slope, intercept = np.polyfit(n, t, 1)
    return {"per_op_ms": float(max(slope, 0.0)), "per_invocation_ms": float(max(intercept, 0.0))}


def geometric_mean(values: Iterable[float]) -> float:
    vals = [v for v in values if v > 0]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else float("nan")


def _features(op: str, config: Config) -> list[float]:
    w = work(op, config)
    return [1.0, math.log(w.flops + 1.0), math.log(w.bytes_total + 1.0)]


def loo_relative_errors(op: str, samples: Sequence) -> list[tuple[float, object]]:
    """Leave-one-out relative error of a log-linear fit of time on (FLOPs, bytes): a
    cheap stand-in for "how well do neighbours explain this sample"."""
    rows = [s for s in samples if s.op == op]
    if len(rows) < 6:
        return [(1.0, s) for s in rows]
    x = np.array([_features(op, s.config) for s in rows])
    y = np.log(np.array([s.min_ms for s in rows]))
    out = []
    for i in range(len(rows)):
        mask = np.arange(len(rows)) != i
        coef, *_ = np.linalg.lstsq(x[mask], y[mask], rcond=None)
        pred = float(np.exp(x[i] @ coef))
        out.append((abs(pred - rows[i].min_ms) / rows[i].min_ms, rows[i]))
    return out


def _perturb(cfg: Config, rng: random.Random) -> Config:
    out = dict(cfg)
    for key in ("cin", "cout", "c", "c1", "c2", "rows"):
        if key in out:
            out[key] = max(1, int(round(out[key] * rng.uniform(0.6, 1.4))))
    return out


def adaptive_plan(samples: Sequence, n: int, seed: int = 0,
                  threshold: float = 0.10) -> list[PlannedSample]:
    """Extra samples around the configurations a held-out fit predicts worst (relative
    error above `threshold`), worst first, `n` in total."""
    rng = random.Random(seed + 1)
    worst: list[tuple[float, object]] = []
    for op in sorted({s.op for s in samples if s.op in BENCH_OPS and s.op not in AUXILIARY_OPS}):
        worst += [(e, s) for e, s in loo_relative_errors(op, samples) if e > threshold]
    worst.sort(key=lambda t: -t[0])
    plan: list[PlannedSample] = []
    seen = {s.key for s in samples}
    i = 0
    while worst and len(plan) < n and i < 20 * n:
        _, s = worst[i % len(worst)]
        cfg = _perturb(s.config, rng)
        p = PlannedSample(s.op, cfg, "adaptive")
        if p.key not in seen:
            seen.add(p.key)
            plan.append(p)
        i += 1
    return plan


# Whole networks measured at the end of a profile so predictors can learn what isolated
# op timings miss inside a network (weights falling out of cache). Their input sizes
# differ from the validation set in scripts/validate_benchmark.py on purpose.
CALIBRATION_QUICK = (
    ("MobileNetV2", {"alpha": 0.75, "input_shape": (112, 112, 3)}, None),
    ("ResNet50", {"input_shape": (56, 56, 3)}, None),
    ("EfficientNetB0", {"input_shape": (80, 80, 3)}, None),
)
CALIBRATION_FULL = CALIBRATION_QUICK + (
    ("MobileNet", {"alpha": 0.25, "input_shape": (144, 144, 3)}, None),
    ("DenseNet121", {"input_shape": (56, 56, 3)}, None),
    ("MobileNetV2", {"alpha": 1.0, "input_shape": (112, 112, 3)}, 101),
    ("ResNet50", {"input_shape": (72, 72, 3)}, 102),
)


def _calibration_label(name: str, kwargs: dict, seed: int | None) -> str:
    label = f"{name}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
    return label if seed is None else f"{label} slim seed {seed}"


def calibration_labels(quick: bool) -> list[str]:
    return [_calibration_label(*entry) for entry in (CALIBRATION_QUICK if quick else CALIBRATION_FULL)]


def calibration_models(quick: bool, labels: Iterable[str] | None = None):
    """Yield (label, model) for the calibration set, or only the entries named in
    `labels` (the others are not built); the third field of an entry is a slimming
    seed (None: the plain network)."""
    from latency_lab.variants import application, random_slim

    wanted = None if labels is None else set(labels)
    for name, kwargs, seed in (CALIBRATION_QUICK if quick else CALIBRATION_FULL):
        if wanted is not None and _calibration_label(name, kwargs, seed) not in wanted:
            continue
        model = application(name, **kwargs)
        if seed is not None:
            model = random_slim(model, seed)
        yield _calibration_label(name, kwargs, seed), model
