"""Transformer and conv-attention hybrid families for judging the predictors on
attention networks (issue 19): ViT and DeiT image encoders, MobileViT and
EfficientFormer hybrids, and text encoders, written from their papers as Keras 3
Functional models (random weights), drawn at random widths, depths, heads, patch
sizes and sequence lengths like the CNN families of `latency_lab.zoo`.

Families (`TRANSFORMER_FAMILIES`) and what they exercise:
- vit: Conv2D patch embedding (stride = patch), class token, learned positions,
  pre-norm blocks (LayerNormalization, MultiHeadAttention, Add, Dense-GELU-Dense),
  final norm, the [CLS] row (`x[:, 0]`), Dense head, Softmax layer.
- vit_dense_patch: patches cut by Reshape + Permute + Reshape and embedded by a Dense
  on the 3-D tensor, no class token, GlobalAveragePooling1D.
- deit: class and distillation tokens, two heads averaged.
- mobilevit: inverted-residual conv blocks (swish), then MobileViT blocks: local 3x3
  and 1x1 convs, unfold into 2x2-pixel patches (Reshape, Permute, Reshape), attention
  across patches per pixel position (4-D MultiHeadAttention, attention_axes=(2,)),
  fold back, fuse by concatenation and a 3x3 conv.
- efficientformer: 4-D stages of pool mixers (AveragePooling2D minus the input) and
  1x1-conv MLPs, then a 3-D stage of attention blocks with key_dim != value_dim.
- text_encoder: Embedding over a vocabulary, learned positions, the same blocks,
  [CLS] or mean pooling; padding masked by `Embedding(mask_zero=True)` or by an
  attention mask built from `keras.ops.not_equal(ids, 0)`, or not at all; a Dense or
  kernel-1 Conv1D MLP.
MLP activations: exact GELU, tanh-approximate GELU (`keras.ops.gelu(x,
approximate=True)`) and swish. The custom token layers and how they are costed:
`latency_lab.zoo.tokens`.

Every draw stays under `MAX_FLOPS` (about 1.2 GFLOPs: well under a second per call
on a 2-core CPU, batch 1, one thread).

Two parts (`transformer_set`), measured by `scripts/transformer_benchmark.py`:
"dev", fixed seeds, looked at while building; "heldout", seeds the caller gives,
never the same twice, built after the predictor was settled. Like all of
`latency_lab.zoo`, nothing a profile or predictor is built from imports this module.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Sequence

from latency_lab.errors import InvalidArgumentError
from latency_lab.zoo.blocks import (Family, build_network, check_int, check_ints, conv_bn,
                                    draw_set, sample_config)

__all__ = ["MAX_FLOPS", "ACTIVATIONS", "TEXT_MASKS", "TEXT_MASKS", "TEXT_POOLING", "TRANSFORMER_FAMILIES",
           "PARTS", "DEV_SEED", "HELDOUT_SEED_OFFSET", "DEFAULT_PER_FAMILY",
           "encoder_flops", "mobilevit_attention_flops", "encoder_block", "vit", "vit_dense_patch", "deit", "mobilevit",
           "efficientformer", "text_encoder", "sample", "build", "transformer_set"]

MAX_FLOPS = 1.2e9
ACTIVATIONS = ("gelu", "gelu_tanh", "swish")  # of the MLPs
TEXT_MASKS = ("none", "mask_zero", "not_equal")
TEXT_POOLING = ("cls", "mean")
PARTS = ("dev", "heldout")
DEV_SEED = 0  # the development part: seeds DEV_SEED * 1000 + i
# Held-out seeds start here, so no held-out draw is ever a development draw.
HELDOUT_SEED_OFFSET = 1_000_000
DEFAULT_PER_FAMILY = 4


# ------------------------------------------------------------------ building blocks


def _activate(x, activation: str, name: str):
    """GELU (exact), GELU (tanh approximation, a keras.ops call) or swish."""
    import keras
    from keras import layers

    if activation == "gelu_tanh":
        return keras.ops.gelu(x, approximate=True)
    return layers.Activation(activation, name=name)(x)


def _mlp(x, hidden: int, width: int, activation: str, name: str, conv1d: bool = False):
    """Dense (or kernel-1 Conv1D) to `hidden`, activation, back to `width`."""
    from keras import layers

    if conv1d:
        h = layers.Conv1D(hidden, 1, name=f"{name}_fc1")(x)
        h = _activate(h, activation, f"{name}_act")
        return layers.Conv1D(width, 1, name=f"{name}_fc2")(h)
    h = layers.Dense(hidden, name=f"{name}_fc1")(x)
    h = _activate(h, activation, f"{name}_act")
    return layers.Dense(width, name=f"{name}_fc2")(h)


def encoder_block(x, heads: int, key_dim: int, mlp_hidden: int, activation: str, name: str,
                  value_dim: int | None = None, attention_mask=None, attention_axes=None,
                  conv1d_mlp: bool = False):
    """Pre-norm transformer block: x + MHA(LN(x)), then x + MLP(LN(x))."""
    from keras import layers

    width = int(x.shape[-1])
    h = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln1")(x)
    mha = layers.MultiHeadAttention(heads, key_dim, value_dim=value_dim,
                                    attention_axes=attention_axes, name=f"{name}_mha")
    h = mha(h, h) if attention_mask is None else mha(h, h, attention_mask=attention_mask)
    x = layers.Add(name=f"{name}_add1")([x, h])
    h = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln2")(x)
    h = _mlp(h, mlp_hidden, width, activation, f"{name}_mlp", conv1d=conv1d_mlp)
    return layers.Add(name=f"{name}_add2")([x, h])


def encoder_flops(tokens: int, width: int, depth: int, heads: int, key_dim: int,
                  value_dim: int, mlp_hidden: int) -> float:
    """FLOPs of `depth` encoder blocks over `tokens` rows (projections, scores,
    context, MLP; the elementwise work is small beside them): what the samplers keep
    under MAX_FLOPS."""
    qkv = 2 * tokens * width * heads * (2 * key_dim + value_dim)
    out = 2 * tokens * heads * value_dim * width
    attn = 2 * heads * tokens * tokens * (key_dim + value_dim)
    mlp = 4 * tokens * width * mlp_hidden
    return float(depth * (qkv + out + attn + mlp))


def _check_image(image_size: Any, patch_size: Any) -> tuple[int, int]:
    check_int("image_size", image_size, 8)
    check_int("patch_size", patch_size, 1)
    if image_size % patch_size:
        raise InvalidArgumentError(f"image_size {image_size} must be a multiple of "
                                   f"patch_size {patch_size}")
    return image_size, patch_size


def _check_heads(width: Any, heads: Any) -> int:
    check_int("width", width)
    check_int("heads", heads)
    if width % heads:
        raise InvalidArgumentError(f"width {width} must be a multiple of heads {heads}")
    return width // heads


def _check_choice(name: str, value: Any, allowed: Sequence) -> Any:
    if isinstance(value, bool) or value not in allowed:
        raise InvalidArgumentError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def _check_image_encoder(image_size, patch_size, width, heads, depth, mlp_ratio, activation,
                         num_classes) -> None:
    """The arguments vit, vit_dense_patch and deit share."""
    _check_image(image_size, patch_size)
    _check_heads(width, heads)
    check_int("depth", depth)
    check_int("mlp_ratio", mlp_ratio)
    _check_choice("activation", activation, ACTIVATIONS)
    check_int("num_classes", num_classes)


def _head(x, num_classes: int, name: str = "head"):
    """Dense logits and a Softmax layer."""
    from keras import layers

    return layers.Softmax(name="predictions")(layers.Dense(num_classes, name=name)(x))


def _image_encoder(x, depth: int, heads: int, mlp_ratio: int, activation: str):
    width = int(x.shape[-1])
    for i in range(depth):
        x = encoder_block(x, heads, width // heads, mlp_ratio * width, activation, f"block{i}")
    from keras import layers

    return layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)


def _conv_patches(image, patch_size: int, width: int):
    """ViT's patch embedding: a Conv2D with kernel = stride = patch, flattened."""
    from keras import layers

    grid = int(image.shape[1]) // patch_size
    x = layers.Conv2D(width, patch_size, strides=patch_size, name="patch_embed")(image)
    return layers.Reshape((grid * grid, width), name="patch_flatten")(x)


