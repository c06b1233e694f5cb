"""latency_lab.op_kinds and latency_lab.bench: the op-kind registry, work() against
hand-computed FLOPs, derived ceilings/overheads from synthetic samples, and the sampling
plans."""

import json
import math

import numpy as np
import pytest

from latency_lab import costs, op_kinds
from latency_lab.bench import calibration, ceilings, plans
from latency_lab.bench.ceilings import ceilings_from_samples, overhead_from_samples
from latency_lab.errors import ProfileError
from latency_lab.op_kinds import op_class, work
from latency_lab.op_kinds.activation import ACTIVATIONS
from latency_lab.op_kinds.base import input_dtype
from latency_lab.op_kinds.conv2d import small_map_configs

BENCH_OPS = {k.name: k for k in op_kinds.kinds()}
from latency_lab.profile import Sample, sample_key

# One small config per registered op, with exactly that op's keys.
SMALL = {
    "conv2d": dict(h=8, w=8, cin=8, cout=16, k=3, s=2),
    "transpose_conv": dict(h=4, w=5, cin=8, cout=6, k=3, s=2),
    "depthwise": dict(h=9, w=7, c=8, k=3, s=2),
    "depthwise_multiplier": dict(h=9, w=7, c=4, dm=2, k=3, s=2),
    "dense": dict(rows=4, cin=8, cout=6),
    "pool": dict(h=8, w=8, c=4, k=2, s=2, kind="max"),
    "global_pool": dict(h=5, w=5, c=6),
    "add": dict(h=4, w=4, c=8, broadcast=False),
    "multiply": dict(h=4, w=4, c=8, broadcast=True),
    "add_scalar": dict(h=4, w=5, c=3),
    "multiply_scalar": dict(h=4, w=5, c=3),
    "concat": dict(h=4, w=4, c1=3, c2=5),
    "activation": dict(h=4, w=4, c=8, fn="swish"),
    "pad": dict(h=4, w=5, c=3),
    "resize": dict(h=4, w=5, c=3, scale=2, kind="bilinear"),
    "chain": dict(n=3, size=8),
    "weight_stream": dict(n=2, c=16),
    "batch_matmul": dict(b=2, m=4, k=3, n=5),
    "transpose": dict(rows=4, a=2, b=3, inner=2),
    "slice": dict(rows=6, cin=8, cout=3),
    "squared_difference": dict(rows=6, c=5, broadcast=True),
    "row_broadcast": dict(rows=6, c=5, fn="multiply", outer=True),
    "gather": dict(n=6, c=5, vocab=40),
    "unary": dict(rows=6, c=5, fn="rsqrt"),
    "reduce_rows": dict(rows=6, c=5),
    "softmax": dict(rows=6, cols=5),
}


def sample(op, config, median_ms, *, iqr_ms=0.0, unstable=False):
    return Sample(op=op, config=dict(config), median_ms=median_ms, iqr_ms=iqr_ms,
                  repeats=5, raw_ms=(median_ms,) * 5, unstable=unstable)


# ------------------------------------------------------------------ registry


def test_every_registered_op_has_a_small_config_here():
    assert set(SMALL) == set(BENCH_OPS), "add a SMALL config for each new bench op"


@pytest.mark.parametrize("op", sorted(SMALL))
def test_config_keys_are_respected(op):
    bop = op_kinds.get(op)
    cfg = SMALL[op]
    assert set(cfg) == set(bop.keys)
    bop.check(cfg)  # complete: no error
    for missing in bop.keys:
        partial = {k: v for k, v in cfg.items() if k != missing}
        with pytest.raises(ProfileError, match=repr(missing)):
            bop.check(partial)
    # The builder and the IR agree on the inputs, and the built function (run eagerly
    # with keras.ops) produces the IR's output shape: every key is used consistently.
    shapes, fn = bop.build(cfg, np.random.default_rng(0))
    if op == "chain":
        # The chain's IR is a nominal two-input add (its work is never used for
        # ceilings); the program itself takes one input.
        assert [tuple(s) for s in shapes] == [(1, cfg["size"])]
    else:
        assert [tuple(s) for s in shapes] == bop.input_shapes(cfg)
    ir = bop.to_ir(cfg)
    xs = [np.ones(s, input_dtype(s)) for s in shapes]  # int32 ids (a gather's) are ones too
    out = np.asarray(fn(*xs))
    if op == "chain":
        assert out.shape == (1, cfg["size"])
    else:
        assert out.shape == tuple(ir.output_shape)
    w = work(op, cfg)
    assert w.bytes_total > 0 and w.flops >= 0


def test_config_values_change_the_work():
    base = SMALL["conv2d"]
    for key in ("h", "w", "cin", "cout", "k"):
        bigger = dict(base, **{key: base[key] * 2})
        assert work("conv2d", bigger).flops > work("conv2d", base).flops, key


