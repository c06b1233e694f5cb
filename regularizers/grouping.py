"""Channel groups of a Keras functional graph (built on the latency_lab graph IR).

A *group* is a set of channels that must be kept or removed together. Every conv/dense
layer (and Embedding: its table's columns) starts a new group of its output channels; layers that keep channel identity
(BatchNormalization, activations, pooling, padding, dropout, gates, ...) pass their
input's group through; element-wise merges (Add, Multiply, ...) tie the groups of their
inputs into one (union-find); Concatenate along the channel axis stacks groups, so a
tensor's channels are described by a list of *segments* ``(group_id, multiplier)``:
the channels of ``group_id``, repeated ``multiplier`` times (Flatten multiplies by the
spatial size, a depthwise conv with ``depth_multiplier=m`` repeats its input m times).

Channels are tied one by one, not only group by group: every conv/dense filter is an
*atom*; an Add ties atom i of each input, a channel shuffle (Reshape -> Permute ->
Reshape) ties channel k of the two halves it interleaves, a grouped conv (``groups > 1``)
ties channel j of every block of its input and of its output (the same count is
removed from each block). A group is a connected set of sources; its *classes* are the
equivalence classes of its atoms (a class is kept or removed whole), numbered in the
order of the group's first source, so a group of one conv (or of convs tied by Adds)
has class i = channel i. A segment whose channels are not exactly the group's classes
in order carries them in ``Segment.classes`` (a channel slice, a split, an interleaved
shuffle output, a grouped conv's repeated blocks).

The number of alive channels of a tensor is ``sum(multiplier * alive(group))`` over its
segments (`alive_count`; for a segment with ``classes``: the number of its channels
whose class is alive). A Reshape that splits the channel axis into several axes (the
shuffle's ``(h, w, 2, c // 2)``) keeps the layout of the flat channel block with
multiplier ``last dim / block size``, so the count stays in units of the IR channel
axis (the last one) and the cost functions need no special case. Frozen groups (model inputs and outputs, layers named in
``frozen_layers``, everything up to ``input_boundary``) always count in full.

Which layers pass, which are refused (checked against every class `keras.layers`
exports, Keras 3): layers that act channel by channel pass their input's groups through;
they are the `PASS_THROUGH_REGISTRY` table (type -> why): normalizations with
per-channel statistics (BatchNormalization, Normalization, Rescaling), activations,
dropouts and noise, padding / cropping / upsampling of every rank, Resizing and
CenterCrop, pooling of every rank (max, average, global, adaptive), and the random
geometric or per-value augmentations (RandomFlip, RandomRotation, RandomZoom,
RandomCrop, RandomBrightness, ...; identity at inference). Their configs do not depend
on the channel count, so `apply_structure` rebuilds them unchanged. Layers that mix
channels are refused with an error naming the layer and the reason from
`REFUSED_REASONS`: GroupNormalization (statistics across groups of channels),
Permute / RepeatVector (move the channel axis), Attention, Dot, EinsumDense and
recurrent layers (contract over channels), colour-image ops (RandomHue, RandomGrayscale, ...), Masking, spectrograms,
categorical preprocessing, Lambda / wrappers (unknown code), and RandomShear (per
channel, but Keras 3.15 cannot rebuild it from its config); any other type is refused
as unknown. Some types are decided by their arguments (`LAYOUT_RULES`): a norm across
the channel axis (LayerNormalization, RMSNormalization, UnitNormalization) passes its
channels through frozen: a transformer's residual stream, tied by its Adds, keeps its
width; a MultiHeadAttention contracts its inputs like a Dense and starts two groups,
its heads (``Group.unit`` "head": head h's q, k and v columns and its rows of the
output projection go together, counted as the attention op's last alive input) and
its output channels (frozen: their width follows the query's). With
``prune_residual_stream=True`` the stream is one prunable group instead: the norms
pass it through unfrozen and the attention's output channels (its output projection's
columns) are a source, which the residual Add ties into the stream (see
`build_channel_graph` for what that costs in exactness); a channel
slice ``x[..., a:b]`` (keras.ops GetItem) or ``keras.ops.split`` on the channel axis,
Reshape / Permute / keras.ops reshape and transpose that split the channel axis and
permute within it (a channel shuffle), and Softmax, which passes only over a
non-channel axis; a Reshape or Permute that mixes channels with other axes is refused
naming the layer. A refused layer can still be kept whole with ``frozen_layers=``;
a custom per-channel layer is added with `register_pass_through`.

Built once per model by `build_channel_graph`; nothing here runs per training step.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from latency_lab.graph import Graph, Op
from latency_lab.errors import InvalidArgumentError, LatencyLabError



class Segment(tuple):
    """``(group_id, multiplier)`` (unpacks and compares as that pair), plus ``classes``:
    None when the segment carries all the group's classes in order, else an int64 array
    naming, channel by channel, the class each carries (a slice, an interleaving, a
    grouped conv's repeated blocks)."""

    def __new__(cls, group: int, multiplier: float = 1, classes: Any = None):
        self = super().__new__(cls, (group, multiplier))
        self.classes = None if classes is None else np.asarray(classes, dtype=np.int64)
        return self

    def __reduce__(self):
        return (Segment, (self[0], self[1], self.classes))

    @property
    def group(self) -> int:
        return self[0]

    @property
    def multiplier(self) -> float:
        return self[1]

    def width(self, group_size: int) -> int:
        """Channels of this segment (before the multiplier)."""
        return group_size if self.classes is None else len(self.classes)


__all__ = [
    "take_sum",
    "ChannelGraph",
    "ChannelOp",
    "Group",
    "Segment",
    "LAYOUT_RULES",
    "split_boundaries",
    "build_channel_graph",
    "alive_count",
    "SOURCE_TYPES",
    "DEPTHWISE_TYPES",
    "PASS_THROUGH_TYPES",
    "PASS_THROUGH_REGISTRY",
    "BUILTIN_PASS_THROUGH_TYPES",
    "REFUSED_REASONS",
    "register_pass_through",
    "SUPPORTED_TYPES",
    "MERGE_TYPES",
    "ATTENTION_PROJECTIONS",
]

# Layers whose output channels are a new group (their filters / units).
SOURCE_TYPES = frozenset({
    "Conv1D", "Conv2D", "Conv3D",
    "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "SeparableConv1D", "SeparableConv2D",
    "Dense",
    "Embedding",  # a lookup of table rows: its output channels are the table's columns
})
# Output channels are the input channels (times depth_multiplier).
DEPTHWISE_TYPES = frozenset({"DepthwiseConv1D", "DepthwiseConv2D"})
# Channel i of the output is channel i of the input: the pass-through table. Each entry
# says why the layer acts channel by channel (keeps the channel axis, never mixes
# channels, and its config does not depend on the channel count, so `apply_structure`
# rebuilds it unchanged). Add a layer type with `register_pass_through`.
PASS_THROUGH_REGISTRY: dict[str, str] = {}
_WHY_ELEMENTWISE = "element-wise or per-channel parameters"
_WHY_SPATIAL = "spatial op, the same on every channel"
_WHY_RANDOM = "random augmentation, identity at inference, per channel when training"
for _types, _why in (
    (("BatchNormalization", "Rescaling", "Normalization"), "per-channel statistics"),
    (("Activation", "ReLU", "LeakyReLU", "ELU", "PReLU",
      "ops.Sigmoid", "ops.Relu", "ops.Relu6", "ops.HardSigmoid", "ops.Silu",
      "ops.HardSilu", "ops.Gelu", "ops.Tanh"), _WHY_ELEMENTWISE),
    (("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
      "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
      "Identity"), "identity at inference"),
    (("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
      "Cropping1D", "Cropping2D", "Cropping3D", "CenterCrop",
      "UpSampling1D", "UpSampling2D", "UpSampling3D", "Resizing"), _WHY_SPATIAL),
    (("MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
      "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
      "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
      "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
      "AdaptiveMaxPooling1D", "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D",
      "AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D", "AdaptiveAveragePooling3D"),
     "pooling, window by window on each channel"),
    (("RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomCrop",
      "RandomPerspective", "RandomElasticTransform", "RandomGaussianBlur",
      "RandomBrightness", "RandomContrast", "RandomErasing", "RandomInvert",
      "Solarization"), _WHY_RANDOM),
    (("ProbabilisticGate",), "a per-channel gate"),
):
    for _t in _types:
        PASS_THROUGH_REGISTRY[_t] = _why
del _types, _why, _t
# The table as shipped (`register_pass_through` adds a user's layers beside it).
BUILTIN_PASS_THROUGH_TYPES = frozenset(PASS_THROUGH_REGISTRY)

# Layers that mix channels (or whose channel behaviour is unknown), with why they are
# refused; the refusal names the layer and this reason. Types in neither table are
# refused as "unknown".
REFUSED_REASONS: dict[str, str] = {}
for _types, _why in (
    (("GroupNormalization",),
     "it normalizes over groups of channels and its `groups` depends on the channel count"),
    (("RepeatVector",), "it moves the channel axis"),
    (("Dot", "Attention", "AdditiveAttention", "GroupedQueryAttention", "EinsumDense"),
     "it contracts over the channel axis"),
    (("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D",
      "ConvLSTM3D"), "a recurrent layer mixes its input channels"),
    (("ReversibleEmbedding", "CategoryEncoding", "Hashing",
      "HashedCrossing", "IntegerLookup", "StringLookup", "TextVectorization",
      "Discretization"), "it maps values to new features (categorical preprocessing)"),
    (("RandomGrayscale", "RandomHue", "RandomSaturation", "RandomColorJitter",
      "RandomColorDegeneration", "AugMix", "RandAugment", "Equalization",
      "AutoContrast", "RandomSharpness", "RandomPosterization",
      "ContrastLimitedAdaptiveHistogramEqualization"),
     "an image colour op: it mixes colour channels or expects image values"),
    (("RandomShear",), "Keras cannot rebuild it from its own config (from_config "
     "rejects the negative factor get_config writes), so apply_structure could not "
     "copy it"),
    (("Masking",), "it masks a step when all its channels equal `mask_value`"),
    (("MelSpectrogram", "STFTSpectrogram"), "its output channels are frequency bins"),
    (("Lambda", "TimeDistributed", "Wrapper", "SpectralNormalization", "TFSMLayer",
      "JaxLayer", "FlaxLayer", "TorchModuleWrapper", "Pipeline"),
     "it runs arbitrary code whose channel behaviour is unknown"),
):
    for _t in _types:
        REFUSED_REASONS[_t] = _why
del _types, _why, _t


def register_pass_through(*op_types: str, why: str) -> None:
    """Let layers of `op_types` (IR type names: Keras class names, ``ops.Name`` for
    keras.ops) pass their input's channel groups through.

    Only for layers that keep the channel axis, never mix channels, and whose config
    does not depend on the channel count. Register a cost for them too
    (`latency_lab.costs.register`).

    Raises:
        InvalidArgumentError: no types, a type that is not a non-empty str, a type
            already grouped another way, or an empty `why`.
    """
    if not op_types:
        raise InvalidArgumentError("register_pass_through: give at least one layer type.")
    if not isinstance(why, str) or not why.strip():
        raise InvalidArgumentError(
            f"Invalid value for argument `why`: expected a non-empty str, received {why!r}.")
    other = (SOURCE_TYPES | DEPTHWISE_TYPES | MERGE_TYPES | RESHAPE_TYPES | CONCAT_TYPES
             | frozenset(LAYOUT_RULES))
    for t in op_types:
        if not isinstance(t, str) or not t:
            raise InvalidArgumentError(
                f"Invalid value for argument `op_types`: expected layer type names (str), "
                f"received {t!r}.")
        if t in other:
            raise InvalidArgumentError(
                f"register_pass_through: {t!r} is already grouped as a conv/dense, "
                "depthwise, merge, reshape, concat, slice, split, permute or softmax layer.")
    global PASS_THROUGH_TYPES, SUPPORTED_TYPES
    for t in op_types:
        PASS_THROUGH_REGISTRY[t] = why
    PASS_THROUGH_TYPES = frozenset(PASS_THROUGH_REGISTRY)
    SUPPORTED_TYPES = sorted(other | PASS_THROUGH_TYPES)


# Element-wise ops over several tensors: their inputs' channels are tied. With a single
# tensor input (``x + 3.0``) the keras.ops ones pass their input through.
MERGE_TYPES = frozenset({
    "Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average",
    "ops.Add", "ops.Subtract", "ops.Multiply", "ops.Divide", "ops.TrueDivide",
    "ops.Maximum", "ops.Minimum", "ops.Power", "CustomScaleLayer",
})
RESHAPE_TYPES = frozenset({"Flatten", "Reshape", "ops.Reshape"})
# A MultiHeadAttention's projections, the weights of its heads: (input role, sublayer,
# head axis of its kernel). q, k and v kernels are (in, heads, dim) and their biases
# (heads, dim); the output kernel is (heads, dim, out...), its bias has no heads axis.
ATTENTION_PROJECTIONS = (("query", "query_dense", 1), ("key", "key_dense", 1),
                         ("value", "value_dense", 1), ("output", "output_dense", 0))
CONCAT_TYPES = frozenset({"Concatenate"})


def alive_count(segments: Sequence[Segment], alive_by_group: dict,
                class_alive: dict | None = None) -> Any:
    """``sum(multiplier * alive)`` over `segments`: Python numbers or tensors.

    A segment with ``classes`` counts its channels whose class is alive in
    ``class_alive[group]`` (a 0/1 vector per class); a group absent there counts in
    full (frozen and unregularized groups)."""
    total: Any = 0
    for seg in segments:
        gid, mult = seg[0], seg[1]
        classes = getattr(seg, "classes", None)
        if classes is None:
            a = alive_by_group[gid]
        elif class_alive is not None and gid in class_alive:
            a = take_sum(class_alive[gid], classes)
        else:
            a = len(classes)
        total = total + (a if mult == 1 else mult * a)
    return total


def take_sum(vector: Any, classes: np.ndarray) -> Any:
    """sum(vector[classes]) for a numpy array or a backend tensor."""
    if isinstance(vector, np.ndarray):
        return vector[classes].sum()
    from keras import ops

    return ops.sum(ops.take(vector, classes, axis=0))


@dataclass
class Group:
    """A set of channels kept or removed together, ``size`` classes wide.

    ``sources`` are the names of the conv/dense ops whose outputs are (tied into) this
    group (for a group of heads: the MultiHeadAttention op); ``frozen_reasons`` says why
    a frozen group is frozen (empty: prunable). ``unit`` is what one class is: a
    "channel", or a "head" of a MultiHeadAttention (its q, k, v columns and its rows of
    the output projection, kept or removed together).
    """

    id: int
    size: int
    sources: list[str] = field(default_factory=list)
    frozen_reasons: list[str] = field(default_factory=list)
    unit: str = "channel"

    @property
    def frozen(self) -> bool:
        return bool(self.frozen_reasons)


@dataclass
class ChannelOp:
    """One op of the IR with the channel layout of its inputs and output.

    ``kind``: "source" (conv/dense), "depthwise", "attention" (MultiHeadAttention),
    "pass_through", "merge", "concat", "reshape", "slice", "split", "permute", "input"
    or "frozen" (an unknown layer named in frozen_layers / behind the input boundary).
    ``in_segments`` has one segment list per input tensor, and for an attention op one
    more at the end: its heads (`head_segments`), so a cost reads the alive heads as
    its last alive-input count and the regularization term covers them like any
    input; ``out_segments`` is the layout of the (first) output,
    ``extra_out_segments`` those of the others (a split). ``exact``: the output layout
    lists the channels in their order (False after Flatten or a depthwise
    ``depth_multiplier > 1``, whose layouts only count). ``out_block``: ``(dims, axis)``
    when a Reshape split the channel axis: the flat channel block's shape and the axis
    channels are removed along. ``payload`` is free for a regularizer subclass (see
    `NetworkRegularizer.prepare_op`).
    """

    name: str
    type: str
    op: Op
    kind: str
    in_segments: list[list[Segment]]
    out_segments: list[Segment]
    frozen: bool = False
    payload: Any = None
    extra_out_segments: list[list[Segment]] = field(default_factory=list)
    exact: bool = True
    out_block: tuple | None = None

    @property
    def out_group(self) -> int | None:
        """The output group of a single-segment output (conv/dense: always)."""
        if len(self.out_segments) == 1 and self.out_segments[0][1] == 1:
            return self.out_segments[0][0]
        return None

    @property
    def out_classes(self) -> np.ndarray | None:
        """Class of each output channel of a single-segment output (None: channel i is
        class i)."""
        return self.out_segments[0].classes if self.out_group is not None else None

    @property
    def head_segments(self) -> list[Segment] | None:
        """The heads of an attention op (one segment of its head group), else None."""
        return self.in_segments[-1] if self.kind == "attention" else None

    @property
    def head_group(self) -> int | None:
        """The head group id of an attention op, else None."""
        return self.head_segments[0][0] if self.kind == "attention" else None

    @property
    def structure_group(self) -> int | None:
        """The group a structure entry of this layer sets: a conv/dense's output group,
        an attention op's heads."""
        return self.head_group if self.kind == "attention" else self.out_group

    @property
    def structure_classes(self) -> np.ndarray | None:
        """Class of each unit a structure entry counts (None: unit i is class i)."""
        return self.head_segments[0].classes if self.kind == "attention" else self.out_classes

    @property
    def structure_width(self) -> int:
        """Units a structure entry of this layer counts at full width: output channels,
        or an attention op's heads."""
        if self.kind == "attention":
            return int(self.op.attrs["num_heads"])
        return self.op.channels_out

    @property
    def layer_name(self) -> str:
        """The Keras layer name (IR names of a shared layer's later calls end in #i)."""
        return self.name.split("#", 1)[0]


@dataclass
class ChannelGraph:
    """Channel groups of a model. ``ops`` are all IR ops in topological order."""

    graph: Graph
    groups: dict[int, Group]
    ops: list[ChannelOp]
    consumers: dict[str, list[str]]  # op name -> names of ops reading its first output
    tie_warnings: list[str] = field(default_factory=list)
    prune_residual_stream: bool = False  # how it was built (see build_channel_graph)

    def __post_init__(self) -> None:
        self._by_name = {op.name: op for op in self.ops}

    def op(self, name: str) -> ChannelOp:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"model {self.graph.name!r} has no layer named {name!r}") from None

    @property
    def sources(self) -> list[ChannelOp]:
        """Conv/dense ops (one entry per call), in graph order."""
        return [o for o in self.ops if o.kind == "source"]

    @property
    def structure_ops(self) -> list[ChannelOp]:
        """The ops a structure names (one entry per call): conv/dense layers (their
        output channels), then MultiHeadAttention layers (their heads)."""
        return self.sources + self.attention_ops

    @property
    def costed_ops(self) -> list[ChannelOp]:
        """Conv, dense, depthwise and attention ops: what FLOP and model-size costs
        count."""
        return [o for o in self.ops if o.kind in ("source", "depthwise", "attention")]

    @property
    def attention_ops(self) -> list[ChannelOp]:
        """MultiHeadAttention ops (one entry per call), in graph order."""
        return [o for o in self.ops if o.kind == "attention"]

    def group_of(self, name: str) -> Group:
        """The output group of a conv/dense op."""
        gid = self.op(name).out_group
        if gid is None:
            raise InvalidArgumentError(f"layer {name!r} has no single output group")
        return self.groups[gid]

    def has_classes(self, gid: int) -> bool:
        """True when a source of the group does not map channel i to class i (its
        layers then have their own widths: a structure gives each its own count)."""
        g = self.groups[gid]
        if g.unit == "head":
            return any(self.op(src).structure_classes is not None for src in g.sources)
        return any(self.op(src).out_classes is not None for src in g.sources)

    def alive_count(self, segments: Sequence[Segment], alive_by_group: dict,
                    class_alive: dict | None = None) -> Any:
        return alive_count(segments, alive_by_group, class_alive)

    def segment_classes(self, segment: Segment) -> np.ndarray:
        """The class of each channel of `segment` (before its multiplier)."""
        if segment.classes is not None:
            return segment.classes
        return np.arange(self.groups[segment[0]].size, dtype=np.int64)

    def summary(self) -> str:
        lines = [f"channel groups of {self.graph.name!r}:"]
        for gid, g in self.groups.items():
            state = "frozen (" + ", ".join(sorted(set(g.frozen_reasons))) + ")" if g.frozen else "prunable"
            lines.append(f"  group {gid}: {g.size} {g.unit}s, {state}, sources {g.sources}")
        return "\n".join(lines)


