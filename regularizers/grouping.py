"""Channel groups of a Keras functional graph (built on the latency_lab graph IR).

A *group* is a set of channels that must be kept or removed together. Every conv/dense
layer starts a new group of its output channels; layers that keep channel identity
(BatchNormalization, activations, pooling, padding, dropout, gates, ...) pass their
input's group through; element-wise merges (Add, Multiply, ...) tie the groups of their
inputs into one (union-find); Concatenate along the channel axis stacks groups, so a
tensor's channels are described by a list of *segments* ``(group_id, multiplier)``:
the channels of ``group_id``, repeated ``multiplier`` times (Flatten multiplies by the
spatial size, a depthwise conv with ``depth_multiplier=m`` repeats its input m times).

The number of alive channels of a tensor is ``sum(multiplier * alive(group))`` over its
segments (`alive_count`). Frozen groups (model inputs and outputs, layers named in
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
`REFUSED_REASONS`: LayerNormalization / RMSNormalization / UnitNormalization /
GroupNormalization (statistics across channels), Permute / RepeatVector (move the
channel axis), attention, Dot, EinsumDense and recurrent layers (contract over
channels), colour-image ops (RandomHue, RandomGrayscale, ...), Masking, spectrograms,
categorical preprocessing, Lambda / wrappers (unknown code), and RandomShear (per
channel, but Keras 3.15 cannot rebuild it from its config); any other type is refused
as unknown. A refused layer can still be kept whole with ``frozen_layers=``;
a custom per-channel layer is added with `register_pass_through`.

Built once per model by `build_channel_graph`; nothing here runs per training step.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from latency_lab.graph import Graph, Op
from latency_lab.errors import InvalidArgumentError

Segment = tuple  # (group_id: int, multiplier: int)

__all__ = [
    "ChannelGraph",
    "ChannelOp",
    "Group",
    "build_channel_graph",
    "alive_count",
    "SOURCE_TYPES",
    "DEPTHWISE_TYPES",
    "PASS_THROUGH_TYPES",
    "PASS_THROUGH_REGISTRY",
    "REFUSED_REASONS",
    "register_pass_through",
    "SUPPORTED_TYPES",
    "MERGE_TYPES",
]

# Layers whose output channels are a new group (their filters / units).
SOURCE_TYPES = frozenset({
    "Conv1D", "Conv2D", "Conv3D",
    "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "SeparableConv1D", "SeparableConv2D",
    "Dense",
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
    (("Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax",
      "ops.Sigmoid", "ops.Relu", "ops.Relu6", "ops.HardSigmoid", "ops.Silu",
      "ops.HardSilu", "ops.Gelu", "ops.Tanh", "ops.Softmax"), _WHY_ELEMENTWISE),
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

# Layers that mix channels (or whose channel behaviour is unknown), with why they are
# refused; the refusal names the layer and this reason. Types in neither table are
# refused as "unknown".
REFUSED_REASONS: dict[str, str] = {}
for _types, _why in (
    (("LayerNormalization", "RMSNormalization", "UnitNormalization"),
     "it normalizes across the channel axis, so each output channel depends on all of them"),
    (("GroupNormalization",),
     "it normalizes over groups of channels and its `groups` depends on the channel count"),
    (("Permute", "RepeatVector"), "it moves the channel axis"),
    (("Dot", "Attention", "AdditiveAttention", "MultiHeadAttention",
      "GroupedQueryAttention", "EinsumDense"), "it contracts over the channel axis"),
    (("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D",
      "ConvLSTM3D"), "a recurrent layer mixes its input channels"),
    (("Embedding", "ReversibleEmbedding", "CategoryEncoding", "Hashing",
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
    other = SOURCE_TYPES | DEPTHWISE_TYPES | MERGE_TYPES | RESHAPE_TYPES | CONCAT_TYPES
    for t in op_types:
        if not isinstance(t, str) or not t:
            raise InvalidArgumentError(
                f"Invalid value for argument `op_types`: expected layer type names (str), "
                f"received {t!r}.")
        if t in other:
            raise InvalidArgumentError(
                f"register_pass_through: {t!r} is already grouped as a conv/dense, "
                "depthwise, merge, reshape or concat layer.")
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
RESHAPE_TYPES = frozenset({"Flatten", "Reshape"})
CONCAT_TYPES = frozenset({"Concatenate"})

PASS_THROUGH_TYPES = frozenset(PASS_THROUGH_REGISTRY)
SUPPORTED_TYPES = sorted(
    SOURCE_TYPES | DEPTHWISE_TYPES | PASS_THROUGH_TYPES | MERGE_TYPES | RESHAPE_TYPES
    | CONCAT_TYPES
)


def alive_count(segments: Sequence[Segment], alive_by_group: dict) -> Any:
    """``sum(multiplier * alive_by_group[group])``: Python numbers or tensors."""
    total: Any = 0
    for gid, mult in segments:
        a = alive_by_group[gid]
        total = total + (a if mult == 1 else mult * a)
    return total


@dataclass
class Group:
    """A set of channels kept or removed together.

    ``sources`` are the names of the conv/dense ops whose outputs are (tied into) this
    group; ``frozen_reasons`` says why a frozen group is frozen (empty: prunable).
    """

    id: int
    size: int
    sources: list[str] = field(default_factory=list)
    frozen_reasons: list[str] = field(default_factory=list)

    @property
    def frozen(self) -> bool:
        return bool(self.frozen_reasons)


@dataclass
class ChannelOp:
    """One op of the IR with the channel layout of its inputs and output.

    ``kind``: "source" (conv/dense), "depthwise", "pass_through", "merge", "concat",
    "reshape", "input" or "frozen" (an unknown layer named in frozen_layers / behind the
    input boundary). ``in_segments`` has one segment list per input tensor;
    ``out_segments`` is the layout of the (first) output. ``payload`` is free for a
    regularizer subclass (see `NetworkRegularizer.prepare_op`).
    """

    name: str
    type: str
    op: Op
    kind: str
    in_segments: list[list[Segment]]
    out_segments: list[Segment]
    frozen: bool = False
    payload: Any = None

    @property
    def out_group(self) -> int | None:
        """The output group of a single-segment output (conv/dense: always)."""
        if len(self.out_segments) == 1 and self.out_segments[0][1] == 1:
            return self.out_segments[0][0]
        return None

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
    def costed_ops(self) -> list[ChannelOp]:
        """Conv, dense and depthwise ops: what FLOP and model-size costs count."""
        return [o for o in self.ops if o.kind in ("source", "depthwise")]

    def group_of(self, name: str) -> Group:
        """The output group of a conv/dense op."""
        gid = self.op(name).out_group
        if gid is None:
            raise InvalidArgumentError(f"layer {name!r} has no single output group")
        return self.groups[gid]

    def alive_count(self, segments: Sequence[Segment], alive_by_group: dict) -> Any:
        return alive_count(segments, alive_by_group)

    def summary(self) -> str:
        lines = [f"channel groups of {self.graph.name!r}:"]
        for gid, g in self.groups.items():
            state = "frozen (" + ", ".join(sorted(set(g.frozen_reasons))) + ")" if g.frozen else "prunable"
            lines.append(f"  group {gid}: {g.size} channels, {state}, sources {g.sources}")
        return "\n".join(lines)


# ----------------------------------------------------------------------- union-find


class _UnionFind:
    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int] = []
        self.sources: list[list[str]] = []
        self.reasons: list[list[str]] = []

    def new(self, size: int, source: str | None = None, frozen: str | None = None) -> int:
        gid = len(self.parent)
        self.parent.append(gid)
        self.size.append(int(size))
        self.sources.append([source] if source else [])
        self.reasons.append([frozen] if frozen else [])
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


# ------------------------------------------------------------------------- builder


def _layout_channels(layout: Sequence[Segment], uf: _UnionFind) -> int:
    return sum(m * uf.size[uf.find(g)] for g, m in layout)


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


def build_channel_graph(
    model_or_graph: Any,
    *,
    input_boundary: Sequence[str] | None = None,
    frozen_layers: Iterable[str] = (),
    input_shape: Sequence[int] | None = None,
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
    layout_of: dict[str, list[Segment]] = {}  # tensor ref -> segments
    raw_ops: list[ChannelOp] = []
    consumers: dict[str, list[str]] = {}
    tie_warnings: list[str] = []
    first_source_call: dict[str, int] = {}  # shared conv: groups of all calls tied

    for op in graph.ops:
        for ref in op.inputs:
            if ":" not in ref:
                consumers.setdefault(ref, []).append(op.name)
        in_layouts = [layout_of[ref] for ref in op.inputs]
        frozen_here = op.name in frozen_names or op.name in behind_boundary
        reason = "frozen_layers" if op.name in frozen_names else "input_boundary"
        t = op.type
        kind: str
        out: list[Segment]
        extra_outputs = len(op.output_shapes) - 1

        if t == "InputLayer":
            kind = "input"
            out = [(uf.new(op.channels_out, frozen="model input"), 1)]
        elif t in SOURCE_TYPES:
            kind = "source"
            gid = uf.new(op.channels_out, source=op.name)
            shared = op.attrs.get("shared_from")
            if shared and shared in first_source_call:
                gid = uf.union(gid, first_source_call[shared])
            first_source_call.setdefault(op.name, gid)
            out = [(gid, 1)]
        elif t in DEPTHWISE_TYPES:
            kind = "depthwise"
            dm = int(op.attrs.get("depth_multiplier", 1))
            out = list(in_layouts[0]) * dm
        elif t in PASS_THROUGH_REGISTRY:
            kind = "pass_through"
            out = list(in_layouts[0])
        elif t in MERGE_TYPES:
            kind = "merge"
            out = _tie(op, in_layouts, uf, tie_warnings)
        elif t in CONCAT_TYPES:
            rank = len(op.output_shape)
            axis = int(op.attrs.get("axis", -1)) % rank
            if axis == op.channel_axis % rank:
                kind = "concat"
                out = [s for lay in in_layouts for s in lay]
            else:
                kind = "merge"
                out = _tie(op, in_layouts, uf, tie_warnings)
        elif t in RESHAPE_TYPES and _reshape_layout(op, in_layouts[0]) is not None:
            kind = "reshape"
            out = _reshape_layout(op, in_layouts[0])
        elif frozen_here:
            kind = "frozen"
            out = [(uf.new(op.channels_out, frozen=reason), 1)]
        else:
            layer_name = op.name.split("#", 1)[0]
            if t in RESHAPE_TYPES:
                detail = (f" (a {t} from {op.input_shapes[0][1:]} to {op.output_shape[1:]} "
                          "that moves channels; only Flatten and reshapes that add or drop "
                          "size-1 dims keep channel groups)")
            else:
                why = REFUSED_REASONS.get(t, "its channel behaviour is unknown")
                detail = f" ({why})"
            raise InvalidArgumentError(
                f"Layer {layer_name!r} of type {t!r} cannot be grouped by channel"
                f"{detail}. Supported types: {', '.join(SUPPORTED_TYPES)}. Add "
                f"{layer_name!r} to `frozen_layers=` to keep its output channels whole "
                "(not regularized), or put it behind `input_boundary=`."
            )

        if frozen_here:
            for g, _ in out:
                uf.freeze(g, reason)
        layout_of[op.name] = out
        for i in range(extra_outputs):  # other outputs of a multi-output op
            shape = op.output_shapes[i + 1]
            ch = int(shape[op.channel_axis]) if len(shape) >= 2 else 1
            layout_of[f"{op.name}:{i + 1}"] = [(uf.new(ch, frozen=f"output {i + 1} of {op.name}"), 1)]
        raw_ops.append(ChannelOp(op.name, t, op, kind, in_layouts, out, frozen_here))

    for name in graph.outputs:
        for g, _ in layout_of[name]:
            uf.freeze(g, "model output")

    # Resolve union-find roots; renumber groups 0..n-1 in order of first appearance.
    renumber: dict[int, int] = {}
    groups: dict[int, Group] = {}

    def root(g: int) -> int:
        r = uf.find(g)
        if r not in renumber:
            new = len(renumber)
            renumber[r] = new
            groups[new] = Group(new, uf.size[r], list(dict.fromkeys(uf.sources[r])),
                                list(dict.fromkeys(uf.reasons[r])))
        return renumber[r]

    def fix(lay: list[Segment]) -> list[Segment]:
        return [(root(g), m) for g, m in lay]

    ops = [
        ChannelOp(o.name, o.type, o.op, o.kind, [fix(lay) for lay in o.in_segments],
                  fix(o.out_segments), o.frozen)
        for o in raw_ops
    ]
    # Sanity: every group's size matches what it was tied to (checked in _tie).
    for w in tie_warnings:
        warnings.warn(w, stacklevel=3)
    return ChannelGraph(graph=graph, groups=groups, ops=ops, consumers=consumers,
                        tie_warnings=tie_warnings)


def _tie(op: Op, layouts: list[list[Segment]], uf: _UnionFind,
         tie_warnings: list[str]) -> list[Segment]:
    """Tie the channels of the inputs of an element-wise op; return the output layout."""
    if len(layouts) == 1:  # `x + 3.0`: one tensor, constants beside it
        return list(layouts[0])
    counts = [_layout_channels(lay, uf) for lay in layouts]
    full = max(counts)
    # A size-1 channel axis broadcasts (e.g. a spatial attention map); it ties nothing.
    live = [lay for lay, c in zip(layouts, counts) if not (c == 1 and full > 1)]
    first = live[0]

    def signature(lay):
        return [(uf.size[uf.find(g)], m) for g, m in lay]

    if all(signature(lay) == signature(first) for lay in live[1:]):
        for lay in live[1:]:
            for (ga, _), (gb, _) in zip(first, lay):
                uf.union(ga, gb)
        return list(first)
    # Different segmentations (e.g. concat([a, b]) + c): keep all of them whole.
    involved = sorted({g for lay in live for g, _ in lay})
    for g in involved:
        uf.freeze(g, f"mismatched tie at {op.name}")
    tie_warnings.append(
        f"layer {op.name!r} ({op.type}) combines inputs whose channels come from "
        "differently split groups (e.g. a concatenation added to a single conv output); "
        "those channels are kept whole (not regularized)."
    )
    return list(first)


def _reshape_layout(op: Op, layout: list[Segment]) -> list[Segment] | None:
    """Output layout of Flatten / Reshape, or None if the reshape moves channels."""
    in_shape = tuple(op.input_shapes[0][1:])
    out_shape = tuple(op.output_shape[1:])
    rank = len(op.input_shapes[0])
    ch_axis = op.channel_axis % rank if rank >= 2 else 0
    spatial = math.prod(int(d) for i, d in enumerate(op.input_shapes[0]) if i not in (0, ch_axis))
    if op.type == "Flatten" or (len(out_shape) == 1 and out_shape[0] == math.prod(in_shape)):
        if ch_axis != rank - 1 and spatial != 1 and op.type != "Flatten":
            return None
        return [(g, m * spatial) for g, m in layout]
    # Only size-1 dims added or dropped, channel axis preserved.
    if _strip_ones(in_shape) == _strip_ones(out_shape) and out_shape and \
            int(out_shape[-1]) == int(op.input_shapes[0][ch_axis]):
        return list(layout)
    return None