def test_unknown_bench_op_names_the_known_ones():
    with pytest.raises(ProfileError, match="unknown microbenchmark op 'conv3d'.*conv2d"):
        op_kinds.get("conv3d")


def test_op_classes():
    assert op_class("conv2d", SMALL["conv2d"]) == costs.DENSE
    assert op_class("dense", SMALL["dense"]) == costs.DENSE
    assert op_class("depthwise", SMALL["depthwise"]) == costs.DEPTHWISE
    assert op_class("add", SMALL["add"]) == costs.ELEMENTWISE


# ------------------------------------------------------------ hand-computed work


def test_conv2d_flops_and_bytes_by_hand():
    # 8x8x8 -> stride 2 'same' -> 4x4x16, 3x3 kernel.
    w = work("conv2d", SMALL["conv2d"])
    assert w.flops == 2 * (4 * 4) * (3 * 3) * 8 * 16 == 36864
    params = 3 * 3 * 8 * 16 + 16
    assert w.params == params
    assert w.bytes_read == (8 * 8 * 8 + params) * 4
    assert w.bytes_written == 4 * 4 * 16 * 4


def test_conv2d_stride1_flops_by_hand():
    w = work("conv2d", dict(h=8, w=8, cin=8, cout=8, k=3, s=1))
    assert w.flops == 2 * 64 * 9 * 8 * 8 == 73728


def test_depthwise_flops_by_hand():
    # 9x7 stride 2 'same' -> ceil(9/2) x ceil(7/2) = 5 x 4.
    w = work("depthwise", SMALL["depthwise"])
    assert w.flops == 2 * (5 * 4) * (3 * 3) * 8 == 2880
    assert w.params == 3 * 3 * 8 + 8


def test_dense_flops_by_hand():
    w = work("dense", SMALL["dense"])
    assert w.flops == 2 * 4 * 8 * 6 == 384
    assert w.params == 8 * 6 + 6
    assert w.bytes_read == (4 * 8 + 8 * 6 + 6) * 4
    assert w.bytes_written == 4 * 6 * 4


def test_add_bytes_by_hand():
    w = work("add", dict(h=1024, w=1024, c=4, broadcast=False))
    n = 1024 * 1024 * 4
    assert w.flops == n
    assert w.bytes_total == 3 * n * 4  # two inputs read, one output written


# ------------------------------------------------------- ceilings from samples

BIG_ADD = dict(h=1024, w=1024, c=4, broadcast=False)  # 48 MiB working set
SMALL_ADD = dict(h=56, w=56, c=64, broadcast=False)    # cache-sized
CONV = dict(h=8, w=8, cin=8, cout=8, k=3, s=1)          # 73728 FLOPs
DW = dict(h=9, w=7, c=8, k=3, s=2)                      # 2880 FLOPs
DENSE = dict(rows=4, cin=8, cout=6)                     # 384 FLOPs


def _synthetic():
    return [
        sample("conv2d", CONV, 0.001),      # 73728 / 1e-6 s = 7.3728e10 FLOP/s
        sample("dense", DENSE, 0.0001),     # 384 / 1e-7 s = 3.84e9 (lower: not the max)
        sample("depthwise", DW, 0.0001),    # 2880 / 1e-7 s = 2.88e10
        sample("add", BIG_ADD, 2.0),        # 50331648 B / 2e-3 s = 2.5165824e10 B/s
        sample("add", SMALL_ADD, 0.01),     # 200704 FLOP / 1e-5 s = 2.00704e10 FLOP/s
        sample("chain", dict(n=9, size=8), 1e-4),  # ignored by the ceilings
    ]


def test_ceilings_from_samples_by_hand():
    c = ceilings_from_samples(_synthetic())
    flops = c["compute_flops_per_s"]
    assert flops["dense"] == pytest.approx(73728 / 1e-6)
    assert flops["depthwise"] == pytest.approx(2880 / 1e-7)
    # Elementwise: best of the big add (4194304 FLOPs / 2 ms) and the small one.
    assert flops["elementwise"] == pytest.approx(max(4194304 / 2e-3, 56 * 56 * 64 / 1e-5))
    assert c["memory_bytes_per_s"] == pytest.approx(3 * 1024 * 1024 * 4 * 4 / 2e-3)
    assert c["precision"] == "fp32"


def test_bandwidth_uses_only_working_sets_past_32_mib():
    # A faster small add must not set the bandwidth (it runs from cache).
    samples = _synthetic() + [sample("add", SMALL_ADD, 1e-6)]
    c = ceilings_from_samples(samples)
    assert c["memory_bytes_per_s"] == pytest.approx(50331648 / 2e-3)


def test_missing_bandwidth_sample_raises():
    samples = [s for s in _synthetic() if s.config != BIG_ADD]
    with pytest.raises(ProfileError, match="memory bandwidth"):
        ceilings_from_samples(samples)