# ----------------------------------------------------------------------- union-find


class _UnionFind:
    """Groups (sets of sources); sizes are settled from the atoms at the end."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.sources: list[list[str]] = []
        self.reasons: list[list[str]] = []
        self.units: list[str] = []

    def new(self, source: str | None = None, frozen: str | None = None,
            unit: str = "channel") -> int:
        gid = len(self.parent)
        self.parent.append(gid)
        self.sources.append([source] if source else [])
        self.reasons.append([frozen] if frozen else [])
        self.units.append(unit)
        return gid

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if ra > rb:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.sources[ra].extend(self.sources[rb])
        self.reasons[ra].extend(self.reasons[rb])
        return ra

    def freeze(self, g: int, reason: str) -> None:
        self.reasons[self.find(g)].append(reason)


class _Atoms:
    """Union-find over single channels (atoms); tying two atoms ties their groups."""

    def __init__(self, groups: _UnionFind) -> None:
        self.groups = groups
        self.parent: list[int] = []
        self.owner: list[int] = []  # atom -> the group it was created in
        self.shared: dict[str, np.ndarray] = {}  # first call of a shared conv -> atoms
        self.heads: dict[str, np.ndarray] = {}  # attention op -> the atoms of its heads
        # The build's option, read by the norm and attention rules (see build_channel_graph).
        self.prune_residual_stream = False

    def new(self, n: int, source: str | None = None, frozen: str | None = None,
            unit: str = "channel") -> np.ndarray:
        gid = self.groups.new(source, frozen, unit)
        base = len(self.parent)
        self.parent.extend(range(base, base + n))
        self.owner.extend([gid] * n)
        return np.arange(base, base + n, dtype=np.int64)

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def tie(self, xs: Iterable[int], ys: Iterable[int]) -> None:
        for a, b in zip(xs, ys):
            ra, rb = self.find(int(a)), self.find(int(b))
            if ra != rb:
                if ra > rb:
                    ra, rb = rb, ra
                self.parent[rb] = ra
            self.groups.union(self.owner[int(a)], self.owner[int(b)])

    def tie_blocks(self, flat: np.ndarray, blocks: int) -> None:
        """Tie channel j of every one of `blocks` equal consecutive blocks."""
        per = len(flat) // blocks
        for k in range(1, blocks):
            self.tie(flat[:per], flat[k * per:(k + 1) * per])

    def group_of(self, a: int) -> int:
        return self.groups.find(self.owner[int(a)])


@dataclass
class _Layout:
    """A tensor's channels while building: segments of atoms with a count multiplier.

    ``exact``: the atoms list the channels in order (one segment list, every multiplier
    the block fraction). ``block``/``axis``: the shape of the flat channel block after a
    Reshape split the channel axis, and the axis channels are removed along."""

    segs: list  # [(atoms: int64 array, multiplier)]
    exact: bool = True
    block: tuple = ()  # () : one channel axis
    axis: int = 0

    @classmethod
    def of(cls, atoms: np.ndarray) -> "_Layout":
        return cls([(atoms, 1)])

    @property
    def dims(self) -> tuple:
        return self.block or (len(self.flat),)

    @property
    def flat(self) -> np.ndarray:
        return np.concatenate([a for a, _ in self.segs]) if self.segs else np.zeros(0, np.int64)

    @property
    def split_block(self) -> bool:
        return len(self.block) > 1

    def channels(self) -> float:
        return sum(len(a) * m for a, m in self.segs)


# ------------------------------------------------------------------------- builder


def _names_matching(graph: Graph, names: Iterable[str], what: str) -> set[str]:
    """IR op names for user-given layer names (the IR name, the Keras layer name
    without a shared-call ``#i`` suffix, or the last part of a nested name)."""
    out: set[str] = set()
    for n in names:
        if not isinstance(n, str):
            raise InvalidArgumentError(
                f"Invalid value for argument `{what}`: expected layer names (str), "
                f"received {n!r}."
            )
        hits = [op.name for op in graph.ops
                if op.name == n or op.name.split("#", 1)[0] == n
                or op.name.split("#", 1)[0].rsplit("/", 1)[-1] == n]
        if not hits:
            raise InvalidArgumentError(
                f"Invalid value for argument `{what}`: model {graph.name!r} has no layer "
                f"named {n!r}. Layer names: {', '.join(op.name for op in graph.ops)}."
            )
        out.update(hits)
    return out


def _upstream(graph: Graph, names: set[str]) -> set[str]:
    """`names` and every op they depend on."""
    seen: set[str] = set()
    stack = list(names)
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(ref.rsplit(":", 1)[0] for ref in graph.op(n).inputs)
    return seen


def _strip_ones(shape: Sequence[int]) -> tuple:
    return tuple(int(d) for d in shape if int(d) != 1)


class _Refused(LatencyLabError):
    """A layout rule cannot group this op; the message says why (named by the caller)."""


# A layout rule: (atoms, op, input layouts) -> (kind, output layouts), or raise _Refused.
LayoutRule = Callable[[_Atoms, Op, list], tuple]
LAYOUT_RULES: dict[str, LayoutRule] = {}


def _rule(*op_types: str):
    def deco(fn: LayoutRule) -> LayoutRule:
        for t in op_types:
            LAYOUT_RULES[t] = fn
        return fn
    return deco


def _channel_axis(op: Op, rank: int) -> int:
    return op.channel_axis % rank


def _need_exact(lay: _Layout, what: str, allow_block: bool = False) -> np.ndarray:
    if not lay.exact or (lay.split_block and not allow_block):
        raise _Refused(f"{what} needs channels in their order, but its input comes from a "
                       "Flatten, a depthwise conv with depth_multiplier > 1 or a Reshape "
                       "that split the channel axis")
    return lay.flat


@_rule("Softmax", "ops.Softmax")
def _softmax_rule(atoms: _Atoms, op: Op, ins: list) -> tuple:
    rank = len(op.input_shapes[0])
    axis = op.attrs.get("axis", -1)
    axes = axis if isinstance(axis, tuple) else (axis,)
    if any(int(a) % rank == _channel_axis(op, rank) for a in axes):
        raise _Refused(f"a softmax over the channel axis (axis={axis}) normalizes across "
                       "channels, so each output channel depends on all of them; only a "
                       "softmax over another axis passes channel groups through")
    return "pass_through", [ins[0]]


def _slice_bounds(op: Op) -> tuple | None:
    """(start, stop) of a GetItem on the channel axis with every other axis (batch
    included) taken whole or sliced with step 1; None when it is not a plain slice."""
    key = op.attrs.get("getitem")
    if key is None:
        return None
    shape = op.input_shapes[0]
    ch = _channel_axis(op, len(shape))
    start, stop, step = key[ch]
    if step != 1 or key[0] != (0, int(shape[0]), 1):
        return None
    return start, stop


@_rule("LayerNormalization", "RMSNormalization", "UnitNormalization")
def _stream_norm_rule(atoms: _Atoms, op: Op, ins: list) -> tuple:
    """A norm over the channel axis passes its input's channels through and freezes
    them: each output channel depends on all of them (in a transformer: the residual
    stream, which every Add and norm of the stream ties into one group). With
    ``prune_residual_stream`` it does not freeze them: the user accepts that the slim
    norm's statistics are over the kept channels only. A norm over other axes only
    (LayerNormalization(axis=1)) acts channel by channel."""
    lay = ins[0]
    rank = len(op.input_shapes[0])
    axis = op.attrs.get("axis", -1)
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    if not atoms.prune_residual_stream and any(
            int(a) % rank == _channel_axis(op, rank) for a in axes):
        reason = f"normalized across channels by {op.type} {op.name.split('#', 1)[0]!r}"
        for a in lay.flat:
            atoms.groups.freeze(atoms.owner[int(a)], reason)
    return "pass_through", [lay]


@_rule("MultiHeadAttention", "GatedMultiHeadAttention")
def _attention_rule(atoms: _Atoms, op: Op, ins: list) -> tuple:
    """Its inputs' channels are contracted by the q, k, v projections (as a Dense's
    input is); its heads are a new group of `num_heads` classes (`Group.unit` "head",
    recorded in `_Atoms.heads`: head h's q, k, v columns and its rows of the output
    projection go together); its output channels are a new frozen group (the output
    projection's width follows the query's: prune the heads instead), or, with
    ``prune_residual_stream``, a source of the output projection's columns, which a
    residual Add ties into the stream. Every call of a shared layer has the same heads
    (and output channels)."""
    if op.attrs.get("use_gate"):
        raise _Refused("use_gate=True adds a gate projection per head that pruning does "
                       "not slice yet")
    heads = atoms.new(int(op.attrs["num_heads"]), source=op.name, unit="head")
    shared = op.attrs.get("shared_from")
    if shared and shared in atoms.heads:
        atoms.tie(heads, atoms.heads[shared])
    atoms.heads[op.name] = heads
    name = op.name.split("#", 1)[0]
    if not atoms.prune_residual_stream:
        out = atoms.new(op.channels_out, source=op.name,
                        frozen=f"output of MultiHeadAttention {name!r} (its heads are pruned)")
        return "attention", [_Layout.of(out)]
    out = atoms.new(op.channels_out, source=op.name)
    if shared and shared in atoms.shared:  # one output projection for every call
        atoms.tie(out, atoms.shared[shared])
    atoms.shared.setdefault(op.name, out)
    return "attention", [_Layout.of(out)]


@_rule("ops.GetItem")
def _getitem_rule(atoms: _Atoms, op: Op, ins: list) -> tuple:
    bounds = _slice_bounds(op)
    if bounds is None:
        raise _Refused(f"only slices with step 1 (x[..., a:b], spatial crops) keep channel "
                       f"groups; this index is {op.attrs.get('getitem_key', '?')}")
    start, stop = bounds
    c = int(op.input_shapes[0][_channel_axis(op, len(op.input_shapes[0]))])
    if (start, stop) == (0, c):
        return "pass_through", [ins[0]]
    flat = _need_exact(ins[0], "a channel slice")
    return "slice", [_Layout.of(flat[start:stop])]


def split_boundaries(op: Op) -> list[int] | None:
    """Channel positions where a keras.ops.split on the channel axis cuts (None: it
    splits another axis)."""
    shape = op.input_shapes[0]
    rank = len(shape)
    if int(op.attrs.get("axis", 0)) % rank != _channel_axis(op, rank):
        return None
    c = int(shape[_channel_axis(op, rank)])
    sections = op.attrs.get("indices_or_sections")
    if isinstance(sections, tuple):
        return [int(i) for i in sections]
    n = int(sections)
    return [c // n * i for i in range(1, n)]


@_rule("ops.Split")
def _split_rule(atoms: _Atoms, op: Op, ins: list) -> tuple:
    cuts = split_boundaries(op)
    if cuts is None:
        return "pass_through", [ins[0]] * len(op.output_shapes)
    flat = _need_exact(ins[0], "a channel split")
    edges = [0, *cuts, len(flat)]
    return "split", [_Layout.of(flat[a:b]) for a, b in zip(edges[:-1], edges[1:])]


def _block_reshape(op: Op, lay: _Layout) -> tuple | None:
    """(new block dims) when a reshape keeps every axis before the channel block and
    only reshapes the block, else None."""
    in_shape = tuple(int(d) for d in op.input_shapes[0][1:])
    out_shape = tuple(int(d) for d in op.output_shape[1:])
    k = len(lay.dims)
    prefix = in_shape[:len(in_shape) - k]
    if out_shape[:len(prefix)] != prefix:
        return None
    new = out_shape[len(prefix):]
    if not new or math.prod(new) != math.prod(lay.dims):
        return None
    return new


@_rule("Reshape", "ops.Reshape", "Flatten")
def _reshape_rule(atoms: _Atoms, op: Op, ins: list) -> tuple:
    lay = ins[0]
    if not lay.split_block:
        out = _reshape_layout(op, lay)
        if out is not None:
            return "reshape", [out]
    new = _block_reshape(op, lay)
    if new is not None and lay.exact and (len(new) == 1 or not lay.split_block):
        flat = lay.flat
        if len(new) == 1:  # the block merged back into one channel axis
            return "reshape", [_Layout.of(flat)]
        # The channel axis split into `new`: channels are removed along the last axis,
        # so channel j of every row of the block is tied (kept or removed together).
        atoms.tie_blocks(flat, len(flat) // new[-1])
        frac = new[-1] / len(flat)
        return "reshape", [_Layout([(flat, frac)], True, new, len(new) - 1)]
    raise _Refused(
        f"a {op.type} from {op.input_shapes[0][1:]} to {op.output_shape[1:]} moves "
        "channels; only Flatten, reshapes that add or drop size-1 dims, and reshapes "
        "that split the channel axis (or merge it back) keep channel groups")


def _full_perm(op: Op) -> tuple | None:
    rank = len(op.input_shapes[0])
    if op.type == "Permute":
        dims = op.attrs.get("dims")
        return None if dims is None else (0, *(int(d) for d in dims))
    axes = op.attrs.get("axes")
    if axes is None:
        return tuple(reversed(range(rank)))
    return tuple(int(a) % rank for a in axes)


@_rule("Permute", "ops.Transpose")
def _permute_rule(atoms: _Atoms, op: Op, ins: list) -> tuple:
    lay = ins[0]
    rank = len(op.input_shapes[0])
    perm = _full_perm(op)
    k = len(lay.dims)
    block_axes = list(range(rank - k, rank))
    if perm is None or perm[0] != 0 or sorted(perm[rank - k:]) != block_axes:
        raise _Refused(f"it moves the channel axis (permutation {perm}); only "
                       "permutations within the channel block (a channel shuffle) or "
                       "among the other axes keep channel groups")
    bperm = [p - (rank - k) for p in perm[rank - k:]]
    if bperm == list(range(k)):
        return "pass_through", [lay]
    flat = _need_exact(lay, "a permutation within the channel block", allow_block=True)
    order = np.arange(len(flat)).reshape(lay.dims).transpose(bperm).reshape(-1)
    block = tuple(lay.dims[p] for p in bperm)
    frac = block[-1] / len(flat)
    return "permute", [_Layout([(flat[order], frac)], True, block, bperm.index(lay.axis))]


def build_channel_graph(
    model_or_graph: Any,
    *,
    input_boundary: Sequence[str] | None = None,
    frozen_layers: Iterable[str] = (),
    input_shape: Sequence[int] | None = None,
    prune_residual_stream: bool = False,
) -> ChannelGraph:
    """Channel groups of a Keras Functional/Sequential model (or a latency_lab Graph).

    Args:
        model_or_graph: a built Keras model, or a `latency_lab.graph.Graph`.
        input_boundary: layer names; these layers and everything upstream of them are
            never regularized (their groups are frozen).
        frozen_layers: layer names kept at full width: a conv/dense keeps all its
            output channels, a pass-through keeps the group flowing through it, and a
            layer of an unsupported type becomes a new frozen group of its outputs.
        input_shape: input size without batch, for models with variable input sizes.
        prune_residual_stream: let a transformer's residual stream shrink: norms over
            the channel axis (LayerNormalization, RMSNormalization, UnitNormalization)
            no longer freeze their channels, and a MultiHeadAttention's output
            channels (its output projection's columns) are a source that the residual
            Add ties into the stream, so the stream (its embedding, every Add, norm,
            attention output and MLP output on it) is one prunable group. Off by
            default because the slim model is then not the masked one: a norm over
            fewer channels takes its mean and variance over the kept channels only,
            where the masked network's norm also counted the removed (zeroed) ones, so
            the slim model approximates the masked one and needs fine-tuning; heads and
            MLP units stay exact. An attention output tied to no conv/dense (nothing a
            structure could name) stays frozen.

    Raises:
        ValueError: a layer type that cannot be grouped (name it in frozen_layers), an
            unknown layer name in input_boundary / frozen_layers.
    """
    if isinstance(model_or_graph, Graph):
        graph = model_or_graph
    else:
        from latency_lab.keras_graph import from_keras

        graph = from_keras(model_or_graph, batch_size=1, input_shape=input_shape)

    if isinstance(frozen_layers, str):
        frozen_layers = (frozen_layers,)
    if isinstance(input_boundary, str):
        input_boundary = [input_boundary]
    frozen_names = _names_matching(graph, frozen_layers or (), "frozen_layers")
    boundary_names = _names_matching(graph, input_boundary or (), "input_boundary")
    behind_boundary = _upstream(graph, boundary_names) if boundary_names else set()

    uf = _UnionFind()
    atoms = _Atoms(uf)
    atoms.prune_residual_stream = _check_flag("prune_residual_stream", prune_residual_stream)
    layout_of: dict[str, _Layout] = {}
    raw: list[tuple] = []  # (op, kind, in layouts, out layouts, frozen)
    consumers: dict[str, list[str]] = {}
    tie_warnings: list[str] = []
    first_source_call: dict[str, np.ndarray] = {}  # shared conv: all calls tied

    for op in graph.ops:
        for ref in op.inputs:
            if ":" not in ref:
                consumers.setdefault(ref, []).append(op.name)
        ins = [layout_of[ref] for ref in op.inputs]
        frozen_here = op.name in frozen_names or op.name in behind_boundary
        reason = "frozen_layers" if op.name in frozen_names else "input_boundary"
        t = op.type
        try:
            if any(lay.split_block for lay in ins) and t not in _BLOCK_TYPES:
                raise _Refused("its input's channel axis was split into several axes by a "
                               "Reshape; only Reshape / Permute (a channel shuffle) may "
                               "follow before the channels are merged back")
            kind, outs = _layout(atoms, op, ins, tie_warnings)
        except _Refused as exc:
            if not frozen_here:
                raise InvalidArgumentError(_refusal(op, str(exc))) from None
            kind, outs = "frozen", [_Layout.of(atoms.new(op.channels_out, frozen=reason))]
        if frozen_here:
            heads = [atoms.heads[op.name]] if kind == "attention" else []
            for a in [*(a for lay in outs for a in lay.flat), *(a for h in heads for a in h)]:
                uf.freeze(atoms.owner[int(a)], reason)
        for i, shape in enumerate(op.output_shapes):
            if i >= len(outs):  # other outputs of a multi-output op
                ch = int(shape[op.channel_axis]) if len(shape) >= 2 else 1
                outs.append(_Layout.of(atoms.new(ch, frozen=f"output {i} of {op.name}")))
            layout_of[op.name if i == 0 else f"{op.name}:{i}"] = outs[i]
        raw.append((op, kind, ins, outs, frozen_here))

    for name in graph.outputs:
        for a in layout_of[name].flat:
            uf.freeze(atoms.owner[int(a)], "model output")
    if atoms.prune_residual_stream:
        _freeze_unnamed_attention_outputs(uf, {op.name for op, kind, *_ in raw
                                               if kind == "attention"})

    groups, finalize = _settle(atoms)
    ops = []
    for op, kind, ins, outs, frozen in raw:
        out0 = outs[0]
        if kind == "attention":  # its heads, as one more input (see ChannelOp)
            ins = [*ins, _Layout.of(atoms.heads[op.name])]
        ops.append(ChannelOp(
            op.name, op.type, op, kind, [finalize(lay) for lay in ins], finalize(out0),
            frozen, extra_out_segments=[finalize(lay) for lay in outs[1:]],
            exact=out0.exact, out_block=(out0.block, out0.axis) if out0.split_block else None))
    for w in tie_warnings:
        warnings.warn(w, stacklevel=3)
    return ChannelGraph(graph=graph, groups=groups, ops=ops, consumers=consumers,
                        tie_warnings=tie_warnings,
                        prune_residual_stream=atoms.prune_residual_stream)


_BLOCK_TYPES = frozenset({"Reshape", "ops.Reshape", "Permute", "ops.Transpose"})


def _check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentError(
            f"Invalid value for argument `{name}`: expected True or False, received "
            f"{value!r}.")
    return bool(value)


def _freeze_unnamed_attention_outputs(uf: _UnionFind, attention: set[str]) -> None:
    """Freeze channel groups whose only sources are attention outputs: a structure
    names an attention layer's heads, so no entry could record their width."""
    for g in range(len(uf.parent)):
        if uf.find(g) != g or uf.units[g] != "channel" or uf.reasons[g]:
            continue
        if uf.sources[g] and all(src in attention for src in uf.sources[g]):
            names = sorted({src.split("#", 1)[0] for src in uf.sources[g]})
            uf.freeze(g, f"output of MultiHeadAttention {', '.join(map(repr, names))} "
                         "tied to no conv/dense a structure could name")


def _refusal(op: Op, why: str) -> str:
    layer_name = op.name.split("#", 1)[0]
    return (f"Layer {layer_name!r} of type {op.type!r} cannot be grouped by channel "
            f"({why}). Supported types: {', '.join(SUPPORTED_TYPES)}. Add "
            f"{layer_name!r} to `frozen_layers=` to keep its output channels whole "
            "(not regularized), or put it behind `input_boundary=`.")


def _layout(atoms: _Atoms, op: Op, ins: list, tie_warnings: list) -> tuple[str, list]:
    """(kind, output layouts) of one op; raises _Refused when it cannot be grouped."""
    t = op.type
    if t == "InputLayer":
        return "input", [_Layout.of(atoms.new(op.channels_out, frozen="model input"))]
    if t in LAYOUT_RULES:
        return LAYOUT_RULES[t](atoms, op, ins)
    if t in SOURCE_TYPES:
        out = atoms.new(op.channels_out, source=op.name)
        groups = int(op.attrs.get("groups", 1) or 1)
        if groups > 1:  # the same count removed from every block, in and out
            atoms.tie_blocks(_need_exact(ins[0], "a grouped convolution"), groups)
            atoms.tie_blocks(out, groups)
        shared = op.attrs.get("shared_from")
        if shared and shared in atoms.shared:  # every call of a shared conv: one group
            atoms.tie(out, atoms.shared[shared])
        atoms.shared.setdefault(op.name, out)
        return "source", [_Layout.of(out)]
    if t in DEPTHWISE_TYPES:
        dm = int(op.attrs.get("depth_multiplier", 1))
        if dm == 1:
            return "depthwise", [ins[0]]
        return "depthwise", [_Layout(list(ins[0].segs) * dm, False)]
    if t in PASS_THROUGH_REGISTRY:
        return "pass_through", [ins[0]]
    if t in MERGE_TYPES:
        return "merge", [_tie(atoms, op, ins, tie_warnings)]
    if t in CONCAT_TYPES:
        rank = len(op.output_shape)
        if int(op.attrs.get("axis", -1)) % rank == _channel_axis(op, rank):
            return "concat", [_Layout([s for lay in ins for s in lay.segs],
                                      all(lay.exact for lay in ins))]
        return "merge", [_tie(atoms, op, ins, tie_warnings)]
    raise _Refused(REFUSED_REASONS.get(t, "its channel behaviour is unknown"))


def _tie(atoms: _Atoms, op: Op, ins: list, tie_warnings: list) -> _Layout:
    """Tie the channels of the inputs of an element-wise op; return the output layout."""
    if len(ins) == 1:  # `x + 3.0`: one tensor, constants beside it
        return ins[0]
    counts = [lay.channels() for lay in ins]
    full = max(counts)
    # A size-1 channel axis broadcasts (e.g. a spatial attention map); it ties nothing.
    live = [lay for lay, c in zip(ins, counts) if not (c == 1 and full > 1)] or ins[:1]
    first = live[0]
    if all(lay.exact and lay.dims == first.dims for lay in live):
        for lay in live[1:]:  # channel by channel, whatever the segmentation
            atoms.tie(first.flat, lay.flat)
        return first

    def signature(lay):
        return [(len(a), m) for a, m in lay.segs]

    if all(signature(lay) == signature(first) for lay in live[1:]):
        for lay in live[1:]:
            for (a, _), (b, _) in zip(first.segs, lay.segs):
                atoms.tie(a, b)
        return first
    for lay in live:
        for a in lay.flat:
            atoms.groups.freeze(atoms.owner[int(a)], f"mismatched tie at {op.name}")
    tie_warnings.append(
        f"layer {op.name!r} ({op.type}) combines inputs whose channels cannot be matched "
        "one by one (e.g. a flattened tensor added to another layout); those channels "
        "are kept whole (not regularized)."
    )
    return first


def _reshape_layout(op: Op, lay: _Layout) -> _Layout | None:
    """Output layout of Flatten / Reshape, or None if the reshape moves channels."""
    in_shape = tuple(op.input_shapes[0][1:])
    out_shape = tuple(op.output_shape[1:])
    rank = len(op.input_shapes[0])
    ch_axis = op.channel_axis % rank if rank >= 2 else 0
    spatial = math.prod(int(d) for i, d in enumerate(op.input_shapes[0]) if i not in (0, ch_axis))
    if op.type == "Flatten" or (len(out_shape) == 1 and out_shape[0] == math.prod(in_shape)):
        if ch_axis != rank - 1 and spatial != 1 and op.type != "Flatten":
            return None
        if spatial == 1:
            return lay
        return _Layout([(a, m * spatial) for a, m in lay.segs], False)
    # Only size-1 dims added or dropped, channel axis preserved.
    if _strip_ones(in_shape) == _strip_ones(out_shape) and out_shape and \
            int(out_shape[-1]) == int(op.input_shapes[0][ch_axis]):
        return lay
    # Other axes merged or split, the channel axis last and untouched ((h, w, c) ->
    # (h * w, c): a ViT's patches to tokens).
    if ch_axis == rank - 1 and len(out_shape) >= 2 and out_shape[-1] == in_shape[-1] \
            and math.prod(out_shape[:-1]) == math.prod(in_shape[:-1]):
        return lay
    return None


def _settle(atoms: _Atoms) -> tuple[dict[int, Group], Callable[[_Layout], list[Segment]]]:
    """Groups numbered 0..n-1 in order of first appearance, their classes numbered in
    atom order (a group's first source gives classes 0..n-1), and the function turning a
    layout into Segments."""
    uf = atoms.groups
    renumber: dict[int, int] = {}
    groups: dict[int, Group] = {}
    class_of = np.zeros(len(atoms.parent), dtype=np.int64)
    group_of = np.zeros(len(atoms.parent), dtype=np.int64)
    class_ids: dict[int, int] = {}
    for a in range(len(atoms.parent)):
        r = uf.find(atoms.owner[a])
        if r not in renumber:
            renumber[r] = len(renumber)
            groups[renumber[r]] = Group(renumber[r], 0, list(dict.fromkeys(uf.sources[r])),
                                        list(dict.fromkeys(uf.reasons[r])), uf.units[r])
        g = groups[renumber[r]]
        root = atoms.find(a)
        if root not in class_ids:
            class_ids[root] = g.size
            g.size += 1
        class_of[a], group_of[a] = class_ids[root], g.id
    # Groups of ops without atoms (none in practice) are not listed.

    def finalize(lay: _Layout) -> list[Segment]:
        out: list[Segment] = []
        for a, mult in lay.segs:
            if not len(a):
                continue
            mult = int(mult) if float(mult).is_integer() else float(mult)
            gids, cls = group_of[a], class_of[a]
            cuts = np.flatnonzero(np.diff(gids)) + 1
            for lo, hi in zip([0, *cuts], [*cuts, len(a)]):
                gid, c = int(gids[lo]), cls[lo:hi]
                whole = len(c) == groups[gid].size and np.array_equal(c, np.arange(len(c)))
                out.append(Segment(gid, mult) if whole else Segment(gid, mult, c))
        return out

    return groups, finalize


PASS_THROUGH_TYPES = frozenset(PASS_THROUGH_REGISTRY)
SUPPORTED_TYPES = sorted(
    SOURCE_TYPES | DEPTHWISE_TYPES | PASS_THROUGH_TYPES | MERGE_TYPES | RESHAPE_TYPES
    | CONCAT_TYPES | frozenset(LAYOUT_RULES)
)