def _token_encoder(image_size, patch_size, width, depth, heads, mlp_ratio, activation,
                   num_classes, distillation: bool):
    """(image input, normed tokens) of ViT and DeiT: conv patches, [the distillation
    token,] the class token, learned positions, the blocks, the final norm."""
    import keras

    from latency_lab.zoo.tokens import ClassToken, DistillationToken, PositionEmbedding

    _check_image_encoder(image_size, patch_size, width, heads, depth, mlp_ratio, activation,
                         num_classes)
    image = keras.Input((image_size, image_size, 3), name="image")
    x = _conv_patches(image, patch_size, width)
    if distillation:
        x = DistillationToken(name="distillation_token")(x)
    x = ClassToken(name="class_token")(x)
    x = PositionEmbedding(name="position_embedding")(x)
    return image, _image_encoder(x, depth, heads, mlp_ratio, activation)


# ------------------------------------------------------------------------ families


def vit(image_size: int = 224, patch_size: int = 16, width: int = 192, depth: int = 12,
        heads: int = 3, mlp_ratio: int = 4, activation: str = "gelu",
        num_classes: int = 1000):
    """ViT (Dosovitskiy et al. 2021; ViT-Ti at the defaults): conv patch embedding,
    class token, learned positions, `depth` pre-norm blocks, final norm, [CLS] head."""
    import keras

    image, x = _token_encoder(image_size, patch_size, width, depth, heads, mlp_ratio,
                              activation, num_classes, distillation=False)
    return keras.Model(image, _head(x[:, 0], num_classes), name="vit")


