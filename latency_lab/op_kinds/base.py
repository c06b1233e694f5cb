"""What an op kind is, and the three registries that map onto op kinds.

An op kind is one kernel the profiler times and the predictors look up (a conv, a
depthwise conv, an add, ...). Everything about it lives in one `OpKind` subclass in one
module of this package: its configuration keys and which follow the layer's input or
output channels, the IR op whose cost-registry FLOPs/bytes a sample has (so a sample's
work comes from the functions `analyze` uses), its microbenchmark program (written with
`keras.ops`, so every runtime can compile it), its lookup-table features, how it
scales with alive channels, and the configurations the table plan adds beyond what the
application families use. The same module registers the Keras layers
(`@keras_layer`) and the LiteRT kernels (`@litert_kernel`) that map onto it.

Adding an op kind: one module here (a subclass registered with `register`, plus its
`@keras_layer` / `@litert_kernel` mappings), imported in `op_kinds/__init__.py`, and its
tests.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from latency_lab import costs
from latency_lab.errors import InvalidArgumentError, MeasurementError, ProfileError
from latency_lab.graph import Op
from latency_lab.op_kinds.space import Dim, Region, latin_hypercube

__all__ = ["Config", "OpKind", "out_pixels", "prod", "rows_and_channels", "CHANNEL_KEYS", "same_out", "register", "get", "kinds",
           "names", "keras_layer", "litert_kernel", "KERAS_LAYERS", "LITERT_KERNELS",
           "random_weights", "weight_tensor", "WeightVariables", "Dim", "Region", "MAX_SAMPLE_FLOPS",
           "MAX_SAMPLE_BYTES", "IndexInput", "input_dtype", "input_range", "random_input",
           "kernel_padding", "kernel_hw", "kernel_same_input", "layer_same_input"]

Config = dict[str, Any]

# Every channel key an op kind may have, in the order plans and scaling visit them.
CHANNEL_KEYS = ("cin", "cout", "c", "c1", "c2")


def same_out(size: int, stride: int) -> int:
    """Output size of a SAME-padded window op."""
    return -(-int(size) // int(stride))


def out_pixels(config: Config) -> int:
    """Output pixels of a SAME-padded window op's `config` (h, w, stride s)."""
    return same_out(config["h"], config["s"]) * same_out(config["w"], config["s"])


def prod(dims: Iterable[int]) -> int:
    """The product of a shape's (or any) dimensions as a Python int (1 when empty)."""
    return int(math.prod(int(d) for d in dims))


def rows_and_channels(shape: Sequence[int]) -> tuple[int, int]:
    """(rows, channels) of a tensor as the row-wise kinds see it: every axis but the
    last is a row (at least one), the last axis the channels (1 for a scalar)."""
    shape = tuple(int(d) for d in shape)
    return max(1, prod(shape[:-1])), (max(1, shape[-1]) if shape else 1)


