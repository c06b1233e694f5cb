"""Model variants for calibration and validation: keras.applications builds at several
widths and sizes, and randomly channel-slimmed copies of them (the kind of network a
channel regularizer produces).

Slimming here is deliberately conservative: only convs whose output reaches nothing
but other convs/dense layers (through BN, activations, padding and depthwise convs)
change width, so residual adds, concats and squeeze-excite products stay consistent
without channel-group bookkeeping.
"""

from __future__ import annotations

import random
from typing import Any

from latency_lab.graph import Graph

__all__ = ["slimmable_convs", "application", "random_slim"]

_PASS = {"BatchNormalization", "Activation", "ReLU", "ZeroPadding2D", "Dropout",
         "DepthwiseConv2D", "LeakyReLU", "ELU"}
_SINKS = {"Conv2D", "Dense", "SeparableConv2D"}


def slimmable_convs(graph: Graph) -> list[str]:
    """Conv2D ops whose output channels can change freely."""
    out = []
    for op in graph:
        if op.type != "Conv2D" or int(op.attrs.get("groups", 1)) != 1:
            continue
        if op.name in graph.outputs:
            continue
        frontier, ok = [op.name], True
        while frontier and ok:
            name = frontier.pop()
            for c in graph.consumers(name):
                if c.type in _SINKS:
                    continue
                if c.type in _PASS and c.name not in graph.outputs:
                    frontier.append(c.name)
                    continue
                ok = False
                break
        if ok:
            out.append(op.name)
    return out


def application(name: str, **kwargs: Any):
    import keras

    return getattr(keras.applications, name)(weights=None, **kwargs)


def random_slim(model: Any, seed: int, low: float = 0.25, high: float = 1.0,
                name: str | None = None):
    """A copy of `model` with each slimmable conv keeping a random fraction in
    [low, high] of its filters (weights are fresh; latency does not depend on them)."""
    import keras

    from latency_lab.keras_graph import from_keras

    rng = random.Random(seed)
    graph = from_keras(model)
    targets = {n: max(1, int(round(graph.op(n).channels_out * rng.uniform(low, high))))
               for n in slimmable_convs(graph)}

    def clone(layer):
        cfg = layer.get_config()
        if layer.name in targets:
            cfg["filters"] = targets[layer.name]
        return layer.__class__.from_config(cfg)

    slim = keras.models.clone_model(model, clone_function=clone)
    if name:
        slim.name = name
    return slim
