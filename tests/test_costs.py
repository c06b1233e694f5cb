"""Hand-computed costs for every registered cost function (no Keras involved).

Each test builds `Op`s directly with explicit shapes and attrs and writes the expected
FLOPs, params and bytes out as arithmetic, so a reader can check them against
DESIGN.md's "Cost conventions" without running anything. Shapes include the batch.
"""

import math

import pytest

from latency_lab import costs
from latency_lab.costs import OpCost, cost_of
from latency_lab.errors import UnsupportedOpError
from latency_lab.graph import Op
from cost_helpers import assert_cost

F32 = 4  # bytes per float32 element
F16 = 2


def make_op(type_, in_shapes, out_shape, *, name="layer", dtype="float32", **attrs):
    return Op(
        name=name,
        type=type_,
        inputs=[f"in{i}" for i in range(len(in_shapes))],
        input_shapes=[tuple(s) for s in in_shapes],
        output_shapes=[tuple(out_shape)],
        attrs=attrs,
        dtype=dtype,
    )





def conv2d(in_shape, out_shape, k=(3, 3), **attrs):
    return make_op("Conv2D", [in_shape], out_shape, kernel_size=k, **attrs)


# ------------------------------------------------------------------ registry coverage

# Which test groups cover which cost function: a newly registered function fails
# test_every_cost_function_has_hand_computed_tests until tests are added here.
COVERED_FUNCTIONS = {
    costs.conv_cost,
    costs.conv_transpose_cost,
    costs.depthwise_cost,
    costs.separable_cost,
    costs.dense_cost,
    costs.matmul_cost,
    costs.attention_cost,
    costs.embedding_cost,
    costs.batchnorm_cost,
    costs.layernorm_cost,
    costs.normalization_cost,
    costs.rescaling_cost,
    costs.activation_cost,
    costs.merge_cost,
    costs.ops_binary_cost,
    costs.scaled_residual_cost,
    costs.concat_cost,
    costs.pool_cost,
    costs.global_pool_cost,
    costs.view_cost,
    costs.copy_cost,
    costs.rearrange_cost,
    costs.slice_cost,
    costs.resize_cost,
}


def test_comparison_reads_each_input_at_its_dtype_and_writes_bools():
    """not_equal(int32 ids (1, 6), a scalar): 6 compares, 24 bytes read, 6 written;
    logical_and of two bool masks (1, 4, 4): 16 ops, 32 bytes read, 16 written."""
    ne = make_op("ops.NotEqual", [(1, 6)], (1, 6), dtype="bool", input_dtypes=("int32",))
    assert cost_of(ne).to_dict() == dict(flops=6, params=0, bytes_read=24, bytes_written=6)
    both = make_op("ops.LogicalAnd", [(1, 4, 4), (1, 4, 4)], (1, 4, 4), dtype="bool",
                   input_dtypes=("bool", "bool"))
    assert cost_of(both).to_dict() == dict(flops=16, params=0, bytes_read=32,
                                           bytes_written=16)


def test_every_cost_function_has_hand_computed_tests():
    registered = {costs.rule(t).fn for t in costs.supported_types()}
    # the package's own (a module imported earlier, e.g. latency_lab.zoo.tokens, may
    # have registered its layers' costs beside them)
    assert {fn for fn in registered if fn.__module__ == costs.__name__} == COVERED_FUNCTIONS


# Types whose cost needs more than one tensor shape: the inputs and attrs they need.
NEEDS = {
    "MultiHeadAttention": ([(1, 4, 4, 8), (1, 4, 4, 8)], dict(num_heads=2, key_dim=4)),
    "GatedMultiHeadAttention": ([(1, 4, 4, 8), (1, 4, 4, 8)], dict(num_heads=2, key_dim=4)),
    "Embedding": ([(1, 4, 4)], dict(input_dim=10)),
}


@pytest.mark.parametrize("op_type", costs.supported_types())
def test_every_supported_type_gives_finite_nonnegative_cost(op_type):
    in_shapes, attrs = NEEDS.get(op_type, ([(1, 4, 4, 8)], {}))
    op = make_op(op_type, in_shapes, (1, 4, 4, 8), name="x", **attrs)
    if op_type == "EinsumDense":
        with pytest.raises(UnsupportedOpError, match="'x'"):
            cost_of(op)
        return
    c = cost_of(op)
    for v in (c.flops, c.params, c.bytes_read, c.bytes_written):
        assert math.isfinite(v) and v >= 0


@pytest.mark.parametrize(
    "op_type, expected",
    [
        ("Conv2D", costs.DENSE),
        ("Dense", costs.DENSE),
        ("MultiHeadAttention", costs.DENSE),
        ("SeparableConv2D", costs.DENSE),
        ("DepthwiseConv2D", costs.DEPTHWISE),
        ("Add", costs.ELEMENTWISE),
        ("ReLU", costs.ELEMENTWISE),
        ("MaxPooling2D", costs.ELEMENTWISE),
        ("Concatenate", costs.DATA),
        ("Reshape", costs.DATA),
        ("Embedding", costs.DATA),
        ("ZeroPadding2D", costs.DATA),
    ],
)
def test_op_class(op_type, expected):
    assert costs.op_class(op_type) == expected


# ---------------------------------------------------------- conv_cost (Conv1D/2D/3D)


def test_conv2d_plain():
    op = conv2d((1, 8, 8, 8), (1, 8, 8, 16), padding="same")
    params = 3 * 3 * 8 * 16 + 16
    assert_cost(
        cost_of(op),
        flops=2 * 8 * 8 * 3 * 3 * 8 * 16,
        params=params,
        bytes_read=(8 * 8 * 8 + params) * F32,
        bytes_written=8 * 8 * 16 * F32,
    )


