"""NAS-Bench-201 networks (Dong & Yang 2020): a 3x3 conv stem, three stages of five
copies of one cell with a ResNet basic block at stride 2 between stages, then
BN -> ReLU -> global pool -> dense logits. A cell is a 4-node DAG: node j sums one
op per earlier node, each op one of none, skip_connect, nor_conv_1x1 (ReLU -> conv ->
BN), nor_conv_3x3, avg_pool_3x3; its output is node 3. Ops are drawn uniformly, so
cells mix skips, pools and adds in ways no hand-designed family does."""

from __future__ import annotations

import random

from latency_lab.errors import InvalidArgumentError
from latency_lab.zoo.blocks import (check_choices, check_input_size, check_int, check_ints,
                                    draw_input_size, image_input, scaled_channels,
                                    stage_scales)

__all__ = ["NASBENCH201_OPS", "NASBENCH201_EDGES", "nasbench201", "sample_nasbench201",
           "live_edges"]

NASBENCH201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (to, from) of the six edges, in the order of the benchmark's architecture strings.
NASBENCH201_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
_CELLS_PER_STAGE = 5


def live_edges(ops) -> list[tuple[int, int, str]] | None:
    """The (to, from, op) edges that carry data: not `none` and leaving a node that
    some live edge reaches. None when nothing reaches the output node (the cell would
    output zeros)."""
    live_nodes, out = {0}, []
    for (to, src), op in zip(NASBENCH201_EDGES, ops):
        if op != "none" and src in live_nodes:
            live_nodes.add(to)
            out.append((to, src, op))
    return out if 3 in live_nodes else None


def _relu_conv_bn(x, filters: int, kernel: int, stride: int, name: str):
    from keras import layers

    x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                      name=f"{name}_conv")(x)
    return layers.BatchNormalization(name=f"{name}_bn")(x)


def _cell(x, edges, name: str):
    from keras import layers

    nodes = {0: x}
    for to in (1, 2, 3):
        terms = []
        for dst, src, op in edges:
            if dst != to:
                continue
            edge = f"{name}_e{src}{to}"
            h = nodes[src]
            if op == "nor_conv_1x1":
                h = _relu_conv_bn(h, x.shape[-1], 1, 1, edge)
            elif op == "nor_conv_3x3":
                h = _relu_conv_bn(h, x.shape[-1], 3, 1, edge)
            elif op == "avg_pool_3x3":
                h = layers.AveragePooling2D(3, 1, padding="same", name=f"{edge}_pool")(h)
            terms.append(h)  # skip_connect: the tensor itself
        if terms:
            nodes[to] = terms[0] if len(terms) == 1 else layers.Add(name=f"{name}_n{to}")(terms)
    return nodes[3]


def _reduction(x, filters: int, name: str):
    from keras import layers

    y = _relu_conv_bn(x, filters, 3, 2, f"{name}_a")
    y = _relu_conv_bn(y, filters, 3, 1, f"{name}_b")
    shortcut = layers.AveragePooling2D(2, 2, padding="same", name=f"{name}_short_pool")(x)
    shortcut = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_short_conv")(shortcut)
    return layers.Add(name=f"{name}_add")([shortcut, y])


def nasbench201(cell_ops=("nor_conv_3x3",) * 6, stage_channels=(16, 32, 64),
                input_size: int = 32, num_classes: int = 10):
    """`cell_ops`: the op of each edge in NASBENCH201_EDGES order (the same cell in
    every stage); stage i runs at `stage_channels[i]`."""
    import keras
    from keras import layers

    ops = check_choices("cell_ops", cell_ops, 6, NASBENCH201_OPS)
    edges = live_edges(ops)
    if edges is None:
        raise InvalidArgumentError(f"cell_ops {list(cell_ops)!r} connect nothing to the cell's "
                                   "output node 3; give an edge into node 3 a non-none op on a "
                                   "path from node 0")
    widths = check_ints("stage_channels", stage_channels, 3)
    check_int("num_classes", num_classes)
    check_input_size(input_size, 8)
    inputs = image_input(input_size)
    x = layers.Conv2D(widths[0], 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    for s, filters in enumerate(widths):
        if s:
            x = _reduction(x, filters, f"reduction{s}")
        for c in range(_CELLS_PER_STAGE):
            x = _cell(x, edges, f"stage{s + 1}_cell{c + 1}")
    x = layers.BatchNormalization(name="last_bn")(x)
    x = layers.Activation("relu", name="last_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="nasbench201")


def sample_nasbench201(rng: random.Random) -> dict:
    """Each edge's op uniformly (redrawn until the output node is reached); stage widths
    16, 32, 64 each scaled by 0.2-1.8; input 32-64 px (the benchmark's CIFAR and
    ImageNet16 sizes and up)."""
    while True:
        ops = [rng.choice(NASBENCH201_OPS) for _ in NASBENCH201_EDGES]
        if live_edges(ops) is not None:
            break
    scales = stage_scales(rng, 3)
    return {"cell_ops": ops,
            "stage_channels": [scaled_channels(16 * 2 ** s, scale) for s, scale in enumerate(scales)],
            "input_size": draw_input_size(rng, 32, 64)}
