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
from latency_lab.op_kinds.space import Dim, kernel_paths, latin_hypercube


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