def random_weights(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Small float32 weights for a microbenchmark (their values do not change timing)."""
    return (rng.standard_normal(shape) * 0.05).astype(np.float32)


class IndexInput(tuple):
    """An integer input of a microbenchmark (a gather's indices): its shape, as a tuple,
    so everything that reads a program's input shapes reads it unchanged, plus the
    dtype and the range [low, high) its values are drawn from (`random_input`). A
    `build` returns it among its input shapes; every other input is float32."""

    dtype: str
    low: int
    high: int

    def __new__(cls, shape, high: int, low: int = 0, dtype: str = "int32"):
        self = super().__new__(cls, (int(d) for d in shape))
        if int(high) <= int(low):
            raise InvalidArgumentError(
                f"index input of shape {tuple(self)}: its values are drawn from [low, high), "
                f"which is empty for [{low}, {high}); give high > low (a gather's vocabulary "
                "size as high)")
        self.dtype, self.low, self.high = str(dtype), int(low), int(high)
        return self

    def __getnewargs__(self):  # copy and pickle rebuild it whole
        return tuple(self), self.high, self.low, self.dtype

    def __repr__(self) -> str:
        return f"IndexInput({tuple(self)}, high={self.high}, low={self.low}, dtype={self.dtype!r})"


def input_dtype(shape) -> str:
    """The dtype of a microbenchmark input given as `shape` (float32 unless an
    `IndexInput`)."""
    return getattr(shape, "dtype", "float32")


def input_range(shape) -> tuple[int, int] | None:
    """[low, high) of an integer input's values; None for a float input."""
    return (shape.low, shape.high) if isinstance(shape, IndexInput) else None


def random_input(shape, rng: np.random.Generator, dtype: str = "float32",
                 value_range: tuple[int, int] | None = None) -> np.ndarray:
    """One microbenchmark input: float32 standard normal (the same draws as ever), or,
    for an integer dtype, integers uniform in `value_range` (default [0, 2))."""
    if np.issubdtype(np.dtype(dtype), np.integer):
        low, high = value_range or (0, 2)
        return rng.integers(low, high, size=tuple(shape)).astype(dtype)
    return rng.standard_normal(tuple(shape)).astype(dtype)


# The `WeightVariables` of the program a runtime is tracing with its weights as
# variables (inside its `creating()` / `reading()`); None otherwise: weights are constants.
_WEIGHTS: contextvars.ContextVar["WeightVariables | None"] = contextvars.ContextVar(
    "latency_lab_weight_variables", default=None)


def weight_tensor(array: np.ndarray) -> Any:
    """A microbenchmark's weight as a tensor: what every `build` program uses for its
    weight arrays (inputs and small shape constants are not weights).

    By default a constant (`keras.ops.convert_to_tensor`): the LiteRT conversion
    freezes weights into the .tflite, folding and fusing them as it does for a
    converted network. While a runtime traces the program inside a `WeightVariables`
    context, the program's `keras.Variable` for this array: in a Keras model the
    weights are variables, inputs of the compiled computation, so XLA must not see
    them as constants it could fold (it spent > 20 GB constant-folding an 11x11x575x634
    conv kernel)."""
    store = _WEIGHTS.get()
    if store is None:
        import keras

        return keras.ops.convert_to_tensor(array)
    return store.variable(array)


class WeightVariables:
    """The weights of one microbenchmark program as `keras.Variable`s (any backend).

    A runtime that compiles a program with its weights as variables runs the program
    once inside `creating()` (symbolically, say on `keras.KerasTensor` inputs: the
    variables are created there, once, in eager context and under the runtime's
    device scope), then traces it inside `reading()`, where each `weight_tensor`
    call gets the variable made for its array and an array not seen while creating is
    an error (variables are made once per program, never per trace). Keep the object
    as long as the compiled program: it holds the variables (and the arrays they were
    made from, by which they are found)."""

    def __init__(self, name: str = "program"):
        self.name = name
        self._by_array: dict[int, tuple[np.ndarray, Any]] = {}
        self._create = False

    @property
    def variables(self) -> list:
        """The variables, in the order the program first used their arrays."""
        return [v for _, v in self._by_array.values()]

    def variable(self, array: np.ndarray) -> Any:
        """The variable of `array` (by identity), made from it inside `creating()`."""
        hit = self._by_array.get(id(array))
        if hit is not None:
            return hit[1]
        if not self._create:
            raise MeasurementError(
                f"op program {self.name!r} used a weight of shape "
                f"{tuple(np.shape(array))} that it did not use when its variables were "
                "made; make weight arrays in the op kind's `build`, not inside its "
                "function, so each traced call uses the same arrays")
        import keras

        v = keras.Variable(np.asarray(array), trainable=False,
                           name=f"weight{len(self._by_array)}")
        self._by_array[id(array)] = (array, v)  # the array kept: its id stays its own
        return v

    @contextlib.contextmanager
    def _active(self, create: bool) -> Iterator["WeightVariables"]:
        token = _WEIGHTS.set(self)
        before, self._create = self._create, create
        try:
            yield self
        finally:
            self._create = before
            _WEIGHTS.reset(token)

    def creating(self) -> contextlib.AbstractContextManager["WeightVariables"]:
        """`weight_tensor` makes a variable for each array it has not seen yet."""
        return self._active(True)

    def reading(self) -> contextlib.AbstractContextManager["WeightVariables"]:
        """`weight_tensor` gives the variables made while creating; a new array is an
        error."""
        return self._active(False)


# One sample's work at most (a few ms on a phone-class CPU core): the space's corners
# (a 320x320 map of 4096 channels) are shrunk to it, so a profile stays minutes long.
MAX_SAMPLE_FLOPS = 1e8
MAX_SAMPLE_BYTES = 256e6


class OpKind:
    """One kind of kernel the profiler times. Subclasses set the class attributes and
    implement `to_ir` and `build`.

    keys: the configuration keys of a sample.
    in_channel_keys: keys that follow the layer's input channels; the other channel
        keys (`CHANNEL_KEYS`) follow its output channels.
    step_channels: (key, share of the SIMD channel tile) of the output channels the
        kernel computes whole steps of (the lookup table counts them padded), or None;
        a kind whose step depends on the configuration overrides `channel_step`.
    step_rows: the key of the rows a GEMM kernel computes in tiles of the CPU's row
        tile (`predictors.row_tile_for`; the lookup table counts them padded), or None.
    partial_step_flag: the lookup features flag a partial last step (a slower
        remainder path).
    wide_tile_flag: the lookup features flag output channels in whole pairs of
        SIMD tiles, which a GEMM runs through a kernel twice as wide (`featurize`).
    size_feature: the lookup features include the log of the roofline base.
    auxiliary: characterizes the device (overheads, memory) rather than filling the
        lookup table.
    categories: categorical keys and every value the profile should time.
    table_share: share of the table plan's budget (`bench.plans.table_plan`).
    narrow: the plan also cuts the kind's harvested layers to a few channels.
    space: the configuration space, one `space.Dim` per sampled key (the others
        follow from `derive`: a square map's w is its h); the table plan draws a
        space-filling design from it (`space_configs`).
    path_keys: discrete keys along which the runtime may switch kernel paths; the
        plan sweeps each through all its values (`spine_configs`) and the lookup
        regressor gets the path of a value as a feature (`space.kernel_paths`).
    regions: {name: `space.Region`}: parts of the space where networks the plan does
        not harvest put their work (a transformer's token-wise GEMMs); the plan draws
        a design in each as well (`region_configs`).
    max_sample_flops: one synthetic sample's work at most (`fit_work`); the space's
        corners are shrunk to it.
    streams: the kernel streams its tensors through once (copies, elementwise maps,
        row reductions): its time per byte changes at each cache level, so the plan
        gives it a sample near every rung of a ladder of bytes moved
        (`bench.plans.ladder_configs`, `scaled_to_bytes`).
    moved_term: index of the `base_terms` term that counts the bytes a streaming
        kernel moves; the lookup reads them like the weights term's.
    weights_term: index of the `base_terms` term that counts the kernel's weights;
        the lookup reads them at the bandwidth of the cache level a working set of
        their size lives in (the profile's weight-streaming curve) instead.
    Override `window_bytes` for a kernel whose inner loop must keep a working set in
    the L1 data cache from one output pixel to the next (the lookup then gets how far
    past the L1 it is as a feature), and `regime` for configurations a runtime may run
    through another code path whose speed has nothing to do with the rest's (the
    lookup gives them a regressor of their own).
    """

    name: str = ""
    keys: tuple[str, ...] = ()
    in_channel_keys: tuple[str, ...] = ()
    step_channels: tuple[str, float] | None = None
    step_rows: str | None = None
    partial_step_flag: bool = False
    wide_tile_flag: bool = False
    size_feature: bool = True
    auxiliary: bool = False
    categories: dict[str, tuple] = {}
    table_share: int = 1
    weights_term: int | None = None
    moved_term: int | None = None
    max_sample_flops: float = MAX_SAMPLE_FLOPS
    streams: bool = False
    narrow: bool = False
    space: dict[str, Dim] = {}
    path_keys: tuple[str, ...] = ()
    regions: dict[str, Region] = {}

    # -------------------------------------------------------------- to implement
    def to_ir(self, config: Config) -> Op:
        """The IR op whose cost-registry work a sample of `config` does."""
        raise NotImplementedError

    def build(self, config: Config, rng: np.random.Generator) -> tuple[list[tuple], Callable]:
        """(input shapes, fn(*inputs)) of the microbenchmark, written with keras.ops;
        weights are numpy arrays made here that fn turns into tensors with
        `weight_tensor` (constants, or the runtime's variables) when traced."""
        raise NotImplementedError

    def coverage_configs(self, quick: bool) -> list[Config]:
        """Configurations the table plan times beyond the families' layers."""
        return []

    def channel_step(self, config: Config, channel_tile: int) -> int:
        """Output channels (`step_channels`' key) of `config` per SIMD step: the
        runtime does a whole step's work for a partial one."""
        return max(1, int(channel_tile * self.step_channels[1]))

    def base_terms(self, config: Config) -> list[float] | None:
        """Work terms (any units) of a kernel whose algorithm is known, for a
        configuration already padded to whole SIMD steps: the lookup table fits their
        non-negative coefficients to the kind's samples (least squares on relative
        error) and takes their sum as the base its regressor's efficiencies are
        relative to, instead of the roofline. None (the default): the roofline."""
        return None

    def derive(self, config: Config) -> Config:
        """`config` (the sampled keys of `space`) completed with the keys that follow
        from them (by default a square map: w = h) and made consistent (a slice keeps
        at most its input); every plan passes its configurations through it."""
        out = dict(config)
        if "w" in self.keys and "w" not in out and "h" in out:
            out["w"] = out["h"]
        return out

    def space_configs(self, n: int, rng, max_flops: float | None = None,
                      max_bytes: float = MAX_SAMPLE_BYTES) -> list[Config]:
        """`n` configurations spread over `space` (a Latin hypercube in log
        coordinates). One whose work exceeds `max_flops` (by default
        `max_sample_flops`) or `max_bytes` (a 320x320
        map of 4096 channels) is shrunk, spatial sizes first, then its largest
        integer keys, until it fits: the other keys keep their spread."""
        if not self.space or n <= 0:
            return []
        keys = sorted(self.space)
        out = []
        for u in latin_hypercube(n, len(keys), rng):
            cfg = self.derive({k: self.space[k].at(x) for k, x in zip(keys, u)})
            out.append(self.fit_work(cfg, max_flops, max_bytes))
        return out

    def region_configs(self, n: int, rng, max_flops: float | None = None,
                       max_bytes: float = MAX_SAMPLE_BYTES) -> list[Config]:
        """`n` configurations shared out over `regions` (in name order, the first ones
        get the remainder), a Latin hypercube in each, shrunk to the work caps like
        `space_configs`."""
        names = sorted(self.regions)
        out = []
        for i, name in enumerate(names):
            region = self.regions[name]
            m = n // len(names) + (1 if i < n % len(names) else 0)
            for u in latin_hypercube(m, len(region.dims), rng) if m > 0 else []:
                cfg = self.derive(region.draw(u, self.keys))
                out.append(self.fit_work(cfg, max_flops, max_bytes))
        return out

    def spine_configs(self, bases: Sequence[Config]) -> list[Config]:
        """Each base configuration with each path key swept through all its values
        (the other keys fixed): the spines on which kernel paths are found."""
        out = []
        for key in self.path_keys:
            values = self.space[key].values()
            for base in bases:
                # shrunk to fit at every value, so all values share the other keys
                for v in values:
                    base = self.fit_work(self.derive(dict(base, **{key: v})))
                out.extend(self.derive(dict(base, **{key: v})) for v in values)
        return out

    def fit_work(self, cfg: Config, max_flops: float | None = None,
                 max_bytes: float = MAX_SAMPLE_BYTES) -> Config:
        """`cfg` shrunk until one sample's work fits the caps (see `space_configs`)."""
        max_flops = self.max_sample_flops if max_flops is None else max_flops
        cfg = dict(cfg)
        spatial, sizes = self._size_keys(cfg)
        for _ in range(200):
            w = self.work(cfg)
            if w.flops <= max_flops and w.bytes_total <= max_bytes:
                break
            grow = [k for k in spatial if cfg[k] > 1] or sorted(
                (k for k in sizes if cfg[k] > 1), key=lambda k: -cfg[k])[:1]
            if not grow:
                break
            for k in grow:
                cfg[k] = max(1, int(cfg[k] * 0.8))
        return cfg

    def scaled_to_bytes(self, cfg: Config, target_bytes: float) -> Config:
        """`cfg` with its spatial sizes scaled, within `space`, until the kernel moves
        about `target_bytes` (read + written); its largest other size keys take what
        the spatial sizes cannot (a 320x320 map's channels). Categorical and path keys
        keep their values: a rung of the ladder is the same kernel path
        at another size."""
        cfg = self.derive(dict(cfg))
        spatial, sizes = self._size_keys(cfg)
        sizes = sorted(sizes, key=lambda k: (-cfg[k], k))
        for keys in (spatial, sizes[:1], sizes[1:2]):
            for _ in range(8):
                ratio = target_bytes / max(self.work(cfg).bytes_total, 1.0)
                if not keys or 0.9 < ratio < 1.1:
                    break
                per_key = ratio ** (1 / len(keys))
                moved = dict(cfg)
                for k in keys:
                    dim = self.space.get(k) or self.space["h"]  # w is bounded like h
                    moved[k] = max(dim.lo, min(dim.hi, round(cfg[k] * per_key)))
                moved = self.derive(moved)
                if moved == cfg:
                    break
                cfg = moved
        return cfg

    def _size_keys(self, cfg: Config) -> tuple[list[str], list[str]]:
        """(spatial keys, other size keys) of `cfg` that sizing a sample may change
        (`fit_work`, `scaled_to_bytes`): a map's or a row block's extent first, then
        the space's other integer keys. Categorical and path keys keep their values,
        so a resized sample stays on its kernel path."""
        spatial = [k for k in ("h", "w", "rows", "m") if k in cfg]
        sizes = [k for k in sorted(self.space) if not self.space[k].choices
                 and k not in spatial and k not in self.path_keys
                 and isinstance(cfg.get(k), int)]
        return spatial, sizes

    # ---------------------------------------------------------------- derived
    @property
    def channel_keys(self) -> tuple[str, ...]:
        return tuple(k for k in CHANNEL_KEYS if k in self.keys)

    def check(self, config: Config) -> None:
        """ProfileError naming the key when `config` lacks one of `keys` or gives a
        size that is not a whole number >= 1 (every numeric key is a count: channels,
        pixels, kernel taps, stride, repeats)."""
        missing = [k for k in self.keys if k not in config]
        if missing:
            raise ProfileError(
                f"sample of op {self.name!r} lacks config key(s) {missing}; expected "
                f"keys {list(self.keys)}"
            )
        for key in self.keys:
            v = config[key]
            if isinstance(v, (bool, str)):
                continue
            if not isinstance(v, (int, float)) or v != int(v) or v < 1:
                raise ProfileError(
                    f"sample of op {self.name!r}: config key {key!r} must be a whole "
                    f"number >= 1, got {v!r}; fix the sample or re-create the profile")

    def input_shapes(self, config: Config) -> list[tuple]:
        return [tuple(s) for s in self.to_ir(config).input_shapes]

    def work(self, config: Config) -> costs.OpCost:
        """FLOPs and bytes of one sample, from the cost registry."""
        return costs.cost_of(self.to_ir(config))

    def weight_bytes(self, config: Config) -> float:
        """float32 weight bytes of one sample (what a network streams for it)."""
        return 4.0 * self.work(config).params

    def unread_bytes(self, config: Config) -> float:
        """Bytes of the cost registry's count (`work`) the runtime never reads: input a
        stride skips. The lookup's roofline base leaves them out; `analyze` counts
        tensors whole."""
        return 0.0

    def tiled_flops(self, config: Config, flops: float, row_tile: int | None = None) -> float:
        """FLOPs a CPU's SIMD kernel does for `config`, given the cost registry's
        count `flops`: the count itself unless the kernel pads its work to a tile
        along a dimension that is not a channel (`padded_config` pads those) or, with
        `row_tile` (the CPU's GEMM rows per step, `predictors.row_tile_for`), runs
        rows that are not a key of its own (a conv's output pixels). The lookup's base
        on a CPU (a channel tile known) uses it."""
        return flops

    def window_bytes(self, config: Config) -> float | None:
        """Bytes the kernel's inner loop reads for one output pixel and reuses for
        the next (a depthwise conv's taps over all channels), or None: the lookup's
        L1 feature (`predictors.featurize`)."""
        return None

    def regime(self, config: Config) -> str | None:
        """The name of the regime `config` falls in where a runtime may switch to a
        code path of its own there (`predictors.LookupTableModel` fits its samples
        apart when the table has enough), or None for the kind's main regime."""
        return None

    def op_class(self, config: Config) -> str:
        return costs.op_class(self.to_ir(config).type)

    def scale(self, config: Config, alive_in: float, alive_out: float) -> Config:
        """`config` with its channels scaled by the alive fractions of the layer's input
        (`in_channel_keys`) and output (the other channel keys) channels."""
        out = dict(config)
        for key in self.channel_keys:
            f = alive_in if key in self.in_channel_keys else alive_out
            out[key] = max(1, int(round(out[key] * f)))
        return out

    def features(self, config: Config, categories: dict[str, list],
                 channel_tile: int | None) -> list[float]:
        """The lookup regressor's view of a configuration (already padded to whole
        channel steps): log sizes; kernel size and stride as they are; booleans as
        0/1; categories one-hot; with `channel_tile`, each channel count also rounded
        up to whole tiles. The SIMD kernels do a whole tile's work for a partial one,
        a step the regressor cannot learn from log(c) alone (a network slimmed to 37
        channels costs what 48 do). On the validation benchmark this took RMSPE from
        7.0 to 6.2% on one profile and 8.7 to 7.1% on another, most on randomly
        slimmed networks."""
        feats: list[float] = []
        for key in sorted(config):
            v = config[key]
            if isinstance(v, bool):
                feats.append(float(v))
            elif isinstance(v, str):
                feats.extend(1.0 if v == c else 0.0 for c in categories.get(key, []))
            elif key in _LINEAR_KEYS:
                feats.append(float(v))
            else:
                feats.append(math.log(max(float(v), 1.0)))
                if key in CHANNEL_KEYS and channel_tile:
                    feats.extend(tile_features(v, channel_tile))
        return feats

    def __repr__(self) -> str:
        return f"<op kind {self.name!r} keys={list(self.keys)}>"


_LINEAR_KEYS = ("k", "s")


def _tiles(v: float, tile: int) -> float:
    return math.log(tile * math.ceil(max(float(v), 1.0) / tile))


def tile_features(v: float, tile: int) -> list[float]:
    """`v` channels rounded up to whole tiles of `tile` and of half a tile (one SIMD
    register on AVX2 and NEON): XNNPACK's GEMMs step two registers of output
    channels at a time, its depthwise kernels one, so a depthwise conv over 8
    channels on AVX2 costs half what one over 10 does (16.8 vs 33.4 us at 48x48).
    5-fold CV RMSPE on three EPYC profiles, tiles of 16 only -> 16 and 8: depthwise
    15.1/12.9/11.9 -> 10.8/11.5/12.2%, conv2d 9.8/9.8/12.5 -> 8.5/8.7/10.7%, dense
    unchanged."""
    out = [_tiles(v, tile)]
    if tile >= 2:
        out.append(_tiles(v, tile // 2))
    return out


# ------------------------------------------------------------------ op kinds

_KINDS: dict[str, OpKind] = {}


def register(cls: type[OpKind]) -> type[OpKind]:
    """Class decorator: register one instance of an OpKind subclass under its name."""
    kind = cls()
    if not kind.name or kind.name in _KINDS:
        raise ValueError(f"op kind {cls.__name__} needs a unique name, got {kind.name!r}")
    _KINDS[kind.name] = kind
    return cls


def get(name: str) -> OpKind:
    """The op kind `name`; ProfileError listing the known ones if there is none."""
    try:
        return _KINDS[name]
    except KeyError:
        raise ProfileError(
            f"unknown microbenchmark op {name!r}; known: {', '.join(sorted(_KINDS))}"
        ) from None


def kinds() -> list[OpKind]:
    """Every registered op kind, in registration order."""
    return list(_KINDS.values())


def names() -> frozenset[str]:
    return frozenset(_KINDS)


# -------------------------------------------------- Keras layers and LiteRT kernels
# A mapping returns [(op kind name, config)] that together time one Keras layer or one
# LiteRT kernel.

KERAS_LAYERS: dict[str, Callable[[Op], list[tuple[str, Config]]]] = {}
LITERT_KERNELS: dict[str, Callable[[Any], list[tuple[str, Config]]]] = {}


def _registrar(table: dict, what: str, names_: Sequence[str]):
    def deco(fn):
        for n in names_:
            if n in table:
                raise ValueError(f"{what} {n!r} is mapped twice")
            table[n] = fn
        return fn

    return deco


def keras_layer(*type_names: str):
    """Decorator: `fn(op) -> [(kind, config)]` times the Keras layers of these types
    (IR op types: class names, `ops.Add` for keras.ops calls)."""
    return _registrar(KERAS_LAYERS, "Keras layer type", type_names)


def litert_kernel(*builtin_names: str):
    """Decorator: `fn(kernel) -> [(kind, config)]` times these LiteRT builtin kernels
    (`kernels.litert.Kernel`)."""
    return _registrar(LITERT_KERNELS, "LiteRT kernel", builtin_names)


# ------------------------------------------------------------- shape helpers


def square(op: Op, key: str) -> int:
    """A window attribute as one side: the square of as many taps (7x1 -> 3)."""
    v = op.attrs.get(key, (1,))
    return int(round(math.sqrt(math.prod(v)))) if len(v) > 1 else int(v[0])


def layer_hw(shape) -> tuple[int, int]:
    """(h, w) of a Keras tensor: NHWC, or (steps, 1) for NWC, else (1, 1)."""
    if len(shape) == 4:
        return int(shape[1]), int(shape[2])
    if len(shape) == 3:
        return int(shape[1]), 1
    return 1, 1


def layer_same_input(op: Op, stride: int) -> tuple[int, int]:
    """Input (h, w) of a Keras conv layer as the SAME-padded conv the table samples:
    a "valid" conv (after a ZeroPadding2D, or with its border cropped) is timed as
    the SAME conv with its output, as `kernel_same_input` does for LiteRT. Timed at
    its padded input instead, a ResNet50V2 3x3 conv of a 4x4 map (2x2 out) read as
    the 4x4-output conv, 27x faster under XLA than its 2x2 one."""
    if str(op.attrs.get("padding", "valid")).lower() == "same":
        return layer_hw(op.input_shapes[0])
    ho, wo = layer_hw(op.output_shape)
    return ho * stride, (wo * stride if len(op.output_shape) == 4 else wo)


KERNEL_PADDING = {0: "SAME", 1: "VALID"}


def kernel_hw(shape: tuple) -> tuple[int, int]:
    """(h, w) of a LiteRT tensor: NHWC, else (1, 1)."""
    if len(shape) == 4:
        return shape[1], shape[2]
    return 1, 1


def kernel_padding(options: dict) -> str:
    """"SAME" or "VALID": a LiteRT conv or pool kernel's padding option ("" for a
    value the schema does not name)."""
    return KERNEL_PADDING.get(options.get("padding", 0), "")


def kernel_same_input(kernel: Any, stride: int) -> tuple[int, int]:
    """Input size whose SAME-padded output equals this kernel's output: a VALID conv
    after an explicit PAD is timed as the equivalent SAME conv."""
    ho, wo = kernel_hw(kernel.output_shapes[0])
    if kernel_padding(kernel.options) == "SAME":
        return kernel_hw(kernel.input_shapes[0])
    return ho * stride, wo * stride