def vit_dense_patch(image_size: int = 224, patch_size: int = 16, width: int = 192,
                    depth: int = 12, heads: int = 3, mlp_ratio: int = 4,
                    activation: str = "gelu", num_classes: int = 1000):
    """ViT with patches cut by Reshape + Permute + Reshape and embedded by a Dense on
    the (tokens, patch pixels) tensor; no class token, mean-pooled tokens."""
    import keras
    from keras import layers

    from latency_lab.zoo.tokens import PositionEmbedding

    _check_image_encoder(image_size, patch_size, width, heads, depth, mlp_ratio, activation,
                         num_classes)
    grid = image_size // patch_size
    image = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Reshape((grid, patch_size, grid, patch_size, 3), name="patch_split")(image)
    x = layers.Permute((1, 3, 2, 4, 5), name="patch_permute")(x)
    x = layers.Reshape((grid * grid, patch_size * patch_size * 3), name="patch_flatten")(x)
    x = layers.Dense(width, name="patch_embed")(x)
    x = PositionEmbedding(name="position_embedding")(x)
    x = _image_encoder(x, depth, heads, mlp_ratio, activation)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(image, _head(x, num_classes), name="vit_dense_patch")


def deit(image_size: int = 224, patch_size: int = 16, width: int = 192, depth: int = 12,
         heads: int = 3, mlp_ratio: int = 4, activation: str = "gelu",
         num_classes: int = 1000):
    """DeiT (Touvron et al. 2021; DeiT-Ti at the defaults): ViT with a distillation
    token beside the class token and a head on each, averaged at inference."""
    import keras
    from keras import layers

    image, x = _token_encoder(image_size, patch_size, width, depth, heads, mlp_ratio,
                              activation, num_classes, distillation=True)
    cls = layers.Dense(num_classes, name="head")(x[:, 0])
    dist = layers.Dense(num_classes, name="head_dist")(x[:, 1])
    logits = layers.Average(name="heads_mean")([cls, dist])
    return keras.Model(image, layers.Softmax(name="predictions")(logits), name="deit")


