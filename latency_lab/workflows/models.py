"""The networks of a shrink run: `digits_cnn`, the default network to shrink, and
`full_structure`, any model's conv/dense layers at full width (the structure the
learned and uniform ones are compared with)."""

from __future__ import annotations

__all__ = ["digits_cnn", "full_structure"]


def digits_cnn(input_shape=(32, 32, 1), classes: int = 10, widths=(24, 48, 48, 96, 96),
               seed: int = 0):
    """The default network to shrink: 3x3 conv + BN + ReLU blocks, stride 2 at every
    other block, global pooling and a dense head (logits)."""
    import keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    x = keras.Input(input_shape, name="image")
    h = x
    for i, width in enumerate(widths):
        stride = 2 if i % 2 == 1 else 1
        h = L.Conv2D(width, 3, strides=stride, padding="same", use_bias=False,
                     name=f"conv{i + 1}")(h)
        # momentum 0.9: short runs must still settle the moving statistics.
        h = L.BatchNormalization(momentum=0.9, name=f"bn{i + 1}")(h)
        h = L.ReLU(name=f"relu{i + 1}")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    y = L.Dense(classes, name="logits")(h)
    return keras.Model(x, y, name="digits_cnn")


def full_structure(model) -> dict[str, int]:
    """Every conv/dense layer of ``model`` at its full width, as a structure."""
    from regularizers.grouping import build_channel_graph

    cg = build_channel_graph(model)
    out: dict[str, int] = {}
    for op in cg.sources:
        out.setdefault(op.layer_name, cg.groups[op.out_group].size)
    return out
