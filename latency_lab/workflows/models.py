"""The networks of a shrink run: `digits_cnn`, the default network to shrink,
`digits_vit`, the transformer one, and `full_structure`, any model's conv/dense layers
and attention heads at full width (the structure the learned and uniform ones are
compared with)."""

from __future__ import annotations

__all__ = ["digits_cnn", "digits_vit", "full_structure", "BUILTIN_NETWORKS"]


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


def digits_vit(input_shape=(32, 32, 1), classes: int = 10, width: int = 64,
               heads: int = 8, depth: int = 4, mlp: int = 192, patch: int = 4,
               seed: int = 0):
    """The transformer to shrink: a pre-norm ViT. A conv patch embedding, a learned
    positional embedding (`latency_lab.zoo.tokens.PositionEmbedding`, registered as
    a per-channel pass-through for the grouping), `depth` blocks of LayerNorm,
    MultiHeadAttention (`heads` of width // heads), residual Add, LayerNorm, MLP Dense
    (gelu) - Dense, residual Add; final norm, mean pooling, dense head (logits). Its
    heads and MLP units are what a regularizer prunes; the residual stream stays."""
    import keras

    from latency_lab.zoo.tokens import PositionEmbedding  # registers its channel grouping

    keras.utils.set_random_seed(seed)
    L = keras.layers
    x = keras.Input(input_shape, name="image")
    h = L.Conv2D(width, patch, strides=patch, name="patch_embed")(x)
    grid = (input_shape[0] // patch) * (input_shape[1] // patch)
    h = L.Reshape((grid, width), name="tokens")(h)
    h = PositionEmbedding(name="positions")(h)
    for i in range(depth):
        a = L.LayerNormalization(name=f"block{i}_ln1")(h)
        a = L.MultiHeadAttention(heads, width // heads, name=f"block{i}_mha")(a, a)
        h = L.Add(name=f"block{i}_res1")([h, a])
        m = L.LayerNormalization(name=f"block{i}_ln2")(h)
        m = L.Dense(mlp, activation="gelu", name=f"block{i}_fc1")(m)
        m = L.Dense(width, name=f"block{i}_fc2")(m)
        h = L.Add(name=f"block{i}_res2")([h, m])
    h = L.LayerNormalization(name="final_ln")(h)
    h = L.GlobalAveragePooling1D(name="pool")(h)
    y = L.Dense(classes, name="logits")(h)
    return keras.Model(x, y, name="digits_vit")


# The built-in networks `latency-lab shrink --network NAME` trains on digits, and the
# regularizer algorithm each defaults to (a ViT has no BatchNormalization for gamma).
BUILTIN_NETWORKS = {"cnn": (digits_cnn, "gamma"), "vit": (digits_vit, "group_lasso")}


def full_structure(model) -> dict[str, int]:
    """Every conv/dense layer of ``model`` at its full width (every attention layer at
    its full heads), as a structure."""
    from regularizers.grouping import build_channel_graph

    cg = build_channel_graph(model)
    out: dict[str, int] = {}
    for op in cg.structure_ops:
        out.setdefault(op.layer_name, cg.groups[op.structure_group].size)
    return out