def test_conv2d_batch_multiplies_flops_not_params():
    one = cost_of(conv2d((1, 8, 8, 8), (1, 8, 8, 16)))
    four = cost_of(conv2d((4, 8, 8, 8), (4, 8, 8, 16)))
    assert four.flops == 4 * one.flops
    assert four.params == one.params
    assert four.bytes_written == 4 * one.bytes_written


def test_conv2d_no_bias():
    op = conv2d((1, 8, 8, 8), (1, 8, 8, 16), use_bias=False)
    params = 3 * 3 * 8 * 16
    assert_cost(
        cost_of(op),
        flops=2 * 8 * 8 * 3 * 3 * 8 * 16,
        params=params,
        bytes_read=(8 * 8 * 8 + params) * F32,
        bytes_written=8 * 8 * 16 * F32,
    )


def test_grouped_conv_divides_by_groups():
    op = conv2d((1, 8, 8, 8), (1, 8, 8, 16), groups=2)
    params = 3 * 3 * (8 // 2) * 16 + 16
    assert_cost(
        cost_of(op),
        flops=2 * 8 * 8 * 3 * 3 * (8 // 2) * 16,
        params=params,
        bytes_read=(8 * 8 * 8 + params) * F32,
        bytes_written=8 * 8 * 16 * F32,
    )


def test_dilation_does_not_change_cost_for_same_output_size():
    plain = cost_of(conv2d((1, 8, 8, 8), (1, 8, 8, 16), padding="same"))
    dilated = cost_of(
        conv2d((1, 8, 8, 8), (1, 8, 8, 16), padding="same", dilation_rate=(2, 2))
    )
    assert dilated == plain
    assert dilated.flops == 2 * 8 * 8 * 3 * 3 * 8 * 16


def test_stride2_same_vs_valid_padding():
    # 7x7 input, 3x3 kernel, stride 2: SAME -> ceil(7/2) = 4, VALID -> (7-3)//2+1 = 3.
    same = cost_of(conv2d((1, 7, 7, 4), (1, 4, 4, 8), strides=(2, 2), padding="same"))
    valid = cost_of(conv2d((1, 7, 7, 4), (1, 3, 3, 8), strides=(2, 2), padding="valid"))
    params = 3 * 3 * 4 * 8 + 8
    assert_cost(same, 2 * 4 * 4 * 3 * 3 * 4 * 8, params, (7 * 7 * 4 + params) * F32, 4 * 4 * 8 * F32)
    assert_cost(valid, 2 * 3 * 3 * 3 * 3 * 4 * 8, params, (7 * 7 * 4 + params) * F32, 3 * 3 * 8 * F32)


def test_conv1d_and_conv3d():
    c1 = cost_of(make_op("Conv1D", [(2, 10, 4)], (2, 8, 6), kernel_size=(3,)))
    p1 = 3 * 4 * 6 + 6
    assert_cost(c1, 2 * 2 * 8 * 3 * 4 * 6, p1, (2 * 10 * 4 + p1) * F32, 2 * 8 * 6 * F32)
    c3 = cost_of(make_op("Conv3D", [(1, 4, 4, 4, 2)], (1, 2, 2, 2, 3), kernel_size=(3, 3, 3)))
    p3 = 3 * 3 * 3 * 2 * 3 + 3
    assert_cost(c3, 2 * 2 * 2 * 2 * 27 * 2 * 3, p3, (4 * 4 * 4 * 2 + p3) * F32, 2 * 2 * 2 * 3 * F32)


def test_conv_alive_counts_give_bilinear_formula():
    op = conv2d((1, 8, 8, 8), (1, 8, 8, 16))
    params = 3 * 3 * 4 * 10 + 10
    assert_cost(
        cost_of(op, alive_in=4, alive_out=10),
        flops=2 * 8 * 8 * 3 * 3 * 4 * 10,
        params=params,
        bytes_read=(8 * 8 * 4 + params) * F32,
        bytes_written=8 * 8 * 10 * F32,
    )
    # Bilinear in (A_in, A_out): doubling both quadruples the kernel FLOPs.
    assert cost_of(op, 4, 8).flops == 4 * cost_of(op, 2, 4).flops


def test_conv_alive_counts_as_floats():
    op = conv2d((1, 8, 8, 8), (1, 8, 8, 16))
    params = 3 * 3 * 2.5 * 3.5 + 3.5
    assert_cost(
        cost_of(op, alive_in=2.5, alive_out=3.5),
        flops=2 * 8 * 8 * 3 * 3 * 2.5 * 3.5,
        params=params,
        bytes_read=(8 * 8 * 2.5 + params) * F32,
        bytes_written=8 * 8 * 3.5 * F32,
    )


def test_alive_in_sequence_must_match_input_count():
    op = conv2d((1, 8, 8, 8), (1, 8, 8, 16), name="conv_x")
    with pytest.raises(ValueError, match="conv_x"):
        cost_of(op, alive_in=[4, 4])


def test_float16_halves_bytes():
    c32 = cost_of(conv2d((1, 8, 8, 8), (1, 8, 8, 16)))
    c16 = cost_of(make_op("Conv2D", [(1, 8, 8, 8)], (1, 8, 8, 16), kernel_size=(3, 3),
                          dtype="float16"))
    params = 3 * 3 * 8 * 16 + 16
    assert_cost(c16, 2 * 8 * 8 * 3 * 3 * 8 * 16, params, (8 * 8 * 8 + params) * F16,
                8 * 8 * 16 * F16)
    assert c16.bytes_read == c32.bytes_read / 2
    assert c16.bytes_written == c32.bytes_written / 2
    assert (c16.flops, c16.params) == (c32.flops, c32.params)


def test_float32_weights_with_float16_activations():
    # Mixed precision: activations float16, variables float32.
    op = make_op("Conv2D", [(1, 8, 8, 8)], (1, 8, 8, 16), kernel_size=(3, 3),
                 dtype="float16", weight_dtype="float32")
    params = 3 * 3 * 8 * 16 + 16
    assert_cost(cost_of(op), 2 * 8 * 8 * 3 * 3 * 8 * 16, params,
                8 * 8 * 8 * F16 + params * F32, 8 * 8 * 16 * F16)


# ------------------------------------------------------------ conv_transpose_cost


def test_conv2d_transpose():
    # Every input position scatters a 3x3 kernel: FLOPs count input positions.
    op = make_op("Conv2DTranspose", [(1, 4, 4, 8)], (1, 8, 8, 16), kernel_size=(3, 3),
                 strides=(2, 2))
    params = 3 * 3 * 8 * 16 + 16
    assert_cost(cost_of(op), 2 * 4 * 4 * 3 * 3 * 8 * 16, params,
                (4 * 4 * 8 + params) * F32, 8 * 8 * 16 * F32)


def test_conv1d_transpose_no_bias_alive():
    op = make_op("Conv1DTranspose", [(1, 5, 4)], (1, 10, 6), kernel_size=(2,),
                 use_bias=False)
    params = 2 * 3 * 5
    assert_cost(cost_of(op, alive_in=3, alive_out=5), 2 * 5 * 2 * 3 * 5, params,
                (5 * 3 + params) * F32, 10 * 5 * F32)


# ------------------------------------------------------------------ depthwise_cost


def test_depthwise_conv2d_depth_multiplier_2():
    op = make_op("DepthwiseConv2D", [(1, 8, 8, 8)], (1, 8, 8, 16), kernel_size=(3, 3),
                 depth_multiplier=2)
    params = 3 * 3 * 8 * 2 + 8 * 2
    assert_cost(cost_of(op), 2 * 8 * 8 * 3 * 3 * 8 * 2, params,
                (8 * 8 * 8 + params) * F32, 8 * 8 * 16 * F32)


def test_depthwise_alive_follows_input():
    # Depthwise channels pass through: alive_in=5 with dm=2 gives 10 outputs.
    op = make_op("DepthwiseConv2D", [(1, 8, 8, 8)], (1, 4, 4, 16), kernel_size=(3, 3),
                 depth_multiplier=2, use_bias=False)
    params = 3 * 3 * 5 * 2
    assert_cost(cost_of(op, alive_in=5), 2 * 4 * 4 * 3 * 3 * 5 * 2, params,
                (8 * 8 * 5 + params) * F32, 4 * 4 * 10 * F32)


def test_depthwise_conv1d():
    op = make_op("DepthwiseConv1D", [(1, 10, 4)], (1, 10, 4), kernel_size=(3,))
    params = 3 * 4 + 4
    assert_cost(cost_of(op), 2 * 10 * 3 * 4, params, (10 * 4 + params) * F32, 10 * 4 * F32)


# ------------------------------------------------------------------ separable_cost


def test_separable_conv2d():
    op = make_op("SeparableConv2D", [(1, 8, 8, 8)], (1, 8, 8, 16), kernel_size=(3, 3))
    params = 3 * 3 * 8 + 8 * 16 + 16  # depthwise kernel, pointwise kernel, bias
    assert_cost(
        cost_of(op),
        flops=2 * 8 * 8 * 3 * 3 * 8 + 2 * 8 * 8 * 8 * 16,
        params=params,
        bytes_read=(8 * 8 * 8 + params) * F32,
        bytes_written=8 * 8 * 16 * F32,
    )


def test_separable_conv1d_depth_multiplier_strided():
    op = make_op("SeparableConv1D", [(1, 10, 4)], (1, 5, 6), kernel_size=(3,),
                 depth_multiplier=2, use_bias=False)
    mid = 4 * 2
    params = 3 * mid + mid * 6
    assert_cost(cost_of(op), 2 * 5 * 3 * mid + 2 * 5 * mid * 6, params,
                (10 * 4 + params) * F32, 5 * 6 * F32)


# ---------------------------------------------------------------------- dense_cost


def test_dense_2d():
    op = make_op("Dense", [(2, 32)], (2, 10))
    params = 32 * 10 + 10
    assert_cost(cost_of(op), 2 * 2 * 32 * 10, params, (2 * 32 + params) * F32, 2 * 10 * F32)


def test_dense_on_4d_tensor_counts_all_rows():
    # rows = B * H * W = 2 * 4 * 4 (MorphNet undercounts this; we do not).
    op = make_op("Dense", [(2, 4, 4, 8)], (2, 4, 4, 16))
    params = 8 * 16 + 16
    assert_cost(cost_of(op), 2 * (2 * 4 * 4) * 8 * 16, params,
                (2 * 4 * 4 * 8 + params) * F32, 2 * 4 * 4 * 16 * F32)


def test_dense_no_bias_alive():
    op = make_op("Dense", [(1, 32)], (1, 10), use_bias=False)
    assert_cost(cost_of(op, 20, 5), 2 * 1 * 20 * 5, 20 * 5, (20 + 20 * 5) * F32, 5 * F32)


def test_matmul_of_two_activations_by_hand():
    # x (2, 3, 5, 8) @ y (2, 3, 8, 6): 2 * 3 products of 5x8 by 8x6, no weights.
    op = make_op("ops.Matmul", [(2, 3, 5, 8), (2, 3, 8, 6)], (2, 3, 5, 6))
    assert_cost(cost_of(op), 2 * (2 * 3 * 5) * 8 * 6, 0,
                (2 * 3 * 5 * 8 + 2 * 3 * 8 * 6) * F32, 2 * 3 * 5 * 6 * F32)
    # alive: 4 of x's 8 (the shared dimension), 3 of the 6 outputs
    assert_cost(cost_of(op, [4, 3], 3), 2 * (2 * 3 * 5) * 4 * 3, 0,
                (2 * 3 * 5 * 4 + 2 * 3 * 8 * 3) * F32, 2 * 3 * 5 * 3 * F32)


# A self-attention over (B, T, C) = (2, 6, 8): 2 heads, key_dim 3, value_dim 5.
ATTN = dict(num_heads=2, key_dim=3, value_dim=5, attention_axes=(1,),
            input_roles=("query", "value"))


def test_attention_by_hand():
    op = make_op("MultiHeadAttention", [(2, 6, 8), (2, 6, 8)], (2, 6, 8), **ATTN)
    rows, h, dk, dv, c = 2 * 6, 2, 3, 5, 8
    s = 2 * h * 6 * 6  # attention-matrix elements, both batch items
    proj = 2 * rows * c * h * dk * 2 + 2 * rows * c * h * dv + 2 * rows * h * dv * c
    products = 2 * s * dk + 2 * s * dv
    params = 2 * (c * h * dk + h * dk) + (c * h * dv + h * dv) + (h * dv * c + c)
    flops = proj + products + s + 5 * s  # scale (of the scores: fused path), softmax
    q, k, v, ctx = rows * h * dk, rows * h * dk, rows * h * dv, rows * h * dv
    read = (3 * rows * c + params + s + (q + k) + s + (s + v) + ctx) * F32
    written = (q + k + v + s + s + s + ctx + rows * c) * F32
    assert_cost(cost_of(op), flops, params, read, written)


def test_attention_mask_and_key_inputs_by_hand():
    roles = ("query", "value", "key", "attention_mask")
    op = make_op("MultiHeadAttention", [(1, 6, 8), (1, 4, 7), (1, 4, 9), (1, 6, 4)],
                 (1, 6, 8), **{**ATTN, "input_roles": roles},
                 input_dtypes=("float32", "float32", "float32", "bool"))
    parts = costs.attention_parts(op)
    s = 2 * 6 * 4
    assert parts["key"].flops == 2 * 4 * 9 * 2 * 3
    assert parts["value"].flops == 2 * 4 * 7 * 2 * 5
    assert_cost(parts["mask"], s, 0, s * F32 + 6 * 4 * 1, s * F32)
    assert cost_of(op) == sum(parts.values(), costs.ZERO)


def test_attention_without_roles_takes_query_value_key_mask_order():
    attrs = {k: v for k, v in ATTN.items() if k != "input_roles"}
    op = make_op("MultiHeadAttention", [(1, 6, 8), (1, 4, 7)], (1, 6, 8), **attrs)
    assert "mask" not in costs.attention_parts(op)
    assert costs.attention_parts(op)["value"].flops == 2 * 4 * 7 * 2 * 5


def test_embedding_by_hand():
    op = make_op("Embedding", [(2, 6)], (2, 6, 16), input_dim=50,
                 input_dtypes=("int64",))
    assert_cost(cost_of(op), 0, 50 * 16, 12 * 8 + 12 * 16 * F32, 12 * 16 * F32)
    assert_cost(cost_of(op, None, 4), 0, 50 * 4, 12 * 8 + 12 * 4 * F32, 12 * 4 * F32)


def test_einsum_dense_is_refused_by_name():
    op = make_op("EinsumDense", [(1, 32)], (1, 10), name="proj")
    with pytest.raises(UnsupportedOpError, match="'proj'.*EinsumDense"):
        cost_of(op)


# ------------------------------------------------------------------ normalization


def test_batchnorm():
    op = make_op("BatchNormalization", [(1, 4, 4, 8)], (1, 4, 4, 8))
    params = 4 * 8  # gamma, beta, moving mean, moving variance
    assert_cost(cost_of(op), 2 * 4 * 4 * 8, params, (4 * 4 * 8 + params) * F32, 4 * 4 * 8 * F32)


def test_batchnorm_without_scale():
    op = make_op("BatchNormalization", [(1, 4, 4, 8)], (1, 4, 4, 8), scale=False)
    params = 3 * 8
    assert_cost(cost_of(op), 2 * 4 * 4 * 8, params, (4 * 4 * 8 + params) * F32, 4 * 4 * 8 * F32)


def test_batchnorm_without_scale_and_center_alive():
    op = make_op("BatchNormalization", [(2, 4, 4, 8)], (2, 4, 4, 8), scale=False, center=False)
    params = 2 * 5
    assert_cost(cost_of(op, 5), 2 * 2 * 4 * 4 * 5, params, (2 * 4 * 4 * 5 + params) * F32,
                2 * 4 * 4 * 5 * F32)


def test_layernorm_last_axis():
    op = make_op("LayerNormalization", [(2, 5, 16)], (2, 5, 16), axis=-1)
    params = 2 * 16
    assert_cost(cost_of(op), 8 * 2 * 5 * 16, params, (2 * 5 * 16 + params) * F32,
                2 * 5 * 16 * F32)


def test_layernorm_two_axes_no_center():
    # gamma spans both normalized axes: 5 * 16 values; no beta.
    op = make_op("LayerNormalization", [(2, 5, 16)], (2, 5, 16), axis=(-2, -1), center=False)
    params = 5 * 16
    assert_cost(cost_of(op), 8 * 2 * 5 * 16, params, (2 * 5 * 16 + params) * F32,
                2 * 5 * 16 * F32)


def test_layernorm_rms_scaling_has_gamma_only():
    op = make_op("LayerNormalization", [(2, 5, 16)], (2, 5, 16), axis=-1, rms_scaling=True)
    assert cost_of(op).params == 16


def test_normalization():
    op = make_op("Normalization", [(1, 4, 4, 3)], (1, 4, 4, 3), axis=(-1,))
    params = 2 * 3 + 1  # mean, variance, count
    assert_cost(cost_of(op), 2 * 4 * 4 * 3, params, (4 * 4 * 3 + params) * F32, 4 * 4 * 3 * F32)


def test_normalization_with_constant_stats_has_no_params():
    # Normalization(mean=..., variance=...) creates no weights (count_params() == 0),
    # but still reads its mean and variance.
    op = make_op("Normalization", [(1, 4, 4, 3)], (1, 4, 4, 3), axis=(-1,),
                 constant_stats=True)
    assert_cost(cost_of(op), 2 * 4 * 4 * 3, 0, (4 * 4 * 3 + 2 * 3) * F32, 4 * 4 * 3 * F32)


def test_rescaling_without_offset():
    op = make_op("Rescaling", [(1, 4, 4, 3)], (1, 4, 4, 3), offset=0.0)
    assert_cost(cost_of(op), 1 * 4 * 4 * 3, 0, 4 * 4 * 3 * F32, 4 * 4 * 3 * F32)


def test_rescaling_with_offset():
    op = make_op("Rescaling", [(1, 4, 4, 3)], (1, 4, 4, 3), offset=-1.0)
    assert_cost(cost_of(op), 2 * 4 * 4 * 3, 0, 4 * 4 * 3 * F32, 4 * 4 * 3 * F32)


# -------------------------------------------------------------------- activations

ELEMS = 1 * 4 * 4 * 8


@pytest.mark.parametrize(
    "op_type, attrs, per_element",
    [
        ("Activation", {"activation": "relu"}, 1),
        ("Activation", {"activation": "linear"}, 0),
        ("Activation", {}, 0),
        ("ReLU", {"max_value": None}, 1),
        ("ReLU", {"max_value": 6}, 2),  # relu6 = max + min
        ("ReLU", {"max_value": 6.0, "negative_slope": 0.0}, 2),
        ("ReLU", {"max_value": 1.0}, 2),  # relu_max
        ("ReLU", {"negative_slope": 0.1}, 2),  # leaky
        ("Activation", {"activation": "swish"}, 5),
        ("Activation", {"activation": "silu"}, 5),  # how Keras 3 serializes swish
        ("Activation", {"activation": "hard_swish"}, 4),
        ("Activation", {"activation": "hard_silu"}, 4),
        ("Activation", {"activation": "sigmoid"}, 4),
        ("Activation", {"activation": "gelu"}, 8),
        ("Activation", {"activation": "softmax"}, 5),
        ("Activation", {"activation": "tanh"}, 4),
        ("Softmax", {}, 5),
        ("LeakyReLU", {}, 2),
        ("ELU", {}, 3),
        ("ops.Relu", {}, 1),
        ("ops.Relu6", {}, 2),
        ("ops.Sigmoid", {}, 4),
        ("ops.HardSigmoid", {}, 3),
        ("ops.Silu", {}, 5),
        ("ops.HardSilu", {}, 4),
        ("ops.Gelu", {}, 8),
        ("ops.Gelu", {"approximate": False}, 8),
        ("ops.Gelu", {"approximate": True}, 12),  # keras.ops.gelu's default: tanh form
        ("ops.Tanh", {}, 4),
        ("ops.Softmax", {}, 5),
    ],
)
def test_activation_flops_per_element(op_type, attrs, per_element):
    op = make_op(op_type, [(1, 4, 4, 8)], (1, 4, 4, 8), **attrs)
    assert_cost(cost_of(op), per_element * ELEMS, 0, ELEMS * F32, ELEMS * F32)


def test_activation_alive_counts():
    op = make_op("Activation", [(2, 4, 4, 8)], (2, 4, 4, 8), activation="swish")
    assert_cost(cost_of(op, 3), 5 * 2 * 4 * 4 * 3, 0, 2 * 4 * 4 * 3 * F32, 2 * 4 * 4 * 3 * F32)


def test_prelu_params_per_element_and_shared_axes():
    op = make_op("PReLU", [(1, 4, 4, 8)], (1, 4, 4, 8))
    params = 4 * 4 * 8  # one alpha per element of the per-sample shape
    assert_cost(cost_of(op), 2 * ELEMS, params, (ELEMS + params) * F32, ELEMS * F32)
    shared = make_op("PReLU", [(1, 4, 4, 8)], (1, 4, 4, 8), shared_axes=(1, 2))
    assert_cost(cost_of(shared), 2 * ELEMS, 8, (ELEMS + 8) * F32, ELEMS * F32)


def test_unknown_activation_names_layer_and_activation():
    op = make_op("Activation", [(1, 4, 4, 8)], (1, 4, 4, 8), name="act_7",
                 activation="my_fancy_act")
    with pytest.raises(UnsupportedOpError) as info:
        cost_of(op)
    msg = str(info.value)
    assert "'act_7'" in msg
    assert "my_fancy_act" in msg
    assert "relu" in msg  # lists the known activations


# ------------------------------------------------------------------ merge_cost


@pytest.mark.parametrize("op_type", ["Add", "Subtract", "Multiply", "Maximum", "Minimum"])
def test_binary_merge(op_type):
    op = make_op(op_type, [(1, 4, 4, 8), (1, 4, 4, 8)], (1, 4, 4, 8))
    assert_cost(cost_of(op), 1 * ELEMS, 0, 2 * ELEMS * F32, ELEMS * F32)


def test_add_three_inputs():
    op = make_op("Add", [(1, 4, 4, 8)] * 3, (1, 4, 4, 8))
    assert_cost(cost_of(op), 2 * ELEMS, 0, 3 * ELEMS * F32, ELEMS * F32)


def test_multiply_with_broadcast_squeeze_excite_scale():
    # x * se, se of shape (1, 1, 1, 8): read at its own size, not the output's.
    op = make_op("Multiply", [(1, 4, 4, 8), (1, 1, 1, 8)], (1, 4, 4, 8))
    assert_cost(cost_of(op), 1 * 4 * 4 * 8, 0, (4 * 4 * 8 + 1 * 1 * 8) * F32, 4 * 4 * 8 * F32)


def test_add_with_broadcast_input():
    op = make_op("Add", [(2, 1, 1, 8), (2, 4, 4, 8)], (2, 4, 4, 8))
    assert_cost(cost_of(op), 2 * 4 * 4 * 8, 0, (2 * 8 + 2 * 4 * 4 * 8) * F32, 2 * 4 * 4 * 8 * F32)


def test_average_counts_the_division():
    op = make_op("Average", [(1, 4, 4, 8), (1, 4, 4, 8)], (1, 4, 4, 8))
    assert_cost(cost_of(op), 2 * ELEMS, 0, 2 * ELEMS * F32, ELEMS * F32)


def test_merge_alive_counts_per_input():
    op = make_op("Add", [(1, 4, 4, 8), (1, 4, 4, 8)], (1, 4, 4, 8))
    # Output keeps the union of alive channels: max(3, 5).
    assert_cost(cost_of(op, [3, 5]), 4 * 4 * 5, 0, (4 * 4 * 3 + 4 * 4 * 5) * F32, 4 * 4 * 5 * F32)


# -------------------------------------------------------------- ops_binary_cost


def test_ops_add_with_constant():
    # `x + 3.0`: one tensor input plus one constant operand -> 1 FLOP per element.
    op = make_op("ops.Add", [(1, 4, 4, 8)], (1, 4, 4, 8), constant_operands=1)
    assert_cost(cost_of(op), 1 * ELEMS, 0, ELEMS * F32, ELEMS * F32)


@pytest.mark.parametrize("op_type", ["ops.Multiply", "ops.Subtract", "ops.Divide",
                                     "ops.TrueDivide", "ops.Maximum", "ops.Minimum",
                                     "ops.Power"])
def test_ops_binary_two_tensors(op_type):
    op = make_op(op_type, [(1, 4, 4, 8), (1, 4, 4, 8)], (1, 4, 4, 8))
    assert_cost(cost_of(op), 1 * ELEMS, 0, 2 * ELEMS * F32, ELEMS * F32)


def test_ops_binary_broadcast_alive():
    op = make_op("ops.Multiply", [(1, 4, 4, 8), (1, 1, 1, 8)], (1, 4, 4, 8))
    assert_cost(cost_of(op, 6), 4 * 4 * 6, 0, (4 * 4 * 6 + 6) * F32, 4 * 4 * 6 * F32)


# --------------------------------------------------------- scaled_residual_cost


def test_custom_scale_layer():
    # InceptionResNetV2's x + scale * branch: a multiply and an add per element.
    op = make_op("CustomScaleLayer", [(1, 4, 4, 8), (1, 4, 4, 8)], (1, 4, 4, 8))
    assert_cost(cost_of(op), 2 * ELEMS, 0, 2 * ELEMS * F32, ELEMS * F32)


# ------------------------------------------------------------------ concat_cost


def test_concatenate_channel_axis():
    op = make_op("Concatenate", [(1, 4, 4, 8), (1, 4, 4, 16)], (1, 4, 4, 24), axis=-1)
    assert_cost(cost_of(op), 0, 0, (4 * 4 * 8 + 4 * 4 * 16) * F32, 4 * 4 * 24 * F32)


def test_concatenate_alive_out_is_sum_of_alive_in():
    op = make_op("Concatenate", [(1, 4, 4, 8), (1, 4, 4, 16)], (1, 4, 4, 24), axis=3)
    assert_cost(cost_of(op, [3, 5]), 0, 0, (4 * 4 * 3 + 4 * 4 * 5) * F32, 4 * 4 * (3 + 5) * F32)


def test_concatenate_spatial_axis_keeps_channels():
    op = make_op("Concatenate", [(1, 2, 4, 8), (1, 3, 4, 8)], (1, 5, 4, 8), axis=1)
    assert_cost(cost_of(op), 0, 0, (2 * 4 * 8 + 3 * 4 * 8) * F32, 5 * 4 * 8 * F32)


# -------------------------------------------------------------------- pool_cost


def test_max_pooling2d():
    op = make_op("MaxPooling2D", [(1, 8, 8, 8)], (1, 4, 4, 8), pool_size=(2, 2))
    assert_cost(cost_of(op), 2 * 2 * 4 * 4 * 8, 0, 8 * 8 * 8 * F32, 4 * 4 * 8 * F32)


def test_average_pooling2d_adds_divide():
    op = make_op("AveragePooling2D", [(1, 8, 8, 8)], (1, 4, 4, 8), pool_size=(2, 2))
    assert_cost(cost_of(op), (2 * 2 + 1) * 4 * 4 * 8, 0, 8 * 8 * 8 * F32, 4 * 4 * 8 * F32)


def test_max_pooling1d_alive():
    op = make_op("MaxPooling1D", [(1, 8, 4)], (1, 3, 4), pool_size=(3,))
    assert_cost(cost_of(op, 2), 3 * 3 * 2, 0, 8 * 2 * F32, 3 * 2 * F32)


# ------------------------------------------------------------- global_pool_cost


@pytest.mark.parametrize("out_shape", [(2, 8), (2, 1, 1, 8)], ids=["keepdims_false", "keepdims_true"])
def test_global_average_pooling2d(out_shape):
    op = make_op("GlobalAveragePooling2D", [(2, 4, 4, 8)], out_shape,
                 keepdims=len(out_shape) == 4)
    assert_cost(cost_of(op), 2 * 4 * 4 * 8 + 2 * 8, 0, 2 * 4 * 4 * 8 * F32, 2 * 8 * F32)


@pytest.mark.parametrize("out_shape", [(2, 8), (2, 1, 1, 8)], ids=["keepdims_false", "keepdims_true"])
def test_global_max_pooling2d(out_shape):
    op = make_op("GlobalMaxPooling2D", [(2, 4, 4, 8)], out_shape, keepdims=len(out_shape) == 4)
    assert_cost(cost_of(op), 2 * 4 * 4 * 8, 0, 2 * 4 * 4 * 8 * F32, 2 * 8 * F32)


def test_global_average_pooling1d_alive():
    op = make_op("GlobalAveragePooling1D", [(1, 10, 8)], (1, 8))
    assert_cost(cost_of(op, 3), 10 * 3 + 3, 0, 10 * 3 * F32, 3 * F32)


# ------------------------------------------------------------------- view_cost


@pytest.mark.parametrize(
    "op_type, in_shape, out_shape",
    [
        ("Reshape", (1, 4, 4, 8), (1, 16, 8)),
        ("ops.Reshape", (1, 4, 4, 8), (1, 4, 4, 2, 4)),
        ("Flatten", (1, 4, 4, 8), (1, 128)),
        ("Dropout", (1, 4, 4, 8), (1, 4, 4, 8)),
        ("SpatialDropout2D", (1, 4, 4, 8), (1, 4, 4, 8)),
        ("GaussianNoise", (1, 4, 4, 8), (1, 4, 4, 8)),
        ("Identity", (1, 4, 4, 8), (1, 4, 4, 8)),
        ("ActivityRegularization", (1, 4, 4, 8), (1, 4, 4, 8)),
    ],
)
def test_views_cost_nothing(op_type, in_shape, out_shape):
    assert cost_of(make_op(op_type, [in_shape], out_shape)) == OpCost(0, 0, 0, 0)


def test_input_layer_costs_nothing():
    op = Op(name="img", type="InputLayer", inputs=[], input_shapes=[],
            output_shapes=[(1, 8, 8, 3)])
    assert cost_of(op) == costs.ZERO


# ------------------------------------------------------------------- copy_cost


def test_zero_padding2d_copies():
    op = make_op("ZeroPadding2D", [(1, 4, 4, 8)], (1, 6, 6, 8), padding=((1, 1), (1, 1)))
    assert_cost(cost_of(op), 0, 0, 4 * 4 * 8 * F32, 6 * 6 * 8 * F32)


def test_cropping2d_copies_alive():
    op = make_op("Cropping2D", [(1, 6, 6, 8)], (1, 4, 4, 8))
    assert_cost(cost_of(op, 5), 0, 0, 6 * 6 * 5 * F32, 4 * 4 * 5 * F32)


def test_upsampling2d_nearest_vs_bilinear():
    nearest = make_op("UpSampling2D", [(1, 4, 4, 8)], (1, 8, 8, 8), interpolation="nearest")
    bilinear = make_op("UpSampling2D", [(1, 4, 4, 8)], (1, 8, 8, 8), interpolation="bilinear")
    assert_cost(cost_of(nearest), 0, 0, 4 * 4 * 8 * F32, 8 * 8 * 8 * F32)
    assert_cost(cost_of(bilinear), 7 * 8 * 8 * 8, 0, 4 * 4 * 8 * F32, 8 * 8 * 8 * F32)


# ------------------------------------------------------ rearrange_cost, slice_cost


def test_transpose_and_split_read_and_write_every_element():
    # a shuffle's permute (h, w, 2, c/2) -> (h, w, c/2, 2): 2 channels on the last axis
    for t in ("Permute", "ops.Transpose"):
        op = make_op(t, [(1, 4, 4, 2, 8)], (1, 4, 4, 8, 2))
        assert_cost(cost_of(op), 0, 0, 4 * 4 * 16 * F32, 4 * 4 * 16 * F32)
        # alive counts are in units of the input's last axis: 3 of 8 -> 6 of 16 moved
        assert_cost(cost_of(op, 3, 0.75), 0, 0, 4 * 4 * 6 * F32, 4 * 4 * 6 * F32)
    split = make_op("ops.Split", [(1, 4, 4, 8)], (1, 4, 4, 4))
    assert_cost(cost_of(split, 6), 0, 0, 4 * 4 * 6 * F32, 4 * 4 * 6 * F32)


def test_channel_slice_copies_the_slice():
    op = make_op("ops.GetItem", [(1, 4, 4, 8)], (1, 4, 4, 3))
    assert_cost(cost_of(op), 0, 0, 4 * 4 * 3 * F32, 4 * 4 * 3 * F32)
    assert_cost(cost_of(op, 6, 2), 0, 0, 4 * 4 * 2 * F32, 4 * 4 * 2 * F32)


# ----------------------------------------------------------------- resize_cost


def test_resizing_bilinear_nearest_bicubic_area():
    def op(interp):
        return make_op("Resizing", [(1, 4, 4, 8)], (1, 8, 8, 8), interpolation=interp)

    rw = (4 * 4 * 8 * F32, 8 * 8 * 8 * F32)
    # bilinear: 4 multiplies + 3 adds per output element
    assert_cost(cost_of(op("bilinear")), 7 * 8 * 8 * 8, 0, *rw)
    assert_cost(cost_of(op("nearest")), 0, 0, *rw)
    # bicubic: 16 multiplies + 15 adds per output element
    assert_cost(cost_of(op("bicubic")), 31 * 8 * 8 * 8, 0, *rw)
    # area: one add per input element, one divide per output element
    assert_cost(cost_of(op("area")), 4 * 4 * 8 + 8 * 8 * 8, 0, *rw)


def test_resizing_counts_alive_channels():
    op = make_op("Resizing", [(1, 4, 4, 8)], (1, 2, 2, 8), interpolation="bilinear")
    assert_cost(cost_of(op, 3), 7 * 2 * 2 * 3, 0, 4 * 4 * 3 * F32, 2 * 2 * 3 * F32)


def test_resizing_unknown_interpolation_is_named():
    op = make_op("Resizing", [(1, 4, 4, 8)], (1, 8, 8, 8), name="rs", interpolation="gaussian")
    with pytest.raises(UnsupportedOpError, match="'rs'.*gaussian"):
        cost_of(op)


def test_adaptive_pooling_and_random_augmentations():
    avg = make_op("AdaptiveAveragePooling2D", [(1, 4, 4, 8)], (1, 2, 2, 8))
    # one add per input element + one divide per output element
    assert_cost(cost_of(avg), 4 * 4 * 8 + 2 * 2 * 8, 0, 4 * 4 * 8 * F32, 2 * 2 * 8 * F32)
    flip = make_op("RandomFlip", [(1, 4, 4, 8)], (1, 4, 4, 8))
    assert cost_of(flip) == costs.ZERO
    crop = make_op("CenterCrop", [(1, 6, 6, 8)], (1, 4, 4, 8))
    assert_cost(cost_of(crop), 0, 0, 6 * 6 * 8 * F32, 4 * 4 * 8 * F32)


def test_zero_padding_float16():
    op = make_op("ZeroPadding2D", [(1, 4, 4, 8)], (1, 6, 6, 8), dtype="float16")
    assert_cost(cost_of(op), 0, 0, 4 * 4 * 8 * F16, 6 * 6 * 8 * F16)


def test_second_call_of_shared_layer_owns_no_params():
    first = conv2d((1, 8, 8, 8), (1, 8, 8, 16))
    again = conv2d((1, 8, 8, 8), (1, 8, 8, 16), shared_from="conv")
    params = 3 * 3 * 8 * 16 + 16
    assert_cost(cost_of(first), 2 * 8 * 8 * 3 * 3 * 8 * 16, params,
                (8 * 8 * 8 + params) * F32, 8 * 8 * 16 * F32)
    assert_cost(cost_of(again), 2 * 8 * 8 * 3 * 3 * 8 * 16, 0,
                (8 * 8 * 8 + params) * F32, 8 * 8 * 16 * F32)


# ---------------------------------------------------------------- registry errors


def test_unknown_op_type_lists_supported_types():
    op = make_op("FancyAttention", [(1, 4, 8)], (1, 4, 8), name="attn_1")
    with pytest.raises(UnsupportedOpError) as info:
        cost_of(op)
    msg = str(info.value)
    assert "'attn_1'" in msg and "'FancyAttention'" in msg
    for t in ("Conv2D", "Dense", "DepthwiseConv2D", "ops.Add"):
        assert t in msg
    assert "--allow-unknown" in msg


def test_rule_without_layer_names_op_type():
    with pytest.raises(UnsupportedOpError, match="op type 'Nope'"):
        costs.rule("Nope")
    assert not costs.is_supported("Nope")
    assert costs.is_supported("Conv2D")


def test_register_twice_raises(monkeypatch):
    monkeypatch.setattr(costs, "_REGISTRY", dict(costs._REGISTRY))
    with pytest.raises(ValueError, match="'Conv2D'.*registered twice"):
        costs.register("Conv2D", op_class=costs.DENSE)(lambda op, a_in, a_out: costs.ZERO)


def test_failed_register_registers_nothing(monkeypatch):
    monkeypatch.setattr(costs, "_REGISTRY", dict(costs._REGISTRY))
    with pytest.raises(ValueError):
        costs.register("BrandNewOp", "Dense", op_class=costs.DENSE)(
            lambda op, a_in, a_out: costs.ZERO
        )
    assert not costs.is_supported("BrandNewOp")


def test_register_new_type(monkeypatch):
    monkeypatch.setattr(costs, "_REGISTRY", dict(costs._REGISTRY))

    @costs.register("MyOp", op_class=costs.ELEMENTWISE)
    def my_cost(op, a_in, a_out):
        return OpCost(3 * a_in[0], 0, 0, 0)

    assert "MyOp" in costs.supported_types()
    assert costs.op_class("MyOp") == costs.ELEMENTWISE
    assert cost_of(make_op("MyOp", [(1, 7)], (1, 7))).flops == 3 * 7


# ------------------------------------------------------------------------ OpCost


def test_opcost_add_and_to_dict():
    total = OpCost(1, 2, 3, 4) + OpCost(10, 20, 30, 40.5)
    assert total == OpCost(11, 22, 33, 44.5)
    assert total.bytes_total == 33 + 44.5
    d = total.to_dict()
    assert d == {"flops": 11, "params": 22, "bytes_read": 33, "bytes_written": 44.5}
    assert isinstance(OpCost(2.0, 0, 0, 0).to_dict()["flops"], int)
