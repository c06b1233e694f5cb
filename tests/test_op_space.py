"""Op kinds' configuration spaces: space-filling designs, path-key spines, kernel-path
detection, and the lookup model flagging configurations outside its table."""

import math
import random
from types import SimpleNamespace

import numpy as np
import pytest

from latency_lab import op_kinds
from latency_lab.bench import plans
from latency_lab.op_kinds.base import MAX_SAMPLE_BYTES, MAX_SAMPLE_FLOPS
from latency_lab.op_kinds.space import (TOKEN_WIDTH, TOKENS, Dim, Region, kernel_paths,
                                        latin_hypercube)


def test_latin_hypercube_puts_one_point_in_each_stratum():
    pts = latin_hypercube(10, 3, random.Random(0))
    for d in range(3):
        assert sorted(int(p[d] * 10) for p in pts) == list(range(10))


def test_dim_values_and_quantiles():
    d = Dim(1, 4096)
    assert d.at(0.0) == 1 and d.at(0.99999) == 4096 and d.at(0.999) > 4000
    assert d.at(0.5) < 100  # log-uniform: the median is near sqrt(4096)
    assert Dim(1, 11, log=False).values() == tuple(range(1, 12))
    assert Dim(choices=("max", "avg")).at(0.7) == "avg"
    assert Dim(3, 5).contains(4) and not Dim(3, 5).contains(6)


@pytest.mark.parametrize("op", ["conv2d", "depthwise"])
def test_space_configs_cover_the_space_within_the_work_caps(op):
    kind = op_kinds.get(op)
    cfgs = kind.space_configs(60, random.Random(1))
    assert len(cfgs) == 60
    for c in cfgs:
        kind.check(c)
        w = kind.work(c)
        assert w.flops <= MAX_SAMPLE_FLOPS and w.bytes_total <= MAX_SAMPLE_BYTES
        assert c["w"] == c["h"]
    ks = {c["k"] for c in cfgs}
    assert ks == set(range(1, 12))  # 60 strata over 11 kernel sizes reach all of them
    assert {c["s"] for c in cfgs} == {1, 2, 3, 4}
    channels = [c["cin"] if op == "conv2d" else c["c"] for c in cfgs]
    assert min(channels) < 8 and max(channels) > 1000


def test_region_draws_tie_keys_and_drop_helper_draws():
    region = Region({"heads": Dim(2, 2), "cols": Dim(10, 10)}, ties={"rows": ("heads", "cols")})
    assert region.draw([0.5, 0.5], ("rows", "cols")) == {"rows": 20, "cols": 10}
    assert Region({"w": Dim(7, 7)}, ties={"h": ()}).draw([0.1], ("h", "w", "c")) == {"h": 1, "w": 7}


@pytest.mark.parametrize("op", sorted(k.name for k in op_kinds.table_kinds() if k.regions))
def test_region_configs_lie_in_a_region_with_their_ties(op):
    kind = op_kinds.get(op)
    uncapped = kind.region_configs(24, random.Random(2), max_flops=math.inf, max_bytes=math.inf)
    assert len(uncapped) == 24
    for c in uncapped:
        kind.check(c)

        def inside(region):
            drawn = all(region.dims[k].contains(c[k]) for k in region.dims if k in kind.keys)
            tied = all(c[k] == math.prod(c[f] for f in fs) for k, fs in region.ties.items()
                       if all(f in kind.keys for f in fs))
            return drawn and tied

        assert any(inside(r) for r in kind.regions.values()), c
    for c in kind.region_configs(24, random.Random(2)):
        w = kind.work(c)
        assert w.flops <= MAX_SAMPLE_FLOPS and w.bytes_total <= MAX_SAMPLE_BYTES


def test_softmax_and_patchify_regions_keep_their_shapes():
    for c in op_kinds.get("softmax").region_configs(20, random.Random(0), max_flops=math.inf,
                                                     max_bytes=math.inf):
        assert c["rows"] % c["cols"] == 0 and 1 <= c["rows"] // c["cols"] <= 48
    convs = op_kinds.get("conv2d").region_configs(60, random.Random(0))
    # the regions share the draws: 20 narrow cells' convs, 20 patch embeddings, 20
    # convs over tiny maps
    narrow = [c for c in convs if max(c["cin"], c["cout"], c["h"]) <= 64 and c["h"] >= 4]
    patches = [c for c in convs if c["k"] == c["s"] and c["cin"] <= 4 and c["h"] >= 32]
    tiny = [c for c in convs if c["h"] <= 8 and min(c["cin"], c["cout"]) >= 16]
    assert len(narrow) >= 20 and len(patches) >= 20 and len(tiny) >= 20 and len(convs) == 60
    assert all(c in narrow or c in patches or c in tiny for c in convs)
    assert max(c["k"] for c in patches) > 11  # past the space's kernel sizes
    assert set(range(1, 8)) <= {c["k"] for c in narrow} and {1, 2} <= {c["s"] for c in narrow}
    # every map size, kernels overhanging them, and many channels
    assert set(range(1, 9)) <= {c["h"] for c in tiny}
    assert sum(c["k"] > c["h"] for c in tiny) >= 10
    assert max(c["cin"] * c["cout"] for c in tiny) >= 256 * 256


