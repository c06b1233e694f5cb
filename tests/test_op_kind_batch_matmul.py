"""The batch_matmul op kind (attention's Q.K^T and A.V): its work by hand, the Keras
and LiteRT mappings onto it, and that its microbenchmark converts to the very kernel
the mapping sends to it."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from latency_lab import costs, op_kinds  # noqa: E402
from latency_lab.bench import plans  # noqa: E402
from latency_lab.kernels import work_items  # noqa: E402
from latency_lab.kernels.litert import litert_kernels  # noqa: E402

CFG = dict(b=4, m=16, k=8, n=12)


def test_work_by_hand():
    w = op_kinds.work("batch_matmul", CFG)
    assert w.flops == 2 * 4 * 16 * 8 * 12
    assert w.params == 0  # both operands are activations: nothing streams as weights
    assert w.bytes_read == 4 * (4 * 16 * 8 + 4 * 8 * 12)
    assert w.bytes_written == 4 * 4 * 16 * 12
    assert op_kinds.op_class("batch_matmul", CFG) == costs.DENSE
    assert op_kinds.weight_bytes("batch_matmul", CFG) == 0


def _matmul_model(adj_y=False):
    q = keras.Input((4, 16, 8), name="q")
    k = keras.Input((4, 12, 8) if adj_y else (4, 8, 12), name="k")
    kt = keras.ops.swapaxes(k, -1, -2) if adj_y else k
    return keras.Model([q, k], keras.ops.matmul(q, kt), name="mm")


@pytest.mark.parametrize("runtime", ["keras", "litert"])
def test_a_matmul_of_two_tensors_maps_to_one_sample(runtime):
    items = [i for i in work_items(_matmul_model(), runtime) if i.configs]
    assert [i.configs for i in items] == [[("batch_matmul", CFG)]]


def test_a_transposed_operand_maps_to_the_same_sizes():
    """Q.K^T: LiteRT folds the transpose into BATCH_MATMUL's adj_y."""
    kernels, _ = litert_kernels(_matmul_model(adj_y=True))
    bmm = [k for k in kernels if k.op == "BATCH_MATMUL"]
    assert len(bmm) == 1
    assert op_kinds.kernel_configs(bmm[0]) == [("batch_matmul", CFG)]


def test_attention_times_its_two_products():
    x = keras.Input((10, 32))
    y = keras.layers.MultiHeadAttention(num_heads=2, key_dim=16, name="mha")(x, x)
    cfgs = [c for i in work_items(keras.Model(x, y), "litert") for c in (i.configs or [])
            if c[0] == "batch_matmul"]
    assert cfgs == [("batch_matmul", dict(b=2, m=10, k=16, n=10)),   # Q.K^T
                    ("batch_matmul", dict(b=2, m=10, k=10, n=16))]   # A.V


def test_the_microbenchmark_runs_the_kernel_the_mapping_times():
    shapes, fn = op_kinds.get("batch_matmul").build(CFG, np.random.default_rng(0))
    inputs = [keras.Input(s[1:], batch_size=s[0]) for s in shapes]
    kernels, _ = litert_kernels(keras.Model(inputs, fn(*inputs)), batch_size=shapes[0][0])
    timed = [k for k in kernels if op_kinds.kernel_configs(k)]
    assert [k.op for k in timed] == ["BATCH_MATMUL"]
    assert op_kinds.kernel_configs(timed[0]) == [("batch_matmul", CFG)]


def test_the_table_plan_covers_attention_sizes():
    covered = [c for op, c in plans.coverage_configs(quick=True) if op == "batch_matmul"]
    assert covered and all(set(c) == set(op_kinds.get("batch_matmul").keys) for c in covered)
    # both products of each head shape: Q.K^T (k = head dim) and A.V (k = sequence)
    assert any(c["k"] == c["m"] for c in covered) and any(c["n"] == c["m"] for c in covered)