def _inverted_residual(x, filters: int, expansion: int, stride: int, name: str):
    """MobileNetV2's block with swish: 1x1 expand, 3x3 depthwise, 1x1 project (+ input)."""
    from keras import layers

    c_in = int(x.shape[-1])
    h = conv_bn(x, c_in * expansion, 1, activation="swish", name=f"{name}_expand")
    h = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                               name=f"{name}_dw")(h)
    h = layers.BatchNormalization(name=f"{name}_dw_bn")(h)
    h = layers.Activation("swish", name=f"{name}_dw_act")(h)
    h = conv_bn(h, filters, 1, activation=None, name=f"{name}_project")
    if stride == 1 and c_in == filters:
        h = layers.Add(name=f"{name}_add")([x, h])
    return h


def _mobilevit_block(x, dim: int, depth: int, heads: int, activation: str, name: str,
                     patch: int = 2):
    """Local 3x3 and 1x1 convs, unfold into patch x patch pixel groups, `depth`
    transformer blocks attending across patches for each pixel position, fold back,
    1x1 conv, concatenation with the input, 3x3 fusion conv."""
    from keras import layers

    c = int(x.shape[-1])
    size = int(x.shape[1])
    grid = size // patch
    h = conv_bn(x, c, 3, activation="swish", name=f"{name}_local")
    h = layers.Conv2D(dim, 1, use_bias=False, name=f"{name}_to_dim")(h)
    h = layers.Reshape((grid, patch, grid, patch, dim), name=f"{name}_unfold_split")(h)
    h = layers.Permute((2, 4, 1, 3, 5), name=f"{name}_unfold_permute")(h)
    h = layers.Reshape((patch * patch, grid * grid, dim), name=f"{name}_unfold")(h)
    for i in range(depth):
        h = encoder_block(h, heads, dim // heads, 2 * dim, activation, f"{name}_t{i}",
                          attention_axes=(2,))
    h = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm")(h)
    h = layers.Reshape((patch, patch, grid, grid, dim), name=f"{name}_fold_split")(h)
    h = layers.Permute((3, 1, 4, 2, 5), name=f"{name}_fold_permute")(h)
    h = layers.Reshape((size, size, dim), name=f"{name}_fold")(h)
    h = conv_bn(h, c, 1, activation="swish", name=f"{name}_from_dim")
    h = layers.Concatenate(name=f"{name}_concat")([x, h])
    return conv_bn(h, c, 3, activation="swish", name=f"{name}_fuse")


def mobilevit(image_size: int = 256, channels=(16, 32, 48, 64, 80, 96), dims=(96, 120, 144),
              depths=(2, 4, 3), heads: int = 4, expansion: int = 4,
              activation: str = "swish", num_classes: int = 1000):
    """MobileViT (Mehta and Rastegari 2022; XS at the defaults): stride-2 3x3 stem
    (channels[0]), inverted residuals (channels[1], then channels[2] at stride 4),
    then three stages of a stride-2 inverted residual (channels[3 + i]) and a
    MobileViT block (dims[i], depths[i] transformer blocks) at strides 8, 16 and 32,
    1x1 conv to 4 x channels[5], pooling, head. image_size: a multiple of 64 (2x2
    patches at stride 32)."""
    import keras
    from keras import layers

    check_int("image_size", image_size, 64)
    if image_size % 64:
        raise InvalidArgumentError(f"image_size must be a multiple of 64 (2x2 patches at "
                                   f"stride 32), got {image_size}")
    chans = check_ints("channels", channels, 6)
    dim = check_ints("dims", dims, 3)
    deep = check_ints("depths", depths, 3)
    check_int("heads", heads)
    for i, d in enumerate(dim):
        if d % heads:
            raise InvalidArgumentError(f"dims[{i}] = {d} must be a multiple of heads {heads}")
    check_int("expansion", expansion)
    _check_choice("activation", activation, ACTIVATIONS)
    check_int("num_classes", num_classes)
    image = keras.Input((image_size, image_size, 3), name="image")
    x = conv_bn(image, chans[0], 3, stride=2, activation="swish", name="stem")
    x = _inverted_residual(x, chans[1], expansion, 1, "mv1")
    x = _inverted_residual(x, chans[2], expansion, 2, "mv2")
    x = _inverted_residual(x, chans[2], expansion, 1, "mv3")
    for s in range(3):
        x = _inverted_residual(x, chans[3 + s], expansion, 2, f"down{s}")
        x = _mobilevit_block(x, dim[s], deep[s], heads, activation, f"mvit{s}")
    x = conv_bn(x, 4 * chans[5], 1, activation="swish", name="head_conv")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(image, _head(x, num_classes), name="mobilevit")