def test_missing_class_raises_naming_it():
    samples = [s for s in _synthetic() if s.op != "depthwise"]
    with pytest.raises(ProfileError, match="depthwise"):
        ceilings_from_samples(samples)


def test_ceilings_ignore_unknown_ops():
    samples = _synthetic() + [sample("conv9d", {"x": 1}, 1e-9)]
    assert ceilings_from_samples(samples)["compute_flops_per_s"]["dense"] == pytest.approx(
        7.3728e10)


# ------------------------------------------------------- overhead from samples


def test_overhead_from_exact_chain_line():
    chains = [sample("chain", dict(n=n, size=8), 0.005 + 0.001 * n)
              for n in plans.CHAIN_LENGTHS]
    o = overhead_from_samples(chains + [sample("conv2d", CONV, 5.0)])
    assert o["per_op_ms"] == pytest.approx(0.001, rel=1e-9)
    assert o["per_invocation_ms"] == pytest.approx(0.005, rel=1e-9)


def test_overhead_negative_intercept_clamps_to_zero():
    chains = [sample("chain", dict(n=n, size=8), 0.001 * n) for n in (10, 20, 40)]
    chains[0] = sample("chain", dict(n=10, size=8), 0.0099)  # noise below the line
    o = overhead_from_samples(chains)
    assert o["per_invocation_ms"] >= 0.0
    assert o["per_op_ms"] == pytest.approx(0.001, rel=0.05)


def test_overhead_needs_two_chain_lengths():
    assert overhead_from_samples([sample("chain", dict(n=9, size=8), 0.01)]) == {
        "per_op_ms": 0.0, "per_invocation_ms": 0.0}


# ------------------------------------------------------------------- plans


def test_roofline_plan_contents():
    for quick in (True, False):
        plan = plans.roofline_plan(quick)
        keys = [p.key for p in plan]
        assert len(keys) == len(set(keys)), "no duplicate samples"
        for p in plan:
            assert p.phase == "roofline"
            assert set(p.config) == set(BENCH_OPS[p.op].keys), p
            assert p.key == sample_key(p.op, p.config)
        classes = {op_class(p.op, p.config) for p in plan if p.op != "chain"}
        assert {costs.DENSE, costs.DEPTHWISE, costs.ELEMENTWISE} <= classes
        # Bandwidth needs an elementwise sample past 32 MiB.
        assert any(op_class(p.op, p.config) == costs.ELEMENTWISE
                   and work(p.op, p.config).bytes_total >= 32 * 2**20
                   for p in plan if p.op != "chain")
        chains = sorted(p.config["n"] for p in plan if p.op == "chain")
        assert chains == sorted(plans.CHAIN_LENGTHS) and len(chains) >= 2
    assert len(plans.roofline_plan(False)) > len(plans.roofline_plan(True))


def test_roofline_plan_measured_fakely_gives_valid_ceilings():
    plan = plans.roofline_plan(True)
    samples = []
    for p in plan:
        w = work(p.op, p.config)
        samples.append(sample(p.op, p.config, (w.flops / 1e11 + w.bytes_total / 2e10) * 1e3
                              + 1e-3))
    c = ceilings_from_samples(samples)
    assert all(v > 0 for v in c["compute_flops_per_s"].values())
    assert 0 < c["memory_bytes_per_s"] <= 2e10


def _table_samples(n_per_op=8):
    out = []
    rng = np.random.default_rng(1)
    for i in range(n_per_op):
        cfg = dict(h=8 + 2 * i, w=8 + 2 * i, cin=8 + i, cout=16, k=3, s=1)
        w = work("conv2d", cfg)
        noise = 1.0 + (0.5 if i == 3 else 0.02 * rng.standard_normal())
        out.append(sample("conv2d", cfg, (w.flops / 1e10) * 1e3 * noise))
        dcfg = dict(rows=4 + i, cin=16, cout=8 + 3 * i)
        out.append(sample("dense", dcfg, 1e-3 * (1 + i) * (1.8 if i == 5 else 1.0)))
    out.append(sample("chain", dict(n=9, size=8), 1e-3))
    return out


@pytest.mark.parametrize("n", [0, 1, 3, 10])
def test_adaptive_plan_returns_only_new_keys_and_at_most_n(n):
    samples = _table_samples()
    plan = plans.adaptive_plan(samples, n, seed=0)
    old = {s.key for s in samples}
    keys = [p.key for p in plan]
    assert len(plan) <= n
    assert len(set(keys)) == len(keys)
    assert not set(keys) & old
    for p in plan:
        assert p.phase == "adaptive"
        assert p.op in ("conv2d", "dense")  # never chains
        assert set(p.config) == set(BENCH_OPS[p.op].keys)