def test_each_region_of_a_kind_gets_a_quarter_of_its_share_on_top(monkeypatch):
    """A kind with several regions (conv2d: patch embeddings, narrow cells, tiny maps)
    draws one SPACE_SHARE-th of its share in each; the draws of the regions past the
    first come on top, so the harvested layers and their variants keep theirs."""
    real = [("conv2d", dict(h=28, w=28, cin=c, cout=c, k=3, s=1)) for c in range(64, 1024, 16)]
    monkeypatch.setattr(plans, "application_layer_configs",
                        lambda families, runtime, pool=None: list(real))
    one = dict(op_kinds.get("conv2d").regions)
    plan = [p.config for p in plans.table_plan(quick=False, seed=0, max_samples=300)
            if p.op == "conv2d"]
    monkeypatch.setattr(op_kinds.get("conv2d"), "regions", {"patchify": one["patchify"]})
    fewer = [p.config for p in plans.table_plan(quick=False, seed=0, max_samples=300)
             if p.op == "conv2d"]
    n = max(4, 300 * op_kinds.get("conv2d").table_share // sum(plans.table_shares().values()))
    narrow = [c for c in plan if max(c["cin"], c["cout"], c["h"]) <= 64 and c["h"] >= 4]
    assert len(plan) - len(fewer) == 2 * (n // plans.SPACE_SHARE)
    assert len(narrow) >= n // plans.SPACE_SHARE


def test_table_plan_samples_token_gemms_no_family_has(monkeypatch):
    """The families' dense layers are classifier heads (one row); the plan still times
    token-wise GEMMs from the dense kind's region."""
    heads = [("dense", dict(rows=1, cin=c, cout=1000)) for c in range(256, 2048, 32)]
    monkeypatch.setattr(plans, "application_layer_configs", lambda families, runtime, pool=None: list(heads))
    plan = plans.table_plan(quick=False, seed=0, max_samples=300)
    dense = [p.config for p in plan if p.op == "dense"]
    tokens = [c for c in dense if TOKENS.contains(c["rows"]) and TOKEN_WIDTH.contains(c["cin"])
              and TOKEN_WIDTH.contains(c["cout"])]
    assert len(tokens) >= len(dense) // plans.SPACE_SHARE - 1
    for op in ("batch_matmul", "softmax"):  # no family has them: half their share
        cfgs = [p.config for p in plan if p.op == op]
        qk = [c for c in cfgs if op == "softmax" and c["rows"] % c["cols"] == 0
              or op == "batch_matmul" and (c["n"] == c["m"] or c["k"] == c["m"])]
        assert len(qk) >= len(cfgs) // 3, (op, cfgs)


def test_spines_sweep_each_path_key_with_the_rest_fixed():
    kind = op_kinds.get("depthwise")
    spines = kind.spine_configs([dict(h=112, w=112, c=256, k=3, s=1)])
    assert [c["k"] for c in spines[:11]] == list(range(1, 12))
    assert [c["s"] for c in spines[11:]] == [1, 2, 3, 4] and spines[11]["k"] == 3
    rest = {(c["h"], c["c"]) for c in spines[:11]}
    assert len(rest) == 1  # shrunk once, for the costliest value, shared by all
    assert all(kind.work(c).flops <= MAX_SAMPLE_FLOPS for c in spines)


def test_kernel_paths_split_where_efficiency_jumps_and_not_on_noise():
    # log efficiency along k on two spines: flat, then 13x slower from k=6 on
    spine = [(k, 0.02 * (k % 2) + (math.log(13) if k >= 6 else 0.0)) for k in range(1, 12)]
    shifted = [(k, e + 0.5) for k, e in spine]
    assert kernel_paths([spine, shifted]) == [(1, 2, 3, 4, 5), (6, 7, 8, 9, 10, 11)]
    noisy = [(k, 0.1 * ((-1) ** k)) for k in range(1, 12)]
    assert kernel_paths([noisy]) == [tuple(range(1, 12))]
    assert kernel_paths([]) == []


def _sample(op, cfg, ms):
    return SimpleNamespace(op=op, config=cfg, min_ms=ms, key=str(sorted(cfg.items())))


def test_path_plan_samples_densely_at_both_sides_of_a_boundary():
    samples = []
    for h, c in ((48, 96), (14, 256)):
        for k in range(1, 12):
            cfg = dict(h=h, w=h, c=c, k=k, s=1)
            w = op_kinds.work("depthwise", cfg)
            roof_ms = max(w.flops / 4e10, w.bytes_total / 1e10) * 1e3
            samples.append(_sample("depthwise", cfg, roof_ms * (13 if k >= 6 else 1)))
    assert plans.path_boundaries(samples) == {("depthwise", "k"): [(1, 2, 3, 4, 5),
                                                                  (6, 7, 8, 9, 10, 11)]}
    plan = plans.path_plan(samples, per_value=3)
    assert sorted({p.config["k"] for p in plan}) == [5, 6]
    assert len(plan) == 6 and all(p.phase == "adaptive" for p in plan)


def test_plans_keep_derived_keys_consistent():
    """Variants and perturbations scale channel keys apart; a slice must still take
    at most its input (a cout past cin failed a whole profile's conversion batch)."""
    s = _sample("slice", dict(rows=64, cin=16, cout=16), 0.01)
    samples = [_sample("slice", dict(rows=64 + i, cin=16, cout=16), 0.01 * (1 + (i % 3)))
               for i in range(8)] + [s]
    plan = plans.adaptive_plan(samples, 40, threshold=0.0)
    assert plan and all(p.config["cout"] <= p.config["cin"] for p in plan)
    assert op_kinds.get("slice").derive(dict(rows=4, cin=3, cout=9))["cout"] == 3


STREAMING = sorted(k.name for k in op_kinds.table_kinds() if k.streams)


def test_copies_and_elementwise_maps_are_the_streaming_kinds():
    assert {"concat", "slice", "pad", "transpose", "add", "activation", "softmax"} <= set(STREAMING)
    assert not {"conv2d", "depthwise", "dense", "batch_matmul"} & set(STREAMING)


@pytest.mark.parametrize("op", STREAMING)
def test_a_streaming_kind_scales_to_each_rung_of_the_ladder(op):
    kind = op_kinds.get(op)
    base = kind.space_configs(1, random.Random(3))[0]
    for rung in plans.LADDER_BYTES:
        cfg = kind.scaled_to_bytes(base, rung)
        kind.check(cfg)
        moved = kind.work(cfg).bytes_total
        assert rung / 2 <= moved <= 2 * rung, (cfg, moved)
        # the same kernel path at another size: categorical keys kept
        assert all(cfg[k] == base[k] for k, d in kind.space.items() if d.choices)


def test_the_ladder_fills_only_the_rungs_the_plan_lacks():
    small = [("concat", dict(h=7, w=7, c1=c, c2=c)) for c in (16, 32, 64)]  # 6-50 KB
    big = [("concat", dict(h=320, w=320, c1=100, c2=100))]  # 156 MB
    added = plans.ladder_configs(small + big + [("conv2d", dict(h=7, w=7, cin=8, cout=8, k=3, s=1))])
    assert {op for op, _ in added} == {"concat"}
    moved = sorted(op_kinds.work("concat", c).bytes_total for _, c in added)
    # 64 KB is within 2x of the 50 KB one; 256 KB to 64 MB are not near any
    assert len(moved) == len(plans.LADDER_BYTES) - 1
    for m, rung in zip(moved, plans.LADDER_BYTES[1:]):
        assert rung / 2 <= m <= 2 * rung
    quick = plans.ladder_configs(small + big, quick=True)
    assert len(quick) == len(plans.LADDER_BYTES[::2]) - 1
    assert plans.ladder_configs([("concat", c) for _, c in small + big + added]) == []


def test_a_kind_caps_its_synthetic_samples_at_its_own_work():
    kind = op_kinds.get("depthwise")
    assert kind.max_sample_flops < MAX_SAMPLE_FLOPS
    for c in kind.space_configs(40, random.Random(4)) + kind.spine_configs(
            [dict(h=160, w=160, c=512, k=3, s=1)]):
        assert kind.work(c).flops <= kind.max_sample_flops
    wide = kind.fit_work(dict(h=160, w=160, c=512, k=11, s=1), max_flops=math.inf)
    assert wide["h"] == 160  # an explicit cap overrides the kind's