def efficientformer(image_size: int = 224, widths=(48, 96, 224, 448), depths=(3, 2, 6, 4),
                    attention_blocks: int = 1, heads: int = 8, key_dim: int = 32,
                    value_dim: int = 128, mlp_ratio: int = 4, activation: str = "gelu",
                    num_classes: int = 1000):
    """EfficientFormer (Li et al. 2022; L1 at the defaults): two stride-2 3x3 conv
    stems, four stages of 4-D blocks (pool mixer: AveragePooling2D(3) minus the input,
    added back; 1x1-conv MLP) with stride-2 3x3 conv downsampling between them; the
    last `attention_blocks` blocks of stage 4 run on the flattened tokens as 3-D
    blocks (LayerNormalization, MultiHeadAttention with key_dim and value_dim, MLP).
    image_size: a multiple of 32."""
    import keras
    from keras import layers

    check_int("image_size", image_size, 32)
    if image_size % 32:
        raise InvalidArgumentError(f"image_size must be a multiple of 32, got {image_size}")
    wide = check_ints("widths", widths, 4)
    deep = check_ints("depths", depths, 4)
    check_int("attention_blocks", attention_blocks)
    if attention_blocks > deep[3]:
        raise InvalidArgumentError(f"attention_blocks {attention_blocks} must be at most "
                                   f"depths[3] = {deep[3]}")
    for name, v in (("heads", heads), ("key_dim", key_dim), ("value_dim", value_dim),
                    ("mlp_ratio", mlp_ratio), ("num_classes", num_classes)):
        check_int(name, v)
    _check_choice("activation", activation, ACTIVATIONS)
    image = keras.Input((image_size, image_size, 3), name="image")
    x = conv_bn(image, wide[0] // 2, 3, stride=2, name="stem1")
    x = conv_bn(x, wide[0], 3, stride=2, name="stem2")
    for s in range(4):
        if s:
            x = conv_bn(x, wide[s], 3, stride=2, activation=None, name=f"down{s}")
        n4d = deep[s] - (attention_blocks if s == 3 else 0)
        for i in range(n4d):
            name = f"s{s}b{i}"
            pooled = layers.AveragePooling2D(3, 1, padding="same", name=f"{name}_pool")(x)
            mixed = layers.Subtract(name=f"{name}_mix")([pooled, x])
            x = layers.Add(name=f"{name}_add1")([x, mixed])
            h = conv_bn(x, mlp_ratio * wide[s], 1, activation=None, name=f"{name}_fc1")
            h = _activate(h, activation, f"{name}_act")
            h = conv_bn(h, wide[s], 1, activation=None, name=f"{name}_fc2")
            x = layers.Add(name=f"{name}_add2")([x, h])
    side = int(x.shape[1])
    x = layers.Reshape((side * side, wide[3]), name="flatten_tokens")(x)
    for i in range(attention_blocks):
        x = encoder_block(x, heads, key_dim, mlp_ratio * wide[3], activation, f"attn{i}",
                          value_dim=value_dim)
    x = layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(image, _head(x, num_classes), name="efficientformer")


def text_encoder(seq_len: int = 128, vocab_size: int = 30522, width: int = 256,
                 depth: int = 4, heads: int = 4, mlp_ratio: int = 4,
                 activation: str = "gelu", key_dim: int | None = None,
                 value_dim: int | None = None, mask: str = "none", pooling: str = "cls",
                 conv1d_mlp: bool = False, num_classes: int = 2):
    """A BERT-style encoder: token Embedding, learned positions, `depth` pre-norm
    blocks, final norm, the first token ("cls") or the mean of the tokens ("mean";
    masked when the Embedding masks), Dense head. `mask`: "mask_zero" (the Embedding's
    Keras mask reaches every attention and the pooling), "not_equal" (an attention
    mask built from `keras.ops.not_equal(ids, 0)`) or "none". key_dim defaults to
    width // heads, value_dim to key_dim."""
    import keras
    from keras import layers

    from latency_lab.zoo.tokens import PositionEmbedding

    check_int("seq_len", seq_len, 2)
    check_int("vocab_size", vocab_size, 2)
    default_key = _check_heads(width, heads)
    check_int("depth", depth)
    check_int("mlp_ratio", mlp_ratio)
    _check_choice("activation", activation, ACTIVATIONS)
    key_dim = default_key if key_dim is None else check_int("key_dim", key_dim)
    value_dim = None if value_dim is None else check_int("value_dim", value_dim)
    _check_choice("mask", mask, TEXT_MASKS)
    _check_choice("pooling", pooling, TEXT_POOLING)
    if not isinstance(conv1d_mlp, bool):
        raise InvalidArgumentError(f"conv1d_mlp must be True or False, got {conv1d_mlp!r}")
    check_int("num_classes", num_classes)
    ids = keras.Input((seq_len,), dtype="int32", name="token_ids")
    x = layers.Embedding(vocab_size, width, mask_zero=mask == "mask_zero",
                         name="token_embedding")(ids)
    x = PositionEmbedding(name="position_embedding")(x)
    attention_mask = None
    if mask == "not_equal":
        attention_mask = keras.ops.expand_dims(keras.ops.not_equal(ids, 0), 1)
    for i in range(depth):
        x = encoder_block(x, heads, key_dim, mlp_ratio * width, activation, f"block{i}",
                          value_dim=value_dim, attention_mask=attention_mask,
                          conv1d_mlp=conv1d_mlp)
    x = layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    x = x[:, 0] if pooling == "cls" else layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(ids, _head(x, num_classes), name="text_encoder")


# ------------------------------------------------------------------------- samplers


def _width_and_heads(rng: random.Random, low: int = 64, high: int = 384) -> tuple[int, int]:
    """A width on a 32 grid in [low, high] and a head count in 2-12 dividing it into
    heads of at least 16 channels."""
    width = rng.randrange(low, high + 1, 32)
    heads = rng.choice([h for h in range(2, 13) if width % h == 0 and width // h >= 16])
    return width, heads


def _fit_depth(rng: random.Random, low: int, high: int, flops_of: Callable[[int], float]) -> int | None:
    """A depth drawn in [low, high], lowered until `flops_of(depth)` fits MAX_FLOPS;
    None when even `low` does not (the caller draws again)."""
    depth = rng.randint(low, high)
    while depth > low and flops_of(depth) > MAX_FLOPS:
        depth -= 1
    return depth if flops_of(depth) <= MAX_FLOPS else None


def _sample_image_encoder(rng: random.Random, extra_tokens: int) -> dict:
    """Patch 4-16, a 4-16 patch grid, image 32-224, width 64-384, heads 2-12, depth
    2-12 (lowered to fit MAX_FLOPS), MLP ratio 2-4, any MLP activation."""
    while True:
        patch = rng.choice((4, 6, 8, 12, 14, 16))
        grids = [g for g in range(4, 17) if 32 <= g * patch <= 224]
        grid = rng.choice(grids)
        width, heads = _width_and_heads(rng)
        ratio = rng.choice((2, 3, 4))
        tokens = grid * grid + extra_tokens
        depth = _fit_depth(rng, 2, 12, lambda d: encoder_flops(
            tokens, width, d, heads, width // heads, width // heads, ratio * width))
        if depth is not None:
            return {"image_size": grid * patch, "patch_size": patch, "width": width,
                    "depth": depth, "heads": heads, "mlp_ratio": ratio,
                    "activation": rng.choice(ACTIVATIONS)}


def sample_vit(rng: random.Random) -> dict:
    return _sample_image_encoder(rng, 1)


def sample_vit_dense_patch(rng: random.Random) -> dict:
    return _sample_image_encoder(rng, 0)


def sample_deit(rng: random.Random) -> dict:
    return _sample_image_encoder(rng, 2)


def mobilevit_attention_flops(image_size: int, dims: Sequence[int], depths: Sequence[int],
                              heads: int) -> float:
    """FLOPs of a MobileViT's transformer blocks: at stride 8, 16 and 32, 4 pixel
    positions each attending over (side / 2)^2 patches."""
    total = 0.0
    for s, (dim, depth) in enumerate(zip(dims, depths)):
        patches = (image_size // (8 * 2 ** s) // 2) ** 2
        total += 4 * encoder_flops(patches, dim, depth, heads, dim // heads, dim // heads, 2 * dim)
    return total


def sample_mobilevit(rng: random.Random) -> dict:
    """Image 128, 192 or 256; conv channels 0.6-1.2 x XS's (16, 32, 48, 64, 80, 96)
    on an 8 grid; attention dims 64-192 on a 16 grid with 2 or 4 heads; 1-4 blocks per
    stage; expansion 2 or 4; MLP activation any; drawn again until the transformer
    blocks take at most 0.6 x MAX_FLOPS (the convs add up to ~0.6 GFLOPs)."""
    base = (16, 32, 48, 64, 80, 96)
    while True:
        heads = rng.choice((2, 4))
        scale = round(rng.uniform(0.6, 1.2), 2)
        config = {"image_size": rng.choice((128, 192, 256)),
                  "channels": [max(8, int(c * scale / 8 + 0.5) * 8) for c in base],
                  "dims": [rng.randrange(64, 193, 16) for _ in range(3)],
                  "depths": [rng.randint(1, 4) for _ in range(3)], "heads": heads,
                  "expansion": rng.choice((2, 4)), "activation": rng.choice(ACTIVATIONS)}
        if mobilevit_attention_flops(config["image_size"], config["dims"], config["depths"],
                                     heads) <= 0.6 * MAX_FLOPS:
            return config


def sample_efficientformer(rng: random.Random) -> dict:
    """Image 96-224 on a 32 grid; widths 0.5-1.0 x L1's (48, 96, 224, 448) on an 8 grid;
    depths 1-3, 1-2, 1-4, 1-3 with 1-2 attention blocks in the last; heads 2-8, key_dim
    16 or 32, value_dim 1-4 x key_dim; MLP ratio 2-4."""
    scale = round(rng.uniform(0.5, 1.0), 2)
    d4 = rng.randint(1, 3)
    key_dim = rng.choice((16, 32))
    return {"image_size": rng.randrange(96, 225, 32),
            "widths": [max(8, int(w * scale / 8 + 0.5) * 8) for w in (48, 96, 224, 448)],
            "depths": [rng.randint(1, 3), rng.randint(1, 2), rng.randint(1, 4), d4],
            "attention_blocks": rng.randint(1, min(2, d4)), "heads": rng.choice((2, 4, 8)),
            "key_dim": key_dim, "value_dim": key_dim * rng.choice((1, 2, 4)),
            "mlp_ratio": rng.choice((2, 3, 4)), "activation": rng.choice(ACTIVATIONS)}


def sample_text_encoder(rng: random.Random) -> dict:
    """Sequence 16-512 (log-uniform), vocabulary 1000-32000, width 64-384, heads 2-12,
    depth 2-12 (lowered to fit MAX_FLOPS), key_dim width/heads or a drawn 16-64 with
    value_dim sometimes different, a mask of TEXT_MASKS, any pooling and MLP
    (Dense or Conv1D)."""
    while True:
        seq = int(round(2 ** rng.uniform(4, 9)))
        width, heads = _width_and_heads(rng)
        ratio = rng.choice((2, 3, 4))
        key_dim = value_dim = None
        if rng.random() < 0.5:
            key_dim = rng.choice((16, 32, 48, 64))
            value_dim = rng.choice((key_dim, 2 * key_dim, max(16, key_dim // 2)))
        kd = key_dim or width // heads
        vd = value_dim or kd
        depth = _fit_depth(rng, 2, 12, lambda d: encoder_flops(
            seq, width, d, heads, kd, vd, ratio * width))
        if depth is not None:
            return {"seq_len": seq, "vocab_size": rng.randrange(1000, 32001, 1000),
                    "width": width, "depth": depth, "heads": heads, "mlp_ratio": ratio,
                    "activation": rng.choice(ACTIVATIONS), "key_dim": key_dim,
                    "value_dim": value_dim, "mask": rng.choice(TEXT_MASKS),
                    "pooling": rng.choice(TEXT_POOLING), "conv1d_mlp": rng.random() < 0.3}


TRANSFORMER_FAMILIES: dict[str, Family] = {
    "vit": Family(vit, sample_vit),
    "vit_dense_patch": Family(vit_dense_patch, sample_vit_dense_patch),
    "deit": Family(deit, sample_deit),
    "mobilevit": Family(mobilevit, sample_mobilevit),
    "efficientformer": Family(efficientformer, sample_efficientformer),
    "text_encoder": Family(text_encoder, sample_text_encoder),
}


def sample(family: str, seed: int) -> dict:
    """The keyword arguments of one randomized transformer `family` network (seeded
    with the family name and the seed, as `latency_lab.zoo.sample`)."""
    return sample_config(TRANSFORMER_FAMILIES, family, seed)


def build(family: str, config: dict):
    """The transformer `family` network of `config` (from `sample`, or by hand)."""
    return build_network(TRANSFORMER_FAMILIES, family, config)


def _size(config: dict) -> str:
    return f"{config['seq_len']}tok" if "seq_len" in config else f"{config['image_size']}px"


def transformer_set(part: str, n_per_family: int = DEFAULT_PER_FAMILY, seed: int | None = None,
                    families=None) -> list[tuple[str, str, Callable[[], Any]]]:
    """(label, family, factory) of `n_per_family` sampled networks of each family (all
    of TRANSFORMER_FAMILIES by default; 6 x 4 = 24). part "dev": seeds DEV_SEED * 1000
    + i (`seed` must be None or DEV_SEED). part "heldout": seeds HELDOUT_SEED_OFFSET +
    seed * 1000 + i, `seed` required: a held-out run must use a seed no run has used
    (scripts/transformer_benchmark.py lists them). factory() builds the model."""
    part = _check_choice("part", part, PARTS)
    check_int("n_per_family", n_per_family)
    if part == "dev":
        if seed not in (None, DEV_SEED) or isinstance(seed, bool):
            raise InvalidArgumentError(f"the dev part has fixed seeds (seed None or {DEV_SEED}); "
                                       f"got seed={seed!r}. Held-out draws: part='heldout'.")
        base = DEV_SEED * 1000
    else:
        if seed is None:
            raise InvalidArgumentError("the heldout part needs an explicit seed, one no run "
                                       "has used (see scripts/transformer_benchmark.py)")
        base = HELDOUT_SEED_OFFSET + check_int("seed", seed, 0) * 1000
    return draw_set(TRANSFORMER_FAMILIES, families, n_per_family, lambda i: base + i,
                    lambda name, s, config: f"{name}-{part}-s{s}-{_size(config)}")