def test_adaptive_plan_targets_the_worst_fit():
    samples = _table_samples()
    plan = plans.adaptive_plan(samples, 1, seed=0)
    assert len(plan) == 1
    # The worst leave-one-out error is the outlier conv (50 % off) or dense (80 % off).
    errs = sorted(((e, s) for op in ("conv2d", "dense")
                   for e, s in plans.loo_relative_errors(op, samples)),
                  key=lambda t: -t[0])
    assert plan[0].op == errs[0][1].op


def test_adaptive_plan_with_too_few_samples_still_new():
    samples = [sample("dense", dict(rows=4, cin=8, cout=8), 0.01)]
    plan = plans.adaptive_plan(samples, 5, seed=3)
    assert 0 < len(plan) <= 5
    assert samples[0].key not in {p.key for p in plan}


def test_geometric_mean():
    assert ceilings.geometric_mean([1, 100]) == pytest.approx(10)
    assert math.isnan(ceilings.geometric_mean([]))


def test_weight_bandwidth_curve_interpolates_in_log_space():
    # 1 MiB streamed in 0.01 ms -> 1.048576e11 B/s; 64 MiB in 6.4 ms -> 1.048576e10 B/s.
    samples = [sample("weight_stream", dict(n=1, c=512), 0.01),
               sample("weight_stream", dict(n=16, c=1024), 6.4)]
    curve = ceilings.weight_bandwidth_curve(samples)
    assert list(curve[0]) == [2.0**20, 64 * 2.0**20]
    assert ceilings.bandwidth_at(curve, 2.0**20) == pytest.approx(1.048576e11)
    # 8 MiB is halfway in log size between 1 and 64 MiB: geometric mean of the two.
    assert ceilings.bandwidth_at(curve, 8 * 2.0**20) == pytest.approx(
        (1.048576e11 * 1.048576e10) ** 0.5)
    # Held constant outside the measured range.
    assert ceilings.bandwidth_at(curve, 2.0**30) == pytest.approx(1.048576e10)
    assert ceilings.bandwidth_at(ceilings.weight_bandwidth_curve([]), 1e6) is None


def test_weight_bandwidth_curve_takes_off_the_calls_fixed_cost_and_never_slows_in_cache():
    # keras-runtime-like: a 0.1 ms call; 1 MiB in 0.11 ms is 0.01 ms of streaming.
    samples = [sample("weight_stream", dict(n=1, c=256), 0.15),   # 0.05 ms left < 0.1: noise
               sample("weight_stream", dict(n=1, c=512), 0.11 + 0.001),  # also call-dominated
               sample("weight_stream", dict(n=4, c=1024), 0.1 + 4 * 0.001 + 0.32),
               sample("weight_stream", dict(n=16, c=1024), 0.1 + 16 * 0.001 + 6.4),
               sample("weight_stream", dict(n=32, c=1024), 0.1 + 32 * 0.001 + 6.4)]
    size, bw = ceilings.weight_bandwidth_curve(samples, per_invocation_ms=0.1, per_op_ms=0.001)
    assert list(size) == [16 * MIB, 64 * MIB, 128 * MIB]
    assert bw[0] == pytest.approx(16 * MIB / 0.32e-3)
    # 128 MiB read at twice 64 MiB's speed (a host's slow spell at 64 MiB): the smaller
    # working set is raised to it, the larger one is left as measured.
    assert bw[1] == pytest.approx(128 * MIB / 6.4e-3) and bw[2] == pytest.approx(bw[1])
    # Without overheads the figures are the samples' own.
    size, bw = ceilings.weight_bandwidth_curve(samples[2:3])
    assert bw[0] == pytest.approx(16 * MIB / (0.424e-3))


def test_weight_bandwidth_curve_keeps_a_dip_between_cache_levels():
    """Past a 1 MiB L2, 2 MiB streamed slower than 8 MiB from the L3 (EPYC VM,
    LiteRT): a measured dip stays; only a point slower than every larger one (DRAM
    included) is raised, to the slowest of them."""
    gb_per_s = {(1, 256): 150, (2, 512): 69, (2, 1024): 114, (8, 1024): 40, (16, 1024): 50}
    samples = [sample("weight_stream", dict(n=n, c=c), 4 * n * c * c / (v * 1e9) * 1e3)
               for (n, c), v in gb_per_s.items()]
    size, bw = ceilings.weight_bandwidth_curve(samples)
    assert list(size) == [0.25 * MIB, 2 * MIB, 8 * MIB, 32 * MIB, 64 * MIB]
    # the dip at 2 MiB stays; 32 MiB, slower than DRAM at 64 MiB, is raised to it
    assert [round(float(b) / 1e9) for b in bw] == [150, 69, 114, 50, 50]


def test_an_op_used_at_one_channel_count_still_gets_a_table(monkeypatch):
    """A Rescaling on 3 image channels cannot be channel-slimmed into new configs; the
    plan varies its input size instead, so the table has more than one point."""
    real = [("add_scalar", dict(h=224, w=224, c=3)), ("multiply_scalar", dict(h=224, w=224, c=3))]
    real += [("conv2d", dict(h=14, w=14, cin=c, cout=c, k=3, s=1)) for c in (32, 64, 96, 128)]
    monkeypatch.setattr(plans, "application_layer_configs", lambda families, runtime, pool=None: list(real))
    plan = plans.table_plan(quick=True, seed=0, max_samples=60)
    for op in ("add_scalar", "multiply_scalar"):
        # resized variants at 3 channels, and the op's space-filling samples
        image = [p.config for p in plan if p.op == op and p.config["c"] == 3]
        assert len({(c["h"], c["w"]) for c in image}) >= 2
        assert all(c["h"] == c["w"] for c in image)
        assert len({sample_key(op, p.config) for p in plan if p.op == op}) >= 4


def test_table_plan_spends_its_budget_by_table_share(monkeypatch):
    """Convs, whose tables keep learning from more samples, get most of the budget;
    elementwise ops, learnt from a few dozen, get their smaller share."""
    real = [("conv2d", dict(h=14, w=14, cin=c, cout=c + 8, k=1, s=1)) for c in range(8, 400, 4)]
    real += [("activation", dict(h=14, w=14, c=c, fn="relu")) for c in range(8, 400, 4)]
    real += [("depthwise", dict(h=14, w=14, c=c, k=3, s=1)) for c in range(8, 400, 4)]
    monkeypatch.setattr(plans, "application_layer_configs", lambda families, runtime, pool=None: list(real))
    plan = plans.table_plan(quick=False, seed=0, max_samples=320)
    count = {op: sum(p.op == op for p in plan) for op in ("conv2d", "depthwise", "activation")}
    # Added beyond the share (these 1x1 convs are all below SMALL_MAP_WEIGHT_BYTES).
    for op in ("conv2d", "depthwise"):
        count[op] -= len(op_kinds.get(op).coverage_configs(quick=False))
    count["activation"] -= len(plans.category_configs(real))
    # The path-key spines (3 bases, every value of each path key) too.
    for op in ("conv2d", "depthwise"):
        kind = op_kinds.get(op)
        count[op] -= 3 * sum(len(kind.space[k].values()) for k in kind.path_keys)
    share = plans.table_shares()
    # every kind with a configuration space is sampled, used by the families or not
    total = sum(share[k.name] for k in op_kinds.table_kinds() if k.space or k.name in count)
    # and the draws of the regions past the first come on top of the share
    for op in ("conv2d", "depthwise"):
        n = max(4, 320 * share[op] // total)
        count[op] -= n // plans.SPACE_SHARE * max(0, len(op_kinds.get(op).regions) - 1)
    for op, n in count.items():
        # Slimmed variants that coincide with a planned config are dropped, not redrawn.
        assert 0.85 * 320 * share[op] / total <= n <= 320 * share[op] / total + 1, count
    assert count["conv2d"] > count["depthwise"] > count["activation"]


def test_the_plan_times_depthwise_convs_that_leave_part_of_a_simd_tile(monkeypatch):
    """The families' widths are nearly all multiples of 16; the plan's channel
    staircases time every remainder of a 16-channel tile (4, 8, 12) at 3x3 and 5x5,
    where XNNPACK's masked remainder path runs."""
    real = [("depthwise", dict(h=14, w=14, c=c, k=3, s=1)) for c in range(16, 400, 16)]
    monkeypatch.setattr(plans, "application_layer_configs", lambda families, runtime, pool=None: list(real))
    for quick in (False, True):
        plan = [p.config for p in plans.table_plan(quick=quick, seed=0, max_samples=60)
                if p.op == "depthwise" and p.config["s"] == 1]
        for k in ((3, 5) if not quick else (3,)):
            left = {c["c"] % 16 for c in plan if c["k"] == k and 96 <= c["c"] <= 136}
            assert {0, 8} <= left, (k, left)
            if not quick:
                assert {4, 12} <= left, (k, left)


def test_small_map_configs_put_big_weight_convs_on_tiny_maps():
    big = ("conv2d", dict(h=10, w=10, cin=512, cout=512, k=3, s=1))  # 9.4 MB of weights
    big_s2 = ("conv2d", dict(h=10, w=10, cin=1024, cout=2048, k=1, s=2))
    small = ("conv2d", dict(h=10, w=10, cin=64, cout=64, k=3, s=1))  # 147 KB: in L2
    dense = ("dense", dict(rows=1, cin=2048, cout=1000))
    out = small_map_configs([big, big_s2, small, dense])
    assert [(op, c["h"], c["w"]) for op, c in out[:3]] == [("conv2d", 1, 1), ("conv2d", 2, 2),
                                                           ("conv2d", 4, 4)]
    # A strided conv keeps its stride: 2x2, 4x4 and 8x8 inputs give 1x1, 2x2, 4x4 outputs.
    assert [op_kinds.same_out(c["h"], c["s"]) for _, c in out[3:]] == [1, 2, 4]
    assert all(c["cin"] in (512, 1024) for _, c in out) and len(out) == 6


def test_table_plan_covers_broadcast_adds_the_families_lack(monkeypatch):
    """Families whose adds are all residual still give a plan with per-channel
    broadcast adds and multiplies over an image's 3 channels (an input Normalization)
    and broadcast adds at network widths."""
    real = [("add", dict(h=28, w=28, c=c, broadcast=False)) for c in (24, 40, 80)]
    real += [("multiply", dict(h=14, w=14, c=c, broadcast=True)) for c in (96, 240)]
    monkeypatch.setattr(plans, "application_layer_configs", lambda families, runtime, pool=None: list(real))
    for quick in (True, False):
        plan = plans.table_plan(quick=quick, seed=0, max_samples=60)
        rgb = {(p.op, p.config["h"]) for p in plan
               if p.op in ("add", "multiply") and p.config["broadcast"] and p.config["c"] == 3}
        assert {op for op, _ in rgb} == {"add", "multiply"}
        assert len(rgb) == (2 if quick else 10)
        assert any(p.op == "add" and p.config["broadcast"] and p.config["c"] > 3 for p in plan)


def test_transpose_conv_work_is_the_scatter_of_every_input_position():
    cfg = dict(h=4, w=5, cin=8, cout=6, k=3, s=2)
    assert work("transpose_conv", cfg).flops == 2 * 4 * 5 * 3 * 3 * 8 * 6
    assert op_kinds.weight_bytes("transpose_conv", cfg) == 4 * 3 * 3 * 8 * 6
    assert op_class("transpose_conv", cfg) == op_class("conv2d", SMALL["conv2d"])


def test_table_plan_times_decoder_ops_and_activations_no_family_uses(monkeypatch):
    """The families have no transposed conv or upsampling and fuse every ReLU, yet
    decoders use the first two and Xception runs the last alone: the plan gives each
    a table of its own."""
    real = [("activation", dict(h=h, w=h, c=c, fn="sigmoid")) for h in (7, 14, 28) for c in (16, 96)]
    real += [("pool", dict(h=56, w=56, c=64, k=3, s=2, kind="max"))]
    monkeypatch.setattr(plans, "application_layer_configs", lambda families, runtime, pool=None: list(real))
    for quick in (True, False):
        plan = plans.table_plan(quick=quick, seed=0, max_samples=60)
        tconv = [p.config for p in plan if p.op == "transpose_conv"]
        coverage = op_kinds.get("transpose_conv").coverage_configs(quick)
        assert all(c in tconv for c in coverage) and {c["s"] for c in tconv} >= {1, 2, 3, 4}
        assert {c["k"] for c in tconv} == set(range(1, 8))  # its space's path keys swept
        resize = [p.config for p in plan if p.op == "resize"]
        assert {c["kind"] for c in resize} == {"nearest", "bilinear"}
        fns = [p.config["fn"] for p in plan if p.op == "activation"]
        # Under LiteRT swish is a LOGISTIC and a MUL: no table of its own.
        assert all(fns.count(fn) >= 6 for fn in ("relu", "relu6", "leaky_relu", "gelu"))
        assert "swish" not in fns
        assert [p.config for p in plan if p.op == "pool" and p.config["kind"] == "avg"]
    keras_side = [c for op, c in plans.category_configs(real, runtime="keras") if op == "activation"]
    assert {c["fn"] for c in keras_side} == set(ACTIVATIONS) - {"sigmoid"}
    # Spread from the smallest configuration to the largest.
    relu = [c for c in keras_side if c["fn"] == "relu"]
    assert (relu[0]["h"], relu[0]["c"]) == (7, 16) and (relu[-1]["h"], relu[-1]["c"]) == (28, 96)


def test_calibration_models_build_only_the_labels_asked_for():
    first = calibration.calibration_labels(quick=True)[0]
    built = list(calibration.calibration_models(quick=True, labels=[first]))
    assert [label for label, _ in built] == [first]
    assert list(calibration.calibration_models(quick=True, labels=[])) == []


def test_table_plan_cuts_convs_to_a_few_channels(monkeypatch):
    """Strongly slimmed networks run convs over a handful of channels, mostly a partial
    SIMD tile; the plan samples them on purpose (image channels stay 3)."""
    real = [("conv2d", dict(h=56, w=56, cin=c, cout=2 * c, k=1, s=1)) for c in range(64, 400, 8)]
    real += [("conv2d", dict(h=112, w=112, cin=3, cout=c, k=3, s=2)) for c in (16, 24, 32, 48)]
    real += [("depthwise", dict(h=28, w=28, c=c, k=3, s=1)) for c in range(96, 960, 16)]
    monkeypatch.setattr(plans, "application_layer_configs", lambda families, runtime, pool=None: list(real))
    plan = plans.table_plan(quick=False, seed=0, max_samples=440)
    for op, keys in (("conv2d", ("cin", "cout")), ("depthwise", ("c",))):
        narrow = [p.config for p in plan if p.op == op
                  and all(p.config[k] <= plans.NARROW_MAX_CHANNELS for k in keys)]
        assert len(narrow) >= 10, (op, len(narrow))
        assert sum(any(c[k] % 8 for k in keys) for c in narrow) >= len(narrow) // 2
    stems = [p.config for p in plan if p.op == "conv2d" and p.config["h"] == 112
             and (p.config["k"], p.config["s"]) == (3, 2)]
    assert stems and all(c["cin"] == 3 for c in stems)


def _curve(points):
    """(bytes, GB/s) pairs -> a weight_bandwidth_curve-shaped pair of arrays."""
    return (np.array([float(b) for b, _ in points]),
            np.array([gb * 1e9 for _, gb in points]))


MIB = 2.0**20


def test_cache_ceilings_by_hand_from_cache_sizes():
    # L2 = 1 MiB: its window is (L1d = 32 KiB, 512 KiB]; L3 = 8 MiB: (1 MiB, 4 MiB].
    curve = _curve([(0.25 * MIB, 90), (0.5 * MIB, 100), (1 * MIB, 60), (2 * MIB, 50),
                    (4 * MIB, 45), (64 * MIB, 20)])
    sizes = {"L1d": 32 * 1024, "L1i": 32 * 1024, "L2": MIB, "L3": 8 * MIB}
    got = ceilings.cache_ceilings(curve, 20e9, sizes)
    assert [(c.level, c.bytes_per_s, c.min_working_set_bytes, c.max_working_set_bytes)
            for c in got] == [("L2", 100e9, 32 * 1024, 0.5 * MIB),
                              ("L3", 50e9, MIB, 4 * MIB)]


def test_cache_ceilings_leave_out_what_the_curve_cannot_tell_apart():
    # L2's plateau (40) is no faster than L3's (48): the curve cannot show L2. L3 beats
    # DRAM by 9% only when DRAM is 44: then neither is drawn. No point inside L1d.
    curve = _curve([(0.25 * MIB, 40), (2 * MIB, 48), (64 * MIB, 20)])
    sizes = {"L1d": 32 * 1024, "L2": 0.5 * MIB, "L3": 32 * MIB}
    assert [c.level for c in ceilings.cache_ceilings(curve, 20e9, sizes)] == ["L3"]
    assert ceilings.cache_ceilings(curve, 44e9, sizes) == []
    assert ceilings.cache_ceilings(_curve([]), 20e9, sizes) == []


def test_cache_ceilings_from_knees_without_cache_sizes():
    # Plateaus 120 (<= 1 MiB) and 60 (2-4 MiB); 35 alone between knees is a transition;
    # the last plateau (21) is DRAM's.
    curve = _curve([(0.25 * MIB, 110), (1 * MIB, 120), (2 * MIB, 60), (4 * MIB, 58),
                    (8 * MIB, 35), (32 * MIB, 21), (64 * MIB, 20)])
    for sizes in (None, {}, {"L2": None, "L3": "big"}):
        got = ceilings.cache_ceilings(curve, 20e9, sizes)
        assert [(c.level, c.bytes_per_s, c.min_working_set_bytes, c.max_working_set_bytes)
                for c in got] == [("cache", 120e9, 0.0, MIB),
                                  ("cache", 60e9, MIB, 4 * MIB)]


def test_loo_errors_of_a_sample_far_outside_the_others_stay_finite_and_quiet():
    """Samples of nearly one size whose times spread 1000x give the log-linear fit a
    steep slope; a left-out space corner a million times larger would overflow exp()."""
    import warnings

    def sample(c, ms):
        return Sample("add", dict(h=1, w=1, c=c, broadcast=False), ms, 0.0, 3, (ms,) * 3)

    rows = [sample(1000 + i, 10.0 ** (i - 3)) for i in range(6)] + [sample(10 ** 9, 1.0)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        errors = plans.loo_relative_errors("add", rows)
    assert all(np.isfinite(e) for e, _ in errors)
    assert max(errors, key=lambda t: t[0])[1] is rows[-1]


@pytest.mark.parametrize("inputs", [dict(image_size=16, patch_size=8), dict(seq_len=6, vocab_size=50)])
def test_calibration_encoders_map_to_timed_litert_kernels(inputs):
    """The full calibration set's transformers (`calibration.encoder`, small here) run as
    LiteRT kernels the lookup times: attention's batch matmuls, the projections as
    dense layers, and nothing left to the roofline or skipped."""
    from latency_lab.kernels import work_items

    model = calibration.encoder(width=16, depth=1, heads=2, **inputs)
    items = work_items(model, "litert")
    ops = {op for item in items for op, _ in (item.configs or ())}
    assert not items.skipped
    assert all(item.configs for item in items)  # no kernel charged by the roofline
    assert {"batch_matmul", "dense", "softmax"} <= ops
    assert any(label.startswith("encoder(") for label in calibration.calibration_labels(False))


# ------------------------------------------------------------ the shipped harvest


def test_the_shipped_family_harvest_is_what_a_live_harvest_gives():
    """With the versions it names it is used, so it must equal a live harvest; with
    others it is not used at all."""
    name, kwargs = "MobileNetV2", {"alpha": 0.35, "input_shape": (96, 96, 3)}
    data = json.loads(plans.HARVESTED_FAMILIES.read_text())
    assert data["runtime"] == "litert" and set(data["versions"]) == {"tensorflow", "keras"}
    labels = {plans.family_label(n, kw) for n, kw in plans.QUICK_FAMILIES + plans.FULL_FAMILIES}
    assert set(data["families"]) == labels
    if data["versions"] == plans.harvest_versions():
        live = json.loads(json.dumps(plans.family_configs(name, kwargs)))
        assert [list(e) for e in data["families"][plans.family_label(name, kwargs)]] == \
            [list(e) for e in live]
    else:  # not current for these versions: every family is harvested live
        assert plans.shipped_family_configs(name, kwargs) is None


def test_the_plan_reads_the_shipped_harvest_only_for_its_versions_and_runtime(monkeypatch):
    data = json.loads(plans.HARVESTED_FAMILIES.read_text())
    built = []
    monkeypatch.setattr(plans, "family_configs",
                        lambda name, kwargs, runtime="litert": built.append(name) or [])
    monkeypatch.setattr(plans, "harvest_versions", lambda: dict(data["versions"]))
    got = plans.application_layer_configs(plans.FULL_FAMILIES, "litert")
    assert built == [] and len(got) > 100
    shipped = [(op, cfg) for n, kw in plans.FULL_FAMILIES
               for op, cfg in data["families"][plans.family_label(n, kw)]]
    assert {sample_key(op, cfg) for op, cfg in got} == {sample_key(op, cfg) for op, cfg in shipped}
    plans.application_layer_configs(plans.FULL_FAMILIES[:2], "keras")  # another runtime
    assert built == ["MobileNet", "MobileNetV2"]
    monkeypatch.setattr(plans, "harvest_versions",
                        lambda: {**data["versions"], "tensorflow": "0.0.1"})
    plans.application_layer_configs(plans.FULL_FAMILIES[:1], "litert")
    assert built[-1] == "MobileNet" and len(built) == 3


def test_table_plan_times_the_common_pooling_windows_of_both_kinds(monkeypatch):
    """2x2 stride 2 and 3x3 at strides 1 and 2, max and average, over several maps:
    a NAS cell's 3x3 stride-1 average pool had no sample of its window in a fresh
    profile (`Pool.coverage_configs`)."""
    real = [("pool", dict(h=56, w=56, c=64, k=3, s=2, kind="max"))]
    monkeypatch.setattr(plans, "application_layer_configs", lambda families, runtime, pool=None: list(real))
    for quick in (True, False):
        plan = plans.table_plan(quick=quick, seed=0, max_samples=60)
        pools = [p.config for p in plan if p.op == "pool"]
        for kind in ("max", "avg"):
            for k, s in ((2, 2), (3, 1), (3, 2)):
                maps = {c["h"] for c in pools if (c["kind"], c["k"], c["s"]) == (kind, k, s)}
                assert len(maps) >= (2 if quick else 5), (kind, k, s, maps)


def test_table_plan_times_each_searched_depthwise_kernel_size_at_both_strides(monkeypatch):
    """MnasNet- and ProxylessNAS-style networks use 3x3 to 9x9 depthwise convs at
    strides 1 and 2; the plan times each over several maps (`Depthwise._kernel_sizes`)
    besides what its space draws, all within the kind's work cap."""
    real = [("depthwise", dict(h=56, w=56, c=64, k=3, s=1))]
    monkeypatch.setattr(plans, "application_layer_configs", lambda families, runtime, pool=None: list(real))
    kind = op_kinds.get("depthwise")
    for quick in (True, False):
        plan = plans.table_plan(quick=quick, seed=0, max_samples=60)
        dws = [p.config for p in plan if p.op == "depthwise"]
        for k in (3, 5, 7, 9):
            for s in (1, 2):
                maps = {c["h"] for c in dws if (c["k"], c["s"]) == (k, s)}
                assert len(maps) >= (1 if quick else 4), (k, s, maps)
        assert all(kind.work(c).flops <= kind.max_sample_flops for c in dws)
