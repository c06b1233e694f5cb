"""Predictors on hand-made profiles (exact at table points, monotone in channels,
out-of-range and missing-op behaviour, hand-computed roofline and FLOPs baseline), the
LiteRT kernel mapping of a small network (BN and activations fused, each kernel counted
once under its own layer), and the predict / measure / validate command line."""

import json
import math
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

from latency_lab import op_kinds  # noqa: E402
from latency_lab.bench.ceilings import ceilings_from_samples  # noqa: E402
from latency_lab.op_kinds.conv2d import conv2d_config  # noqa: E402
from latency_lab.cli import main  # noqa: E402
from latency_lab.errors import ProfileError, UnsupportedOpError  # noqa: E402
from latency_lab.kernels import working_set_bytes  # noqa: E402
from latency_lab.kernels import work_items  # noqa: E402
from latency_lab.predict import predict_model  # noqa: E402
from latency_lab.predictors import (FlopsBaseline, LookupTableModel, RooflineModel,  # noqa: E402
                                    UnseenCategoryWarning,
                                    make_predictor)
from latency_lab.profile import DeviceProfile, Sample  # noqa: E402

L = keras.layers


def _device_ms(op, cfg):
    """A made-up device: 20 GFLOP/s, 10 GB/s, 1 us per op."""
    w = op_kinds.work(op, cfg)
    return max(w.flops / 2e10, w.bytes_total / 1e10) * 1e3 + 0.001


def _profile(runtime="litert", overhead=None):
    cfgs = [("conv2d", dict(h=h, w=h, cin=cin, cout=cout, k=3, s=1))
            for h in (8, 16) for cin in (8, 16, 32) for cout in (8, 16, 32)]
    cfgs += [("dense", dict(rows=1, cin=c, cout=10)) for c in (8, 16, 32, 64)]
    cfgs += [("depthwise", dict(h=h, w=h, c=c, k=3, s=1)) for h in (8, 16) for c in (8, 16, 32)]
    cfgs += [("add", dict(h=64, w=64, c=1024, broadcast=False))]
    samples = [Sample(op, cfg, _device_ms(op, cfg), 0.0, 5, (_device_ms(op, cfg),) * 5)
               for op, cfg in cfgs]
    return DeviceProfile.create(
        device={"kind": "cpu", "name": "hand-made cpu", "fingerprint": None, "info": {}},
        runtime={"name": runtime, "version": "test", "backend": "xnnpack", "device": "cpu",
                 "threads": 1, "dtype": "float32", "batch": 1},
        roofline=ceilings_from_samples(samples), samples=samples,
        overhead=overhead)


def _conv(h=12, cin=12, cout=12):
    return ("conv2d", dict(h=h, w=h, cin=cin, cout=cout, k=3, s=1))


def test_lookup_is_exact_at_table_points_and_scores_one():
    prof = _profile()
    est = LookupTableModel(prof).fit()
    X = [(s.op, s.config) for s in prof.samples]
    y = np.array([s.median_ms for s in prof.samples])
    np.testing.assert_array_equal(est.predict(X), y)
    assert est.score(X, y) == 1.0


def test_predictors_fit_the_fastest_repeat_not_the_median():
    """A sample whose repeats include slow ones (a loaded host) is fitted at its fastest
    repeat, the latency figure of the whole package (latency_lab.timing)."""
    prof = _profile()
    s0 = prof.samples[0]
    slow = Sample(s0.op, s0.config, 2 * s0.median_ms, 0.5 * s0.median_ms, 3,
                  (s0.median_ms, 2 * s0.median_ms, 3 * s0.median_ms))
    assert slow.min_ms == s0.median_ms
    assert Sample(s0.op, s0.config, 2.0, 0.1, 3).min_ms == 2.0  # no raw values: the median
    prof = prof.with_samples([slow] + list(prof.samples[1:]))
    est = LookupTableModel(prof).fit()
    assert est.predict([(s0.op, s0.config)])[0] == pytest.approx(s0.median_ms)


def test_a_kind_with_base_terms_is_predicted_from_its_fitted_terms(monkeypatch):
    """Batch matmuls whose time follows the GEMM terms (a fixed cost, packing k x n,
    m x k x n multiply-adds) are predicted off the table from the fitted terms,
    where the roofline base and a process over log sizes guess."""
    def gemm_ms(c):
        return 0.002 + 3e-8 * c["b"] * c["k"] * c["n"] + 2e-9 * c["b"] * c["m"] * c["k"] * c["n"]

    base = _profile()
    rng = np.random.default_rng(0)
    cfgs = [dict(b=int(rng.integers(1, 16)), m=int(2 ** rng.uniform(2, 9)),
                 k=int(2 ** rng.uniform(3, 8)), n=int(2 ** rng.uniform(3, 9))) for _ in range(30)]
    bmm = [Sample("batch_matmul", c, gemm_ms(c), 0.0, 5, (gemm_ms(c),) * 5) for c in cfgs]
    prof = base.with_samples(list(base.samples) + bmm)
    est = LookupTableModel(prof, channel_tile=None).fit()
    assert len(est.base_coefs_["batch_matmul"]) == 5
    for c in (dict(b=6, m=100, k=64, n=100), dict(b=2, m=300, k=32, n=20)):
        assert est._predict_one("batch_matmul", c) == pytest.approx(gemm_ms(c), rel=0.03)
    assert "dense" not in est.base_coefs_  # a kind without terms keeps the roofline base


def with_flags(flags):
    prof = _profile()
    device = dict(prof.device, info={"cpu": {"simd_flags": flags}})
    return prof.replace(device=device)


def test_channel_tiles_come_from_the_profiles_simd_flags():
    from latency_lab.predictors import featurize, channel_tile_for

    assert channel_tile_for(with_flags(["avx", "avx2", "fma"])) == 16
    assert channel_tile_for(with_flags(["asimd"])) == 8
    assert channel_tile_for(with_flags([])) is None
    # Channels an op does not step (a pool's) keep their count: beside log(37) come
    # log(48) and log(40), the third tile and fifth register they fill
    f = featurize("pool", dict(h=8, w=8, c=37, k=3, s=1, kind="max"), {"kind": ["max"]}, 16)
    assert f[:3] == pytest.approx([np.log(37), np.log(48), np.log(40)])
    est = LookupTableModel(with_flags(["avx2"])).fit()
    assert est.channel_tile_ == 16
    X = [(s.op, s.config) for s in est.profile.samples]
    np.testing.assert_allclose(est.predict(X), [s.median_ms for s in est.profile.samples])
    with pytest.raises(ValueError, match="channel_tile"):
        LookupTableModel(_profile(), channel_tile=0).fit()


def test_lookup_between_dense_table_points_stays_near_its_neighbours():
    """A weight-streaming-bound dense table (time ~ weight bytes) with a few
    compute-bound batched rows: off-table configurations between the points must
    not fold away from the law the points follow."""
    rng = np.random.default_rng(3)
    cfgs = [dict(rows=1, cin=int(a), cout=int(b))
            for a, b in rng.integers(100, 2100, size=(40, 2))]
    cfgs += [dict(rows=64, cin=c, cout=c) for c in (256, 512, 1024)]

    def law(cfg):  # 25 GB/s weight streaming, 50 GFLOP/s for batched rows
        return max(4 * cfg["cin"] * cfg["cout"] / 25e9, 2 * cfg["rows"] * cfg["cin"] * cfg["cout"] / 50e9) * 1e3

    samples = [Sample("dense", c, law(c), 0.0, 3, (law(c),) * 3) for c in cfgs]
    prof = _profile().with_samples(list(_profile().samples) + samples)
    est = LookupTableModel(prof).fit()
    for cin, cout in ((1024, 1000), (960, 1280), (700, 800), (1500, 300)):
        cfg = dict(rows=1, cin=cin, cout=cout)
        assert 0.75 < est.predict([("dense", cfg)])[0] / law(cfg) < 1.33, cfg


def _two_level_bw(nbytes):
    """A made-up device's bandwidth: 50 GB/s while a working set fits its 4 MB cache,
    10 GB/s past it."""
    return 50e9 if nbytes < 4 * 2**20 else 10e9


def _two_level_stream() -> list:
    """That device's weight_stream samples: n matrices of 256x256 floats."""
    out = []
    for n in (1, 4, 8, 16, 32, 64):
        ms = 4.0 * n * 256**2 / _two_level_bw(4.0 * n * 256**2) * 1e3
        out.append(Sample("weight_stream", dict(n=n, c=256), ms, 0.0, 5, (ms,) * 5))
    return out


def test_weights_past_the_cache_are_read_at_the_streaming_curves_bandwidth():
    """A made-up device streams weights at 50 GB/s while they fit its 4 MB cache and
    at 10 GB/s past it (its weight_stream samples say so); the dense table holds
    one-row layers of up to 1 MB only. An 8 MB one-row dense is predicted from the
    curve's bandwidth at 8 MB with `cache_base`, and at the table's in-cache speed
    (5x fast) with one memory ceiling."""
    def dense_ms(cfg):
        wb = 4.0 * cfg["cin"] * cfg["cout"]
        return wb / _two_level_bw(wb) * 1e3 + 0.001

    cfgs = [dict(rows=1, cin=c, cout=o) for c in (64, 128, 256, 512) for o in (100, 250, 500)]
    samples = [Sample("dense", c, dense_ms(c), 0.0, 3, (dense_ms(c),) * 3) for c in cfgs]
    base = _profile()
    prof = base.with_samples([s for s in base.samples if s.op != "dense"] + samples
                             + _two_level_stream())
    big = dict(rows=1, cin=2048, cout=1024)  # 8 MB
    est = LookupTableModel(prof).fit()
    cached = est.predict([("dense", big)])[0]
    assert 0.8 < cached / dense_ms(big) < 1.25
    # the dense base's weights term is their read time at the curve's bandwidth, and
    # the one-row table (multiply-adds = weights) hands the time to it, not the MACs
    assert est._base_terms("dense", big)[2] == pytest.approx(8 * 2**20 / 10e9 * 1e3, rel=1e-3)
    coefs = est.base_coefs_["dense"]
    assert coefs[2] > 0.5 and coefs[3] * 2048 * 1024 < 0.1 * dense_ms(big)
    one_ceiling = LookupTableModel(prof, cache_base=False).fit().predict([("dense", big)])[0]
    assert one_ceiling / dense_ms(big) < 0.5


def test_a_concat_of_halves_is_predicted_from_a_table_of_other_splits():
    """A concat's base counts its runs and the bytes it moves (`moved_term`, read at
    the curve's bandwidth), not its two inputs' widths: a table of DenseNet-like
    splits (500 + 8) and one-channel ones (1 + 190) predicts ShuffleNet's halves
    inside and past the cache."""
    cfgs = [dict(h=h, w=h, c1=500, c2=8) for h in (4, 8, 12, 16, 20)]
    cfgs += [dict(h=h, w=h, c1=1, c2=190) for h in (64, 100, 150, 200, 250)]

    def copy_ms(cfg):
        b = op_kinds.work("concat", cfg).bytes_total
        return b / _two_level_bw(b) * 1e3 + 0.001

    samples = [Sample("concat", c, copy_ms(c), 0.0, 3, (copy_ms(c),) * 3) for c in cfgs]
    prof = _profile().with_samples(list(_profile().samples) + samples + _two_level_stream())
    est = LookupTableModel(prof).fit()
    small, big = dict(h=20, w=20, c1=48, c2=48), dict(h=160, w=160, c1=24, c2=24)
    moved = op_kinds.work("concat", big).bytes_total
    assert est._base_terms("concat", big)[2] == pytest.approx(moved / 10e9 * 1e3, rel=1e-3)
    for cfg in (small, big):
        assert 0.8 < est.predict([("concat", cfg)])[0] / copy_ms(cfg) < 1.25, cfg


def test_lookup_is_monotone_in_channels_between_table_points():
    est = LookupTableModel(_profile()).fit()
    by_out = est.predict([_conv(cout=c) for c in range(8, 33, 2)])
    by_in = est.predict([_conv(cin=c) for c in range(8, 33, 2)])
    assert np.all(np.diff(by_out) > 0) and np.all(np.diff(by_in) > 0)
    # between table points it stays close to the device it was measured on
    truth = np.array([_device_ms(*_conv(cout=c)) for c in range(8, 33, 2)])
    assert np.max(np.abs(by_out / truth - 1)) < 0.1


def test_no_kernel_is_predicted_faster_than_the_fastest_sample_of_its_kind():
    """Below the table's sizes the regressor extrapolates efficiency, not the fixed
    cost of a call: the floor is the kind's fastest sample, where that sample is the
    fixed cost (within two empty calls); a kind whose fastest sample is real work
    floors nothing."""
    fastest = min(_device_ms(op, cfg) for op, cfg in [_conv(h=8, cin=8, cout=8)])
    tiny = [("conv2d", dict(h=h, w=h, cin=c, cout=c, k=3, s=1)) for h in (1, 2, 4) for c in (1, 2, 4)]
    call_ms = 0.6 * fastest  # two empty calls reach the fastest conv: it is fixed cost
    est = LookupTableModel(_profile(overhead={"per_op_ms": 0.0, "per_invocation_ms": call_ms})).fit()
    preds = est.predict(tiny)
    assert min(preds) == pytest.approx(fastest)
    assert all(p >= fastest for p in preds)
    off_table = _conv(h=12, cin=24, cout=24)
    assert est.predict([off_table])[0] > 2 * fastest  # above the floor: the regressor's
    call_ms = 0.3 * fastest  # the fastest conv is more than two calls: real work
    est = LookupTableModel(_profile(overhead={"per_op_ms": 0.0, "per_invocation_ms": call_ms})).fit()
    assert min(est.predict(tiny)) < 0.5 * fastest


def test_lookup_out_of_range_clamps_or_names_the_configuration():
    prof = _profile()
    edge = LookupTableModel(prof).fit().predict([_conv(cout=32)])[0]
    beyond = LookupTableModel(prof).fit().predict([_conv(cout=64)])[0]
    assert np.isfinite(beyond) and beyond > edge  # roofline scaling carries it past the edge
    strict = LookupTableModel(prof, out_of_range="error").fit()
    with pytest.raises(UnsupportedOpError, match=r"'conv2d'.*'cout': 64.*outside"):
        strict.predict([_conv(cout=64)])
    # A category the table lacks is an error too, naming it and what the table has.
    acts = [Sample("activation", dict(h=h, w=h, c=c, fn="sigmoid"), 1e-3 * h * c, 0.0, 3)
            for h in (4, 8, 16) for c in (8, 32)]
    strict = LookupTableModel(prof.with_samples(list(prof.samples) + acts), out_of_range="error").fit()
    assert strict.predict([("activation", dict(h=8, w=8, c=16, fn="sigmoid"))])[0] > 0
    with pytest.raises(UnsupportedOpError, match=r"'activation'.*\{'fn': 'tanh'\}.*fn=sigmoid"):
        strict.predict([("activation", dict(h=8, w=8, c=16, fn="tanh"))])
    # "clamp" predicts it, and says so once per op and value (not per configuration).
    lenient = LookupTableModel(prof.with_samples(list(prof.samples) + acts)).fit()
    with pytest.warns(UnseenCategoryWarning, match=r"'activation'.*'tanh'.*fn=sigmoid") as got:
        t = lenient.predict([("activation", dict(h=8, w=8, c=c, fn="tanh")) for c in (8, 16, 24)])
    assert np.all(t > 0) and len([w for w in got if w.category is UnseenCategoryWarning]) == 1


def test_lookup_missing_op_falls_back_or_is_an_error():
    prof = _profile()
    cfg = ("global_pool", dict(h=8, w=8, c=16))
    assert LookupTableModel(prof).fit().predict([cfg])[0] > 0
    with pytest.raises(UnsupportedOpError, match=r"no lookup table for op 'global_pool'"):
        LookupTableModel(prof, missing_op="error").fit().predict([cfg])
    with pytest.raises(ValueError, match="out_of_range"):
        LookupTableModel(prof, out_of_range="extrapolate").fit()


def test_roofline_hand_computed():
    # t4: 8.1 TFLOP/s for every class and 300 GB/s (MorphNet's table), no overheads
    est = RooflineModel("t4").fit()
    op, cfg = "conv2d", dict(h=8, w=8, cin=16, cout=16, k=3, s=1)
    flops = 2 * 8 * 8 * 3 * 3 * 16 * 16
    assert op_kinds.work(op, cfg).flops == flops
    nbytes = op_kinds.work(op, cfg).bytes_total
    expected = max(flops / 8.1e12, nbytes / 300e9) * 1e3
    assert est.predict([(op, cfg)])[0] == pytest.approx(expected, rel=1e-12)
    assert est.bound(op, cfg) == ("compute" if flops / 8.1e12 > nbytes / 300e9 else "memory")
    # with overheads: the per-op one is added to every kernel
    prof = _profile(overhead={"per_op_ms": 0.002, "per_invocation_ms": 0.001})
    r = RooflineModel(prof).fit()
    peak = prof.roofline["compute_flops_per_s"]["dense"]
    bw = prof.roofline["memory_bytes_per_s"]
    assert r.predict([(op, cfg)])[0] == pytest.approx(
        max(flops / peak, nbytes / bw) * 1e3 + 0.002, rel=1e-12)


def test_flops_baseline_is_one_flop_weighted_constant():
    prof = _profile()
    est = FlopsBaseline(prof).fit()
    rows = [s for s in prof.samples if op_kinds.work(s.op, s.config).flops > 0]
    c = sum(s.median_ms for s in rows) / sum(op_kinds.work(s.op, s.config).flops for s in rows)
    assert est.ms_per_flop_ == pytest.approx(c, rel=1e-12)
    a, b = est.predict([_conv(cout=8), _conv(cout=16)])
    assert b / a == pytest.approx(2.0, rel=1e-12)


def test_in_network_weight_streaming_is_fitted_from_calibration_networks():
    """Calibration networks whose measured time is the isolated sum plus half the
    extra time to bring each kernel's weights in from the network's working set
    (instead of from one of their own size) give back stream = 0.5, twice it 2.0;
    more is capped at MAX_IN_NETWORK_STREAM; fewer than three networks give 0."""
    from latency_lab.kernels import WorkItem
    from latency_lab.predictors import predict_items

    prof = _profile()
    stream = [Sample("weight_stream", dict(n=n, c=256), ms, 0.0, 5, (ms,) * 5)
              for n, ms in ((1, 0.05), (16, 5.0))]  # 5.2 GB/s in cache, 0.84 GB/s out
    prof = prof.with_samples(list(prof.samples) + stream)
    iso = LookupTableModel(prof).fit()
    assert iso.in_network_stream_ == 0.0  # no calibration networks

    def network(c, n, stream=0.5, rows=1):
        cfg = dict(rows=rows, cin=c, cout=c)
        items = [WorkItem("", "", [("dense", cfg)]) for _ in range(n)]
        base, _ = predict_items(items, iso)  # each kernel at least its weights' floor
        w_net = working_set_bytes(items)
        w_k = op_kinds.weight_bytes("dense", cfg)
        excess = n * (iso._stream_ms(w_k, w_net) - iso._stream_ms(w_k, w_k))
        assert excess > 0 and excess == pytest.approx(n * iso._stream_excess_ms(w_k, w_net))
        floor = iso._stream_ms(w_k, w_net)
        assert base == pytest.approx(n * max(iso._isolated_ms("dense", cfg), floor))
        # the share of the excess the floor does not already charge
        uncovered = excess - n * max(0.0, floor - iso._isolated_ms("dense", cfg))
        assert uncovered > 0
        t = base + stream * uncovered  # the fastest repeat; slower ones must not be fitted
        return {"name": f"dense{c}x{n}", "measured_ms": t, "iqr_ms": 0.0,
                "raw_ms": [1.3 * t, t, 1.1 * t], "items": [i.to_dict() for i in items]}

    nets = [network(512, 4), network(256, 8), network(384, 6)]
    fitted = LookupTableModel(prof.replace(calibration={"models": nets})).fit()
    assert fitted.in_network_stream_ == pytest.approx(0.5, rel=1e-6)
    items = [WorkItem.from_dict(d) for d in nets[1]["items"]]
    assert predict_items(items, fitted)[0] == pytest.approx(nets[1]["measured_ms"], rel=1e-6)
    from latency_lab.predictors import MAX_IN_NETWORK_STREAM

    twice = [network(512, 4, 2.0), network(256, 8, 2.0), network(384, 6, 2.0)]
    fitted_twice = LookupTableModel(prof.replace(calibration={"models": twice})).fit()
    assert fitted_twice.in_network_stream_ == pytest.approx(2.0, rel=1e-6)  # passes past the first
    # five times the excess over kernels whose compute covers their weights' floor
    # (64 rows): stream is capped at MAX_IN_NETWORK_STREAM
    heavy = [network(512, 4, 5.0, rows=64), network(256, 8, 5.0, rows=64),
             network(384, 6, 5.0, rows=64)]
    capped = LookupTableModel(prof.replace(calibration={"models": heavy})).fit()
    assert capped.in_network_stream_ == MAX_IN_NETWORK_STREAM == 3.0
    # over one-row layers a smaller share's floor takes up what the cap leaves, and
    # the networks are charged more than at twice the excess
    one_row = [network(512, 4, 5.0), network(256, 8, 5.0), network(384, 6, 5.0)]
    floored = LookupTableModel(prof.replace(calibration={"models": one_row})).fit()
    assert floored.in_network_stream_ <= MAX_IN_NETWORK_STREAM
    assert floored.in_network_bw_share_ < 1.0
    assert predict_items(items, floored)[0] > predict_items(items, fitted_twice)[0]
    two = LookupTableModel(prof.replace(calibration={"models": nets[:2]})).fit()
    assert two.in_network_stream_ == 0.0
    # A network whose roofline-charged work alone is predicted past half its time
    # (the keras runtime's encoders: attention through the roofline) is left out: it
    # would pull the fit wherever its roofline error points.
    from latency_lab.predictors import MAX_UNTIMED_SHARE

    untimed = network(384, 6)
    big = WorkItem("attention", "MultiHeadAttention", None, flops=1e12, bytes=1e10,
                   op_class="dense")
    untimed["items"].append(big.to_dict())
    charged = iso.predict_work(big.flops, big.bytes, big.op_class)
    assert charged > MAX_UNTIMED_SHARE * untimed["measured_ms"]
    left_out = LookupTableModel(prof.replace(calibration={"models": nets + [untimed]})).fit()
    assert left_out.in_network_stream_ == pytest.approx(0.5, rel=1e-6)
    assert LookupTableModel(prof.replace(
        calibration={"models": nets[:2] + [untimed]})).fit().in_network_stream_ == 0.0
    # A network whose weights fit where each kernel's own do pays nothing extra.
    small = [WorkItem("", "", [("dense", dict(rows=1, cin=64, cout=64))]) for _ in range(2)]
    assert predict_items(small, fitted)[0] == pytest.approx(predict_items(small, iso)[0])


def test_the_networks_weight_bandwidth_share_is_fitted_from_calibration_networks():
    """Calibration networks whose kernels read their weights from the network's
    working set at half the weight-streaming curve's bandwidth (their extra traffic
    takes twice what the curve says) give back a share of 0.5, which predicts them;
    a network that fits where each kernel's own weights do is not charged."""
    from latency_lab.kernels import WorkItem
    from latency_lab.predictors import IN_NETWORK_BW_SHARES, predict_items

    prof = _profile()
    stream = [Sample("weight_stream", dict(n=n, c=256), ms, 0.0, 5, (ms,) * 5)
              for n, ms in ((1, 0.05), (16, 5.0))]  # 5.2 GB/s in cache, 0.84 GB/s out
    prof = prof.with_samples(list(prof.samples) + stream)
    iso = LookupTableModel(prof).fit()
    assert 0.5 in IN_NETWORK_BW_SHARES and iso.in_network_bw_share_ == 1.0

    def network(c, n):
        cfg = dict(rows=1, cin=c, cout=c)
        items = [WorkItem("", "", [("dense", cfg)]) for _ in range(n)]
        w_k = op_kinds.weight_bytes("dense", cfg)
        excess = iso._stream_excess_ms(w_k, working_set_bytes(items))
        assert excess > 0
        t = n * max(iso._isolated_ms("dense", cfg), iso._stream_ms(w_k, w_k) + excess / 0.5)
        return {"name": f"dense{c}x{n}", "measured_ms": t, "iqr_ms": 0.0,
                "raw_ms": [t], "items": [i.to_dict() for i in items]}

    nets = [network(512, 4), network(256, 8), network(384, 6)]
    fitted = LookupTableModel(prof.replace(calibration={"models": nets})).fit()
    assert fitted.in_network_bw_share_ == 0.5
    assert fitted.in_network_stream_ == pytest.approx(0.0, abs=1e-9)
    for net in nets:
        items = [WorkItem.from_dict(d) for d in net["items"]]
        assert predict_items(items, fitted)[0] == pytest.approx(net["measured_ms"], rel=1e-6)
    small = [WorkItem("", "", [("dense", dict(rows=1, cin=64, cout=64))]) for _ in range(2)]
    assert predict_items(small, fitted)[0] == pytest.approx(predict_items(small, iso)[0])


def test_the_working_set_counts_every_weight_and_each_activation_once():
    """Between two uses of a kernel's weights a network touches all its weights and
    writes every activation once: a k-way concat (timed as k-1 pairwise copies) counts
    its output once; a roofline-charged kernel half its bytes."""
    from latency_lab.kernels import WorkItem

    dense = dict(rows=1, cin=512, cout=256)
    concat = [("concat", dict(h=8, w=8, c1=16, c2=16)), ("concat", dict(h=8, w=8, c1=32, c2=8))]
    items = [WorkItem("fc", "Dense", [("dense", dense)]), WorkItem("cat", "Concatenate", concat),
             WorkItem("odd", "Custom", None, flops=10.0, bytes=400.0)]
    assert working_set_bytes(items) == 4 * (512 * 256 + 256) + 4 * 256 + 4 * 8 * 8 * 40 + 200.0


def test_activations_push_a_networks_weights_out_of_cache():
    """The same dense kernels beside a large activation (a 2 MB add) read their weights
    at the bandwidth of the whole working set, not of their weights alone."""
    from latency_lab.kernels import WorkItem
    from latency_lab.predictors import predict_items

    prof = _profile()
    stream = [Sample("weight_stream", dict(n=n, c=256), ms, 0.0, 5, (ms,) * 5)
              for n, ms in ((1, 0.05), (16, 5.0))]  # 5.2 GB/s in cache, 0.84 GB/s out
    est = LookupTableModel(prof.with_samples(list(prof.samples) + stream)).fit()
    fc = [WorkItem(f"fc{i}", "Dense", [("dense", dict(rows=1, cin=256, cout=256))])
          for i in range(2)]
    add = WorkItem("add", "Add", [("add", dict(h=32, w=32, c=512, broadcast=False))])
    alone = predict_items(fc, est)[1]
    beside = {p.name: p.latency_ms for p in predict_items(fc + [add], est)[1]}
    assert beside["fc0"] > 1.5 * alone[0].latency_ms


def test_a_kernel_in_a_network_takes_at_least_its_weights_read_at_the_networks_bandwidth():
    """A one-row dense is a read of its weights: inside a network whose weights lie
    past the cache its own fit in, it is predicted no faster than reading them at the
    network's working set's bandwidth, with no calibration networks at all; alone, or
    in a network that fits where it does, as its own prediction."""
    from latency_lab.kernels import WorkItem
    from latency_lab.predictors import predict_items

    prof = _profile()
    stream = [Sample("weight_stream", dict(n=n, c=256), ms, 0.0, 5, (ms,) * 5)
              for n, ms in ((1, 0.05), (16, 5.0))]  # 5.2 GB/s in cache, 0.84 GB/s out
    est = LookupTableModel(prof.with_samples(list(prof.samples) + stream)).fit()
    assert est.in_network_stream_ == est.in_network_slowdown_ == 0.0
    cfg = dict(rows=1, cin=512, cout=512)
    w_k = op_kinds.weight_bytes("dense", cfg)
    alone = est.kernel_ms([("dense", cfg)])
    assert alone == pytest.approx(est._isolated_ms("dense", cfg))
    assert est.kernel_ms([("dense", cfg)], network_bytes=w_k, network_kernels=2) == alone
    big = 16 * w_k
    floor = est._stream_ms(w_k, big)
    assert floor > alone  # the test's point: out of cache the read is slower
    inside = est.kernel_ms([("dense", cfg)], network_bytes=big, network_kernels=16)
    assert inside == pytest.approx(floor)
    items = [WorkItem("", "", [("dense", cfg)]) for _ in range(16)]
    assert predict_items(items, est)[0] == pytest.approx(16 * floor + est.per_invocation_ms_)


def test_unknown_predictor_and_lookup_on_a_spec_profile():
    with pytest.raises(ProfileError, match="unknown predictor 'magic'"):
        make_predictor("magic", "t4")
    with pytest.raises(ProfileError, match="no lookup-table samples"):
        make_predictor("lookup", "t4")


# ---------------------------------------------------------------- LiteRT mapping


def _small_net():
    x = keras.Input((16, 16, 3))
    h = L.Conv2D(8, 3, padding="same", name="stem")(x)
    h = L.BatchNormalization(name="stem_bn")(h)
    h = L.ReLU(name="stem_relu")(h)
    h = L.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = L.BatchNormalization(name="dw_bn")(h)
    h = L.ReLU(6.0, name="dw_relu6")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    y = L.Dense(4, name="head")(h)
    return keras.Model(x, y, name="small")


def test_litert_kernels_fuse_bn_and_activations_and_keep_layer_names():
    items = work_items(_small_net(), "litert")
    assert [(i.layer, i.layer_type, i.kernel) for i in items] == [
        ("stem", "Conv2D", "CONV_2D"),
        ("dw", "DepthwiseConv2D", "DEPTHWISE_CONV_2D"),
        ("gap", "GlobalAveragePooling2D", "MEAN"),
        ("head", "Dense", "FULLY_CONNECTED"),
    ]
    assert items[0].configs == [("conv2d", dict(h=16, w=16, cin=3, cout=8, k=3, s=1))]
    assert items[1].configs == [("depthwise", dict(h=16, w=16, c=8, k=3, s=1))]
    assert items[3].configs == [("dense", dict(rows=1, cin=8, cout=4))]


def test_a_zero_pad_before_a_valid_conv_runs_no_kernel():
    """XNNPACK folds a zero spatial PAD into the [depthwise] conv that reads it with
    VALID padding (ResNet's conv1_pad): no kernel is charged for it. A pad before a
    max pool, or read by two kernels, is a kernel of its own."""
    x = keras.Input((32, 32, 8))
    p = L.ZeroPadding2D(3, name="conv_pad")(x)
    h = L.Conv2D(16, 7, strides=2, padding="valid", name="conv")(p)
    q = L.ZeroPadding2D(1, name="pool_pad")(h)
    h = L.MaxPooling2D(3, strides=2, name="pool")(q)
    r = L.ZeroPadding2D(2, name="shared_pad")(h)  # not SAME: the converter keeps it
    a = L.DepthwiseConv2D(3, padding="valid", name="dw_a")(r)
    b = L.DepthwiseConv2D(3, padding="valid", name="dw_b")(r)
    net = keras.Model(x, L.Add(name="add")([a, b]))
    layers = [i.layer for i in work_items(net, "litert")]
    assert "conv_pad" not in layers and "conv" in layers
    assert "pool_pad" in layers and "shared_pad" in layers
    conv = next(i for i in work_items(net, "litert") if i.layer == "conv")
    assert conv.configs == [("conv2d", dict(h=32, w=32, cin=8, cout=16, k=7, s=2))]


def test_layers_named_like_tensorflow_scopes_keep_their_own_kernels():
    """Keras names unnamed layers `conv2d`, `conv2d_1`, ...; a traced-again model scopes
    layer `c` as `net_1/c_1` and layer `c_1` as `net_1/c_1_2`, so `c_1` names two
    candidates. The kernel's output shape decides, or the model scope's suffix."""
    x = keras.Input((8, 8, 3))
    for same in (False, True):  # same: both convs have one output shape
        y = L.Conv2D(4, 3, padding="same" if same else "valid", name="c")(x)
        y = L.Conv2D(4 if same else 5, 3, padding="same" if same else "valid", name="c_1")(y)
        y = L.Conv2D(6, 1, name="d")(y)
        items = work_items(keras.Model(x, y, name="net"), "litert")
        assert [i.layer for i in items] == ["c", "c_1", "d"], same


def test_the_output_kernels_are_named_after_their_layers():
    """The converter renames the model's output tensor (`Identity`); a kernel there is
    named after the layer of its class and shape, or else after the layer that fed it
    (a softmax split off its Dense)."""
    x = keras.Input((6, 6, 3))
    h = L.Conv2D(4, 3, name="conv")(x)
    pooled = L.GlobalMaxPooling2D(name="gmp")(h)
    probs = L.Dense(5, activation="softmax", name="head")(pooled)
    items = work_items(keras.Model(x, probs), "litert")
    assert [(i.layer, i.kernel) for i in items] == [
        ("conv", "CONV_2D"), ("gmp", "REDUCE_MAX"), ("head", "FULLY_CONNECTED"), ("head", "SOFTMAX")]
    items = work_items(keras.Model(x, pooled), "litert")
    assert [(i.layer, i.kernel) for i in items] == [("conv", "CONV_2D"), ("gmp", "REDUCE_MAX")]


def test_a_non_square_conv_is_timed_as_a_square_one_of_as_many_multiply_adds():
    x = keras.Input((6, 6, 8))
    y = L.Conv2D(12, (7, 1), padding="same", name="tall")(L.Conv2D(8, (1, 3), padding="same", name="wide")(x))
    items = {i.layer: i for i in work_items(keras.Model(x, y), "litert")}
    assert items["wide"].configs == [("conv2d", dict(h=6, w=6, cin=6, cout=8, k=2, s=1))]  # 8*3/2^2
    assert items["tall"].configs == [("conv2d", dict(h=6, w=6, cin=6, cout=12, k=3, s=1))]  # 8*7/3^2
    assert conv2d_config(6, 6, 8, 4, 3, 3, 2) == dict(h=6, w=6, cin=8, cout=4, k=3, s=2)
    keras_items = {i.layer: i for i in work_items(keras.Model(x, y), "keras")}  # the Keras-graph mapping
    assert keras_items["wide"].configs == items["wide"].configs


def test_a_transposed_conv_is_timed_over_its_input_map():
    x = keras.Input((6, 6, 4))
    y = L.Conv2DTranspose(8, 2, strides=2, name="up")(x)
    items = [i for i in work_items(keras.Model(x, y), "litert") if i.kernel == "TRANSPOSE_CONV"]
    assert [(i.layer, i.configs) for i in items] == [
        ("up", [("transpose_conv", dict(h=6, w=6, cin=4, cout=8, k=2, s=2))])]
    keras_items = work_items(keras.Model(x, y), "keras")
    assert keras_items[0].configs == items[0].configs


def test_resizes_are_timed_as_resizes_of_their_kind():
    """A Resizing layer and a bilinear UpSampling2D run as LiteRT's RESIZE kernels. A
    nearest UpSampling2D runs as TILE kernels there (charged through the roofline)."""
    x = keras.Input((6, 6, 4))
    y = L.Resizing(12, 12, interpolation="nearest", name="near")(x)
    y = L.UpSampling2D(interpolation="bilinear", name="bil")(y)
    items = {i.layer: i.configs for i in work_items(keras.Model(x, y), "litert")}
    assert items["near"] == [("resize", dict(h=6, w=6, c=4, scale=2, kind="nearest"))]
    assert items["bil"] == [("resize", dict(h=12, w=12, c=4, scale=2, kind="bilinear"))]
    items = {i.layer: i.configs for i in work_items(keras.Model(x, L.UpSampling2D(name="up")(x)), "keras")}
    assert items["up"] == [("resize", dict(h=6, w=6, c=4, scale=2, kind="nearest"))]


def test_a_depth_multiplier_is_timed_by_its_own_samples():
    x = keras.Input((6, 6, 4))
    y = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw2")(x)
    y = L.SeparableConv2D(5, 3, padding="same", depth_multiplier=3, name="sep3")(y)
    y = L.DepthwiseConv2D(3, padding="same", name="dw1")(y)
    want = ("depthwise_multiplier", dict(h=6, w=6, c=4, dm=2, k=3, s=1))
    for runtime in ("litert", "keras"):
        items = {}
        for i in work_items(keras.Model(x, y), runtime):
            items.setdefault(i.layer, []).extend(i.configs or [])
        assert items["dw2"] == [want], runtime
        assert items["sep3"][0] == ("depthwise_multiplier", dict(h=6, w=6, c=8, dm=3, k=3, s=1))
        assert items["dw1"] == [("depthwise", dict(h=6, w=6, c=5, k=3, s=1))], runtime


def test_standalone_activations_are_timed_by_their_own_samples():
    x = keras.Input((6, 6, 4))
    y = L.LeakyReLU(name="leaky")(L.Conv2D(4, 1, name="conv")(x))
    y = L.Activation("gelu", name="gelu")(L.ELU(name="elu")(y))
    y = L.Activation("tanh", name="tanh")(y)
    items = {i.layer: i.configs for i in work_items(keras.Model(x, y), "litert")}
    for name, fn in (("leaky", "leaky_relu"), ("elu", "elu"), ("gelu", "gelu"), ("tanh", "tanh")):
        assert items[name] == [("activation", dict(h=6, w=6, c=4, fn=fn))], name
    # Under the keras runtime XLA runs the four as one loop, timed by its costliest
    # member's own sample (the gelu: an erf per element).
    loops = [i for i in work_items(keras.Model(x, y), "keras") if i.layer_type != "Conv2D"]
    assert len(loops) == 1 and loops[0].kernel == "loop(leaky, elu, gelu, tanh)"
    assert loops[0].configs == [("activation", dict(h=6, w=6, c=4, fn="gelu"))]


def test_scalar_and_per_channel_elementwise_ops_are_told_apart():
    """Rescaling multiplies and adds a scalar (XNNPACK's constant-operand kernels);
    squeeze-excite multiplies by a per-channel vector; a residual add adds two maps.
    Three different kernels, three different tables."""
    x = keras.Input((6, 6, 3))
    r = L.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(x)
    h = L.Conv2D(4, 3, padding="same", name="conv")(r)
    gate = L.Dense(4, name="gate")(L.GlobalAveragePooling2D(name="squeeze")(h))
    scaled = L.Multiply(name="excite")([h, L.Reshape((1, 1, 4), name="reshape")(gate)])
    y = L.Add(name="residual")([scaled, h])
    items = work_items(keras.Model(x, y), "litert")
    by_layer: dict = {}
    for i in items:
        by_layer.setdefault(i.layer, []).extend(i.configs or [])
    assert sorted(op for op, _ in by_layer["rescale"]) == ["add_scalar", "multiply_scalar"]
    assert all(cfg == dict(h=6, w=6, c=3) for _, cfg in by_layer["rescale"])
    assert by_layer["excite"] == [("multiply", dict(h=6, w=6, c=4, broadcast=True))]
    assert by_layer["residual"] == [("add", dict(h=6, w=6, c=4, broadcast=False))]


def test_scalar_elementwise_microbenchmarks_cost_one_flop_per_element():
    for op in ("add_scalar", "multiply_scalar"):
        w = op_kinds.work(op, dict(h=4, w=5, c=3))
        assert w.flops == 60 and w.params == 0
        assert op_kinds.op_class(op, dict(h=4, w=5, c=3)) == "elementwise"


def test_a_1x1_conv_on_a_1x1_map_is_timed_as_the_dense_op_it_is():
    """Squeeze-excite and conv heads: CONV_2D with a 1x1 kernel on a 1x1 map is a
    matrix-vector product; a 1x1 conv on a larger map stays a conv."""
    x = keras.Input((4, 4, 6))
    pooled = L.GlobalAveragePooling2D(keepdims=True, name="squeeze")(x)
    excite = L.Conv2D(6, 1, name="excite")(pooled)
    y = L.Conv2D(5, 1, name="pointwise")(L.Multiply(name="scale")([x, excite]))
    items = {i.layer: i for i in work_items(keras.Model(x, y), "litert")}
    assert items["excite"].kernel == "CONV_2D"
    assert items["excite"].configs == [("dense", dict(rows=1, cin=6, cout=6))]
    assert items["pointwise"].configs == [("conv2d", dict(h=4, w=4, cin=6, cout=5, k=1, s=1))]


def test_network_prediction_is_the_sum_of_its_kernels_plus_one_invocation():
    prof = _profile(overhead={"per_op_ms": 0.0, "per_invocation_ms": 0.003})
    res = predict_model(_small_net(), prof, "roofline")
    assert [l.name for l in res.layers] == ["stem", "dw", "gap", "head"]
    est = RooflineModel(prof).fit()
    kernels = [c for i in work_items(_small_net(), "litert") for c in i.configs]
    # each single-op figure holds one invocation, which the network pays only once
    per_kernel = np.maximum(est.predict(kernels) - 0.003, 0.0)
    assert res.latency_ms == pytest.approx(0.003 + per_kernel.sum(), rel=1e-9)
    assert sum(l.latency_ms for l in res.layers) == pytest.approx(res.latency_ms - 0.003)


# ------------------------------------------------------------------ command line


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pred")
    model_path = d / "small.keras"
    _small_net().save(model_path)
    litert = d / "litert.json"
    _profile().save(litert)
    keras_prof = d / "keras.json"
    _profile(runtime="keras").save(keras_prof)
    return {"model": str(model_path), "litert": str(litert), "keras": str(keras_prof)}


def test_predict_json_shape(capsys, files):
    assert main(["predict", files["model"], "--profile", files["litert"], "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"model", "profile", "latency_ms", "layers"} <= set(data)
    assert data["latency_ms"] > 0 and data["profile"] == files["litert"]
    assert [l["name"] for l in data["layers"]] == ["stem", "dw", "gap", "head"]
    for layer in data["layers"]:
        assert set(layer) == {"name", "type", "latency_ms", "bound", "kernels", "parts"}
        assert len(layer["parts"]) == layer["kernels"]
        assert sum(p["latency_ms"] for p in layer["parts"]) == pytest.approx(layer["latency_ms"])
        assert layer["bound"] in ("compute", "memory", "overhead") and layer["kernels"] >= 1
    # the rows are LiteRT's kernels summed per Keras layer: the JSON says how many
    assert data["runtime"] == "litert"
    assert data["kernels"] == sum(l["kernels"] for l in data["layers"]) >= len(data["layers"])


def test_predict_table_says_what_its_rows_are(capsys, files):
    assert main(["predict", files["model"], "--profile", files["litert"], "--json"]) == 0
    kernels = json.loads(capsys.readouterr().out)["kernels"]
    assert main(["predict", files["model"], "--profile", files["litert"]]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"4 layers (the kernels LiteRT runs, {kernels}, summed per Keras layer" in out
    assert "folded BatchNormalization and fused activations" in out


def test_measure_json_shape(capsys, files):
    assert main(["measure", files["model"], "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"model", "runtime", "threads", "median_ms", "iqr_ms", "repeats", "device"} <= set(data)
    assert data["runtime"] == "litert" and data["threads"] == 1
    assert data["median_ms"] > 0 and data["iqr_ms"] >= 0 and data["repeats"] >= 1
    assert 0 < data["min_ms"] <= data["median_ms"] and data["passes"] == 3
    assert {"name", "fingerprint"} <= set(data["device"])


def test_validate_writes_report(capsys, files, tmp_path):
    rc = main(["validate", "--profile", files["litert"], files["model"],
               "--report", str(tmp_path)])
    assert rc == 0
    report = json.loads((tmp_path / "validation.json").read_text())
    text = json.dumps(report)
    for key in ("lookup", "roofline", "flops", "spearman", "rmspe"):
        assert key in text, key
    # one model: the rank correlation is undefined, written as null (not NaN)
    assert report["summary"]["lookup"]["spearman"] is None
    out = capsys.readouterr().out
    assert "n/a" in out
    # The table names a model file by its name; the JSON keeps the path given.
    assert report["models"][0]["name"] == files["model"]
    assert os.path.basename(files["model"]) in out and files["model"] not in out
    assert (tmp_path / "scatter.png").stat().st_size > 0


def test_validate_measures_each_model_once_per_pass(capsys, files, tmp_path):
    rc = main(["validate", "--profile", files["litert"], files["model"], "--passes", "2",
               "--report", str(tmp_path)])
    assert rc == 0
    report = json.loads((tmp_path / "validation.json").read_text())
    assert report["measurement"]["passes"] == 2
    (model,) = report["models"]
    assert len(model["pass_ms"]) == 2 and all(v > 0 for v in model["pass_ms"])
    # measured = the fastest repeat of any pass; the median over all repeats beside it
    assert model["measured_ms"] == pytest.approx(min(model["pass_ms"]))
    assert model["median_ms"] >= model["measured_ms"]
    assert report["measurement"]["median_pass_spread_pct"] >= 0
    assert "measurement noise: 2 passes" in capsys.readouterr().out


def test_validate_reports_host_drift_against_the_profiles_reference_networks(capsys):
    """A reference network measured beside the models, against the figure the profile
    recorded for it: the ratio says how much the host slowed since profiling."""
    from latency_lab.validate import host_drift, validate

    prof = _profile().replace(calibration={"models": [
        {"name": "small ref", "measured_ms": 1e-4, "items": []}]})  # 0.1 us: far below real
    report = validate([("small", _small_net())], prof, passes=1,
                      reference=[("small ref", _small_net())])
    (row,) = report.drift["reference"]
    assert row["name"] == "small ref" and row["profile_ms"] == 1e-4
    assert row["ratio"] == pytest.approx(row["measured_ms"] / 1e-4) and row["ratio"] > 1
    assert report.drift["median_ratio"] == row["ratio"]
    assert [r.name for r in report.results] == ["small"]  # not among the results
    assert report.to_dict()["host_drift"] == report.drift
    from latency_lab.cli import render_validation

    render_validation(report)
    assert "host drift since profiling" in capsys.readouterr().out
    # The profile has no calibration networks: nothing to compare, and no drift.
    assert validate([("small", _small_net())], _profile(), passes=1).drift is None
    with pytest.raises(ProfileError, match="'other' is not among the calibration networks"):
        host_drift(prof, {"other": 1.0})


def test_validate_bad_passes(capsys, files):
    assert main(["validate", "--profile", files["litert"], files["model"], "--passes", "0"]) == 2
    assert "--passes" in capsys.readouterr().err


def test_measure_in_passes_shuffles_and_refuses_repeated_names():
    from latency_lab.errors import InputSpecError
    from latency_lab.runtimes import measure_in_passes
    from latency_lab.timing import Measurement

    class Runtime:
        calls: list = []

        def measure_models(self, models, timing=None):
            out = []
            for model in models:
                self.calls.append(model)
                t = 1e-3 * (len(self.calls))
                out.append(Measurement(median_s=t, iqr_s=0.0, raw_s=[t] * 3, repeats=3))
            return out

    rt = Runtime()
    models = [(f"m{i}", f"model-{i}") for i in range(6)]
    out = measure_in_passes(rt, models, passes=3, seed=1, min_pass_s=0.0)
    assert sorted(out) == [n for n, _ in models]
    assert all(len(v) == 3 for v in out.values())
    assert rt.calls[:6] == [m for _, m in models]
    assert sorted(rt.calls[6:12]) == sorted(rt.calls[:6]) and rt.calls[6:12] != rt.calls[:6]
    with pytest.raises(InputSpecError, match="m0"):
        measure_in_passes(rt, [("m0", 1), ("m0", 2)])
    with pytest.raises(InputSpecError, match="passes"):
        measure_in_passes(rt, models, passes=0)


def test_a_short_pass_goes_on_until_it_has_lasted_min_pass_s():
    """Three passes over a tiny network would be over within one slow spell of the
    host; each pass repeats its measurement until it has lasted min_pass_s."""
    from latency_lab.runtimes import measure_in_passes
    from latency_lab.timing import Measurement

    now = [0.0]
    calls = []

    class Runtime:
        def measure_models(self, models, timing=None):
            now[0] += 0.3  # each round of the pass takes 0.3 s
            calls.append(len(calls))
            t = 1e-3 * (1 + len(calls) % 4)  # every fourth round is the fastest
            return [Measurement(median_s=t, iqr_s=0.0, raw_s=[t, 2 * t], repeats=2)
                    for _ in models]

    out = measure_in_passes(Runtime(), [("net", "model")], passes=2, min_pass_s=1.0,
                            clock=lambda: now[0])
    assert len(calls) == 2 * 4  # 0.3, 0.6, 0.9, 1.2 s: four rounds per pass
    first, second = out["net"]
    assert len(first.raw_s) == 4 * 2 and first.repeats == 8
    assert first.min_s == pytest.approx(1e-3)


def test_validate_refuses_a_datasheet_profile(capsys, files):
    assert main(["validate", "--profile", "t4", files["model"]]) == 2
    assert "datasheet profile" in " ".join(capsys.readouterr().err.split())


def test_predict_with_a_keras_profile_predicts_keras_layers(capsys, files):
    # a profile of another runtime predicts that runtime's layers (BN and ReLU run as
    # their own ops in Keras), not LiteRT's fused kernels
    assert main(["predict", files["model"], "--profile", files["keras"], "--json"]) == 0
    names = [l["name"] for l in json.loads(capsys.readouterr().out)["layers"]]
    assert "stem" in names and "head" in names and len(names) > 4


def test_a_kernel_without_a_latency_model_is_an_error_naming_it():
    from latency_lab.kernels.litert import Kernel
    from latency_lab.op_kinds import kernel_configs as bench_configs

    k = Kernel(3, "UNIDIRECTIONAL_SEQUENCE_LSTM", [(1, 5, 4)], [(1, 5, 8)],
               tensor_name="model/lstm/x", layers=["lstm"])
    with pytest.raises(UnsupportedOpError, match=r"UNIDIRECTIONAL_SEQUENCE_LSTM \(layer 'lstm'"):
        bench_configs(k)


def test_stepped_output_channels_are_padded_to_whole_simd_steps():
    """Output channels of a channel-tiled kernel enter base and features rounded up to
    a whole step (half a 16-channel tile for depthwise, a tile for dense and 1x1 convs,
    two for larger convs past one tile);
    element-wise ops and profiles without a tile keep their counts."""
    from latency_lab.predictors import featurize, padded_config

    assert padded_config("depthwise", dict(h=4, w=4, c=9, k=3, s=1), 16)["c"] == 16
    assert padded_config("conv2d", dict(h=4, w=4, cin=3, cout=17, k=3, s=1), 16) == dict(
        h=4, w=4, cin=3, cout=32, k=3, s=1)  # cin is the GEMM's depth: not stepped
    # the indirect GEMM of a kxk conv steps two tiles past one tile, a 1x1 conv's GEMM one
    assert [padded_config("conv2d", dict(h=4, w=4, cin=3, cout=c, k=3, s=1), 16)["cout"]
            for c in (8, 16, 24, 40, 72)] == [16, 16, 32, 64, 96]
    assert [padded_config("conv2d", dict(h=4, w=4, cin=3, cout=c, k=1, s=1), 16)["cout"]
            for c in (8, 24, 40, 72)] == [16, 32, 48, 80]
    assert padded_config("dense", dict(rows=1, cin=10, cout=17), 16)["cout"] == 32
    assert padded_config("dense", dict(rows=1, cin=10, cout=17), None)["cout"] == 17
    assert padded_config("add", dict(h=4, w=4, c=3), 16) == dict(h=4, w=4, c=3)
    # Flat across a step: 9..16 channels share features, but for depthwise two flags
    # say the last step, and the last whole tile, are partial (XNNPACK's remainder path)
    dw = [featurize("depthwise", dict(h=4, w=4, c=c, k=3, s=1), {}, 16) for c in (9, 15, 16)]
    assert dw[0] == dw[1] and dw[0][:-2] == dw[2][:-2]
    assert (dw[0][-2:], dw[2][-2:]) == ([1.0, 1.0], [0.0, 0.0])
    flags = [featurize("depthwise", dict(h=4, w=4, c=c, k=3, s=1), {}, 16)[-2:]
             for c in (8, 72, 80, 100)]
    assert flags == [[0.0, 1.0], [0.0, 1.0], [0.0, 0.0], [1.0, 1.0]]
    conv = [featurize("conv2d", dict(h=4, w=4, cin=8, cout=c, k=1, s=1), {}, 16) for c in (1, 8)]
    assert conv[0] == conv[1]


def test_a_conv_smaller_than_its_stride_reads_only_the_input_its_windows_cover():
    """1x1 at stride 2 over 8x8 reads 4 of 8 rows and columns; 3x3 at stride 2 reads
    everything. The lookup's base leaves the skipped bytes out; `work` keeps them."""
    conv = op_kinds.get("conv2d")
    strided = dict(h=8, w=8, cin=16, cout=32, k=1, s=2)
    assert conv.unread_bytes(strided) == 4.0 * 16 * (64 - 16)
    assert conv.unread_bytes(dict(strided, k=3)) == 0.0
    assert conv.unread_bytes(dict(strided, h=7, w=7, k=1, s=4)) == 4.0 * 16 * (49 - 4)
    assert op_kinds.get("depthwise").unread_bytes(dict(h=8, w=8, c=8, k=1, s=2)) == 0.0
    est = LookupTableModel(_profile(), cache_base=False).fit()
    w = op_kinds.work("conv2d", strided)
    roof = est.roofline_ms(w.flops, w.bytes_total - conv.unread_bytes(strided), "dense")
    assert est._roof("conv2d", strided) == pytest.approx(roof)
    assert est._roof("conv2d", strided) < est.roofline_ms(w.flops, w.bytes_total, "dense")
    # one count of the bytes moved for every roofline over op kinds
    assert op_kinds.moved_bytes("conv2d", strided) == w.bytes_total - conv.unread_bytes(strided)
    assert RooflineModel(_profile()).fit().predict([("conv2d", strided)])[0] == pytest.approx(roof)


def test_a_depthwise_conv_is_based_on_the_taps_of_the_kernel_that_runs_it():
    """XNNPACK's single-pass depthwise kernels do 3, 4, 9 or 25 taps: a 4x4 runs the
    25-tap kernel and a 1x1 the 3-tap one, so the lookup's base on a CPU counts those
    taps' multiply-adds; past 25 taps (multipass) and without a CPU tile (a GPU, a
    datasheet) it counts the real ones."""
    from latency_lab.op_kinds.depthwise import run_taps

    assert [run_taps(k) for k in range(1, 8)] == [3, 4, 9, 25, 25, 36, 49]
    dw = op_kinds.get("depthwise")
    cfg = dict(h=40, w=40, c=256, k=4, s=1)
    flops = op_kinds.work("depthwise", cfg).flops
    assert dw.tiled_flops(cfg, flops) == pytest.approx(flops * 25 / 16)
    assert dw.tiled_flops(dict(cfg, k=3), flops) == flops
    assert op_kinds.get("conv2d").tiled_flops(dict(h=4, w=4, cin=3, cout=8, k=2, s=1), 7.0) == 7.0
    cpu = LookupTableModel(_profile(), cache_base=False, channel_tile=16).fit()
    w = op_kinds.work("depthwise", cfg)
    roof = cpu.roofline_ms(flops * 25 / 16, op_kinds.moved_bytes("depthwise", cfg, w), "depthwise")
    assert cpu._roof("depthwise", cfg) == pytest.approx(roof)
    untiled = LookupTableModel(_profile(), cache_base=False, channel_tile=None).fit()
    assert untiled._roof("depthwise", cfg) < cpu._roof("depthwise", cfg)


def test_a_convs_output_pixels_count_in_whole_row_tiles():
    """XNNPACK's (indirect) GEMM computes a conv's output pixels `mr` at a time (7
    with AVX-512): a 6x6 map (36 pixels) costs as much as 42; a 7x7 map fills its
    steps, a lone pixel has a kernel of its own, and without a row tile (a GPU) the
    count is the real one. The lookup's base on a CPU counts the padded rows."""
    conv = op_kinds.get("conv2d")
    cfg = dict(h=6, w=6, cin=64, cout=64, k=3, s=1)
    flops = op_kinds.work("conv2d", cfg).flops
    assert conv.tiled_flops(cfg, flops, row_tile=7) == pytest.approx(flops * 42 / 36)
    assert conv.tiled_flops(dict(cfg, h=7, w=7), 5.0, row_tile=7) == 5.0
    assert conv.tiled_flops(dict(cfg, h=12, w=12, s=2), 5.0, row_tile=7) == pytest.approx(5.0 * 42 / 36)
    assert conv.tiled_flops(dict(cfg, h=1, w=1), 5.0, row_tile=7) == 5.0
    assert conv.tiled_flops(cfg, 5.0) == 5.0
    tiled = LookupTableModel(_profile(), cache_base=False, channel_tile=16, row_tile=7).fit()
    untiled = LookupTableModel(_profile(), cache_base=False, channel_tile=16, row_tile=None).fit()
    assert tiled._roof("conv2d", cfg) > untiled._roof("conv2d", cfg)
    assert tiled._roof("conv2d", dict(cfg, h=7, w=7)) == pytest.approx(
        untiled._roof("conv2d", dict(cfg, h=7, w=7)))


def test_a_convs_taps_over_padding_are_a_feature():
    """XLA's CPU conv with a kernel larger than its map runs a path whose time follows
    the taps that read the map, not k*k (keras runtime, EPYC VM: 192 -> 64 channels
    over 4x4, k = 5 to 11 took 1.29-1.96 ms while k*k grew 4.8x). The share of taps
    inside the map is a feature: 1 well inside a large map, 16/121 for an 11x11 over
    4x4, 12.25/25 for a 5x5 (rows 3, 4, 4, 3 of 5)."""
    from latency_lab.op_kinds.conv2d import in_map_taps
    from latency_lab.predictors import featurize

    cfg = dict(h=4, w=4, cin=192, cout=64, k=11, s=1)
    assert in_map_taps(cfg) == pytest.approx(16 / 121)
    assert in_map_taps(dict(cfg, k=5)) == pytest.approx(12.25 / 25)
    assert in_map_taps(dict(cfg, k=1, s=2)) == 1.0
    assert in_map_taps(dict(cfg, h=9, w=9, k=3, s=2)) == pytest.approx((13 / 5 / 3) ** 2)  # rows 2, 3, 3, 3, 2 of 3
    assert in_map_taps(dict(cfg, h=224, w=224, k=3)) == pytest.approx((1 - 2 / 3 / 224) ** 2)
    feats = [featurize("conv2d", dict(cfg, k=k), {}, None, 1.0, {}) for k in (5, 11)]
    assert len(feats[0]) == len(feats[1])
    changed = [i for i, (a, b) in enumerate(zip(*feats)) if a != b]
    assert any(feats[0][i] == pytest.approx(math.log(0.49)) for i in changed)
    assert any(feats[1][i] == pytest.approx(math.log(16 / 121)) for i in changed)


def test_a_pool_pays_per_output_pixel_whatever_its_channels():
    """XNNPACK gathers each output pixel's window through k*k row pointers, a cost
    per pixel that no channel count scales: a NAS-Bench-201 cell's 3x3 average pool
    over 32x32x8 took 6.6 us alone, and the roofline base, all in channels, put it at
    2.7. The pool's base terms have a per-pixel term; a table of pools over 32-256
    channels carries it to one over 8 channels."""
    from latency_lab.op_kinds.base import same_out

    def pool_ms(c):  # 0.5 us a call, 5 ns a pixel, 0.02 ns a window read
        px = same_out(c["h"], c["s"]) ** 2
        return 5e-4 + 5e-6 * px + 2e-8 * px * c["k"] ** 2 * c["c"]

    cfgs = [dict(h=h, w=h, c=c, k=k, s=s, kind=kind) for h in (12, 24, 40) for c in (32, 96, 256)
            for k, s in ((3, 1), (2, 2), (3, 2)) for kind in ("max", "avg")]
    samples = [Sample("pool", c, pool_ms(c), 0.0, 5, (pool_ms(c),) * 5) for c in cfgs]
    samples += _profile().samples
    prof = DeviceProfile.create(
        device={"kind": "cpu", "name": "hand-made cpu", "fingerprint": None, "info": {}},
        runtime={"name": "litert", "version": "test", "backend": "xnnpack", "device": "cpu",
                 "threads": 1, "dtype": "float32", "batch": 1},
        roofline=ceilings_from_samples(samples), samples=samples)
    terms = op_kinds.get("pool").base_terms(dict(h=32, w=32, c=8, k=3, s=1, kind="avg"))
    assert terms[:3] == [1.0, 1024.0, 1024.0 * 9 * 8]
    small = dict(h=32, w=32, c=8, k=3, s=1, kind="avg")
    est = LookupTableModel(prof, cache_base=False).fit()
    assert est.predict([("pool", small)])[0] == pytest.approx(pool_ms(small), rel=0.1)


def test_a_depthwise_conv_gets_how_far_its_taps_spill_past_the_l1():
    """XNNPACK's depthwise kernels keep one pixel's taps (weights and input window, all
    channels) in L1 for the next pixel; past the L1 they run ~1.5x slower per
    multiply-add. The feature is 0 inside, 1 a third of an octave past, and only for
    kinds with a per-pixel working set, only when the profile knows its L1."""
    from latency_lab.predictors import featurize, l1_spill, l1d_bytes_for

    l1 = 32768
    assert l1_spill(31 * 1024, l1) == 0.0 and l1_spill(l1, l1) == 0.0
    assert 0.0 < l1_spill(36 * 1024, l1) < 1.0
    assert l1_spill(2 ** (1 / 3) * l1, l1) == pytest.approx(1.0) and l1_spill(1e6, l1) == 1.0
    dw = lambda c: featurize("depthwise", dict(h=40, w=40, c=c, k=5, s=1), {}, 16,
                             l1d_bytes=l1)
    plain = featurize("depthwise", dict(h=40, w=40, c=128, k=5, s=1), {}, 16)
    assert len(dw(128)) == len(plain) + 1
    assert dw(128)[-1] == 0.0 and dw(256)[-1] == 1.0  # 25.6 KB and 51.2 KB of taps
    assert dw(120)[-1] == 0.0  # padded to 128 channels, as XNNPACK packs them
    conv = dict(h=8, w=8, cin=8, cout=8, k=3, s=1)
    assert featurize("conv2d", conv, {}, 16, l1d_bytes=l1) == featurize("conv2d", conv, {}, 16)
    prof = _profile()
    info = {"cpu": {"simd_flags": ["avx2"], "cache_bytes": {"L1d": l1, "L2": None}}}
    assert l1d_bytes_for(prof.replace(device=dict(prof.device, info=info))) == l1
    assert l1d_bytes_for(with_flags(["avx2"])) is None  # caches not recorded
    with pytest.raises(ValueError, match="l1d_bytes"):
        LookupTableModel(_profile(), l1d_bytes=-1).fit()


def test_a_gemms_rows_are_counted_in_whole_row_tiles_but_a_single_row():
    """XNNPACK computes a dense layer's rows in tiles of mr (7 with AVX-512): 16 rows
    cost what 21 do, so base and features see 21; one row has a kernel of its own."""
    from latency_lab.predictors import featurize, padded_config, row_tile_for

    assert [padded_config("dense", dict(rows=r, cin=8, cout=16), 16, 7)["rows"]
            for r in (1, 2, 7, 8, 16, 145)] == [1, 7, 7, 14, 21, 147]
    assert padded_config("dense", dict(rows=16, cin=8, cout=16), 16)["rows"] == 16
    assert padded_config("conv2d", dict(h=4, w=4, cin=3, cout=16, k=3, s=1), 16, 7) == dict(
        h=4, w=4, cin=3, cout=16, k=3, s=1)  # no GEMM rows key: unchanged
    assert featurize("dense", dict(rows=15, cin=8, cout=16), {}, 16, None, None, 7) == \
        featurize("dense", dict(rows=21, cin=8, cout=16), {}, 16, None, None, 7)
    assert row_tile_for(with_flags(["avx512f", "avx2", "fma"])) == 7
    assert row_tile_for(with_flags(["avx2", "fma"])) == 5
    assert row_tile_for(with_flags(["asimd"])) == 6
    assert row_tile_for(with_flags([])) is None
    keras_prof = with_flags(["avx512f"])
    keras_prof = keras_prof.replace(runtime=dict(keras_prof.runtime, name="keras", backend="jax"))
    assert row_tile_for(keras_prof) is None  # XLA tiles otherwise: XNNPACK's mr only
    with pytest.raises(ValueError, match="row_tile"):
        LookupTableModel(_profile(), row_tile=0).fit()


def test_the_regressor_sees_the_size_of_a_kernel_but_for_depthwise():
    """Given the roofline base, every op but depthwise gets its log as a last feature
    (a small kernel's fixed cost weighs by how small the kernel is), and a fitted model
    predicts off the table with it."""
    import math

    from latency_lab.predictors import featurize

    conv = dict(h=4, w=4, cin=8, cout=8, k=1, s=1)
    assert featurize("conv2d", conv, {}, 16, 0.002)[-1] == pytest.approx(math.log(0.002))
    assert len(featurize("conv2d", conv, {}, 16, 0.002)) == len(featurize("conv2d", conv, {}, 16)) + 1
    dw = dict(h=4, w=4, c=8, k=3, s=1)
    assert featurize("depthwise", dw, {}, 16, 0.002) == featurize("depthwise", dw, {}, 16)
    est = LookupTableModel(_profile()).fit()
    assert est.models_["conv2d"]["low"].size == len(featurize("conv2d", _conv()[1], {}, None, 1.0))
    op, cfg = _conv()
    assert est.predict([(op, cfg)])[0] == pytest.approx(_device_ms(op, cfg), rel=0.25)


def test_lookup_predicts_a_step_of_channels_at_one_time():
    """On a CPU profile a depthwise over 9..15 channels is predicted at one time (the
    kernel does the whole step's work), never falling as channels are added."""
    prof = _profile()
    prof = prof.replace(device=dict(prof.device, info={"cpu": {"simd_flags": ["avx2"]}}))
    samples = [Sample("depthwise", dict(h=16, w=16, c=c, k=3, s=1), 0.002 * ((c + 7) // 8) + 0.003,
                      0.0, 3) for c in (4, 8, 16, 24, 32, 48, 64, 96, 128)]
    est = LookupTableModel(prof.with_samples(list(prof.samples) + samples)).fit()
    pred = est.predict([("depthwise", dict(h=16, w=16, c=c, k=3, s=1)) for c in range(9, 16)])
    assert np.ptp(pred) == pytest.approx(0.0, abs=1e-12)


def test_a_dense_layers_packed_weights_fill_whole_steps_of_output_channels():
    """XNNPACK packs a GEMM's weights in whole steps of output channels, and a
    one-row dense layer is a read of them: 9..15 outputs (16 is a table point) are
    one time (AVX2: steps of 16), its weights term included."""
    prof = _profile()
    prof = prof.replace(device=dict(prof.device, info={"cpu": {"simd_flags": ["avx2"]}}))
    samples = [Sample("dense", dict(rows=1, cin=512, cout=c), 0.0004 * ((c + 7) // 8) + 0.001,
                      0.0, 3) for c in (4, 8, 16, 24, 40, 64, 96, 128)]
    est = LookupTableModel(prof.with_samples(list(prof.samples) + samples)).fit()
    pred = est.predict([("dense", dict(rows=1, cin=512, cout=c)) for c in range(9, 16)])
    assert np.ptp(pred) == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------- stored fits (the profile's fitted section)

def _off_table_configs():
    """Configurations between and beyond the table's points, each op kind."""
    X = [("conv2d", dict(h=h, w=h, cin=ci, cout=co, k=3, s=1))
         for h in (9, 12, 20) for ci in (5, 12, 40) for co in (7, 24, 33)]
    X += [("dense", dict(rows=1, cin=c, cout=10)) for c in (9, 50, 100)]
    X += [("depthwise", dict(h=h, w=h, c=c, k=3, s=1)) for h in (10, 14) for c in (9, 20, 40)]
    return X


def test_stored_fit_round_trips_and_predicts_what_the_slow_fit_does(tmp_path):
    from latency_lab.predictors import with_fitted_lookup

    prof = _profile()
    slow = LookupTableModel(prof).fit()
    assert set(slow.gp_fits_) == {"conv2d", "dense", "depthwise"}
    assert set(slow.gp_fits_.values()) == {"optimized"}
    path = tmp_path / "p.json"
    with_fitted_lookup(prof).save(path)
    stored = DeviceProfile.load(path)
    section = json.loads(path.read_text())["fitted"]["lookup"]
    assert sorted(section["models"]) == ["conv2d", "dense", "depthwise"]
    assert section == stored.fitted["lookup"]
    fast = LookupTableModel(stored).fit()
    assert set(fast.gp_fits_.values()) == {"stored"}
    assert all(m["gp"].optimizer is None for m in fast.models_.values())
    assert fast.fitted_section() == section  # the same hyperparameters, bit for bit
    X = _off_table_configs() + [(s.op, s.config) for s in prof.samples]
    np.testing.assert_array_equal(fast.predict(X), slow.predict(X))
    assert fast.in_network_stream_ == slow.in_network_stream_
    assert fast.median_log_efficiency_ == slow.median_log_efficiency_
    # use_fitted=False ignores the section.
    assert set(LookupTableModel(stored, use_fitted=False).fit().gp_fits_.values()) == {"optimized"}


def test_a_changed_sample_or_library_version_refits_the_slow_way(monkeypatch):
    import sklearn

    from latency_lab.predictors import with_fitted_lookup

    stored = with_fitted_lookup(_profile())
    assert set(LookupTableModel(stored).fit().gp_fits_.values()) == {"stored"}
    # One sample remeasured: the key no longer matches, every op is refit.
    s0 = stored.samples[0]
    changed = stored.with_samples([Sample(s0.op, s0.config, s0.median_ms * 1.1, 0.0, 5,
                                          (s0.median_ms * 1.1,) * 5)] + stored.samples[1:])
    assert changed.fitted == stored.fitted  # still there, but stale
    refit = LookupTableModel(changed).fit()
    assert set(refit.gp_fits_.values()) == {"optimized"}
    np.testing.assert_array_equal(
        refit.predict(_off_table_configs()),
        LookupTableModel(changed, use_fitted=False).fit().predict(_off_table_configs()))
    # Other settings than the stored fit's: refit.
    assert set(LookupTableModel(stored, random_state=1).fit().gp_fits_.values()) == {"optimized"}
    assert set(LookupTableModel(stored, channel_tile=4).fit().gp_fits_.values()) == {"optimized"}
    # Another scikit-learn: refit.
    monkeypatch.setattr(sklearn, "__version__", "0.0.1")
    assert set(LookupTableModel(stored).fit().gp_fits_.values()) == {"optimized"}


def test_an_op_whose_training_data_differs_from_its_digest_is_refit(monkeypatch):
    """A feature change that forgot to bump LOOKUP_FIT_VERSION keeps the key but not
    the training data: that op's stored hyperparameters are not reused."""
    from latency_lab.predictors import with_fitted_lookup

    stored = with_fitted_lookup(_profile())
    fitted = stored.fitted
    fitted["lookup"]["models"]["dense"]["data_sha256"] = "0" * 64
    est = LookupTableModel(stored.replace(fitted=fitted)).fit()
    assert est.gp_fits_ == {"conv2d": "stored", "dense": "optimized", "depthwise": "stored"}


@pytest.mark.parametrize("change, problem", [
    (lambda hp: hp[:-1], "hyperparameters"),
    (lambda hp: hp + [1.0], "hyperparameters"),
    (lambda hp: [hp[0]] + [1e9] + hp[2:], "outside the kernel's bounds"),
])
def test_stored_hyperparameters_that_do_not_fit_the_kernel_are_a_profile_error(change, problem):
    from latency_lab.predictors import with_fitted_lookup

    stored = with_fitted_lookup(_profile())
    fitted = stored.fitted
    m = fitted["lookup"]["models"]["conv2d"]
    m["hyperparameters"] = change(m["hyperparameters"])
    with pytest.raises(ProfileError, match=r"fitted\.lookup\.models\.conv2d\.hyperparameters"
                       ) as e:
        LookupTableModel(stored.replace(fitted=fitted)).fit()
    assert problem in str(e.value)


def test_a_datasheet_profile_has_no_lookup_fit_to_store():
    from latency_lab.predictors import with_fitted_lookup

    with pytest.raises(ProfileError, match="no lookup-table"):
        with_fitted_lookup("t4")


def test_a_missing_or_stale_stored_fit_warns_once_that_the_load_is_slow(tmp_path):
    import warnings

    from latency_lab.errors import SlowFitWarning
    from latency_lab.predictors import with_fitted_lookup

    def slow_fit_warnings(prof, **kw):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            LookupTableModel(prof, **kw).fit()
        return [str(w.message) for w in caught if issubclass(w.category, SlowFitWarning)]

    assert issubclass(SlowFitWarning, UserWarning)
    prof = _profile()
    path = tmp_path / "p.json"
    prof.save(path)
    (missing,) = slow_fit_warnings(DeviceProfile.load(path))  # one, for three refit ops
    assert "is missing" in missing and "tens of seconds" in missing
    assert f"scripts/fit_profile.py {path}" in missing
    stored = with_fitted_lookup(prof)
    assert slow_fit_warnings(stored) == []  # the stored fit is used: fast, no message
    s0 = stored.samples[0]
    stale = stored.with_samples([Sample(s0.op, s0.config, s0.median_ms * 1.1, 0.0, 5,
                                        (s0.median_ms * 1.1,) * 5)] + stored.samples[1:])
    (msg,) = slow_fit_warnings(stale)
    assert "stale" in msg and "fit_profile.py" in msg
    # the caller asked for the slow fit, or for settings a stored fit never covers
    assert slow_fit_warnings(stale, use_fitted=False) == []
    assert slow_fit_warnings(prof, random_state=1) == []


# ----------------------------------------------------- outside the table, uncertainty


def test_a_configuration_outside_the_table_is_flagged_and_inside_is_not():
    est = LookupTableModel(_profile()).fit()
    inside = est.check_kernel("conv2d", dict(h=12, w=12, cin=12, cout=24, k=3, s=1))
    assert not inside.outside and inside.reason == ""
    assert not est.check_kernel(*_conv(h=16, cin=16, cout=16)).outside  # a table point
    far = est.check_kernel("conv2d", dict(h=8, w=8, cin=16, cout=16, k=7, s=1))
    assert far.outside and "outside the sampled range" in far.reason
    assert far.log_std >= inside.log_std
    assert est.check_kernel("pool", dict(h=8, w=8, c=8, k=2, s=2, kind="max")).outside


def test_a_kernel_path_seen_in_the_table_becomes_a_feature():
    """Spines over k with a 13x jump from k=6 on: the model learns the jump and
    predicts an unsampled 7x7 on a new map on the slow path."""
    cfgs = []
    for h, c in ((8, 16), (16, 8), (12, 24)):
        cfgs += [dict(h=h, w=h, c=c, k=k, s=1) for k in range(1, 12)]
    cfgs += [dict(h=h, w=h, c=c, k=k, s=1) for h in (10, 14) for c in (12, 20) for k in (3, 5, 9)]

    def ms(cfg):
        return _device_ms("depthwise", cfg) * (13 if cfg["k"] >= 6 else 1)

    samples = [Sample("depthwise", c, ms(c), 0.0, 5, (ms(c),) * 5) for c in cfgs]
    prof = _profile().replace(samples=samples)
    est = LookupTableModel(prof).fit()
    assert est.models_["depthwise"]["paths"]["k"][-1][0] == 6
    new = dict(h=10, w=10, c=12, k=7, s=1)
    assert abs(est._predict_one("depthwise", new) / ms(new) - 1) < 0.25


def test_predict_model_reports_a_band_and_the_kernels_outside():
    x = keras.Input((8, 8, 16))
    y = L.DepthwiseConv2D(7, padding="same")(x)
    y = L.Conv2D(16, 3, padding="same")(y)
    res = predict_model(keras.Model(x, y), _profile(), "lookup")
    assert res.band is not None and res.band.uncertainty_ms > 0
    assert [c.op for _, c in res.band.outside] == ["depthwise"]
    assert res.to_dict()["outside_table"][0]["config"]["k"] == 7


def test_in_network_slowdown_is_fitted_with_streaming_and_bounded():
    """Calibration networks whose kernels run 8% slower (times the share of other
    kernels) than alone, besides a
    third of the weight-streaming excess, give back both; a network measured twice
    its kernels' sum is capped at MAX_IN_NETWORK_SLOWDOWN."""
    from latency_lab.kernels import WorkItem
    from latency_lab.predictors import MAX_IN_NETWORK_SLOWDOWN, predict_items

    prof = _profile()
    stream = [Sample("weight_stream", dict(n=n, c=256), ms, 0.0, 5, (ms,) * 5)
              for n, ms in ((1, 0.05), (16, 5.0))]
    prof = prof.with_samples(list(prof.samples) + stream)
    iso = LookupTableModel(prof).fit()

    def network(c, n, slowdown, stream=1 / 3):
        # 64 rows: compute takes longer than reading the weights from the network's
        # working set, so no weights floor applies and the model is linear
        cfg = dict(rows=64, cin=c, cout=c)
        items = [WorkItem("", "", [("dense", cfg)]) for _ in range(n)]
        base, _ = predict_items(items, iso)
        kernels = sum(iso.kernel_ms(i.configs) for i in items)
        w_net = working_set_bytes(items)
        w_k = op_kinds.weight_bytes("dense", cfg)
        assert iso._isolated_ms("dense", cfg) > iso._stream_ms(w_k, w_net)
        others = 1 - 1 / n  # what evicts a kernel: the network's other kernels
        t = base + slowdown * others * kernels + stream * n * iso._stream_excess_ms(w_k, w_net)
        return {"name": f"d{c}x{n}", "measured_ms": t, "iqr_ms": 0.0, "raw_ms": [t],
                "items": [i.to_dict() for i in items]}

    shapes = ((512, 4), (256, 8), (384, 6), (64, 3))
    fitted = LookupTableModel(prof.replace(calibration={"models": [
        network(c, n, 0.08) for c, n in shapes]})).fit()
    assert fitted.in_network_slowdown_ == pytest.approx(0.08, abs=1e-6)
    assert fitted.in_network_stream_ == pytest.approx(1 / 3, rel=1e-4)
    # a one-kernel network runs as its sample did; in ten kernels each is 0.9 * 8% slower
    one = [WorkItem("", "", [_conv()])]
    assert predict_items(one, fitted)[0] == pytest.approx(predict_items(one, iso)[0])
    ten = one * 10
    assert predict_items(ten, fitted)[0] - fitted.per_invocation_ms_ == pytest.approx(
        (1 + 0.08 * 0.9) * (predict_items(ten, iso)[0] - iso.per_invocation_ms_))
    capped = LookupTableModel(prof.replace(calibration={"models": [
        network(c, n, 1.0, stream=0.0) for c, n in shapes]})).fit()
    assert capped.in_network_slowdown_ == MAX_IN_NETWORK_SLOWDOWN


def test_make_predictor_shares_a_fit_while_the_profile_is_the_same(tmp_path):
    """One workflow asks for the same fitted predictor many times; a profile file that
    changes, another profile object or other settings get a fit of their own."""
    from latency_lab.predictors import make_predictor

    prof = _profile()
    path = prof.save(tmp_path / "p.json")
    a = make_predictor("lookup", str(path))
    assert make_predictor("lookup", path) is a
    assert make_predictor("lookup", str(path), channel_tile=None) is not a
    assert make_predictor("roofline", str(path)) is not a
    assert make_predictor("lookup", prof) is make_predictor("lookup", prof) is not a
    samples = prof.to_dict()["samples"]
    samples[0]["median_ms"] *= 2  # the file now says another thing
    samples[0]["raw_ms"] = [2 * t for t in samples[0]["raw_ms"]]
    prof.replace(samples=samples).save(path)
    b = make_predictor("lookup", str(path))
    assert b is not a
    op, cfg = prof.samples[0].op, prof.samples[0].config
    assert b.predict([(op, cfg)])[0] == pytest.approx(2 * a.predict([(op, cfg)])[0])


def test_a_fit_in_worker_processes_is_the_fit_in_this_one(monkeypatch):
    """With a pool, the op kinds' hyperparameters are optimized in its workers (the
    optimizer never runs here) and the fit, stored section and predictions are those
    of a fit in this process on one BLAS thread, as the workers run."""
    from threadpoolctl import threadpool_limits

    from latency_lab.convert.pool import ConversionPool

    prof = _profile()
    with threadpool_limits(limits=1, user_api="blas"):
        alone = LookupTableModel(prof).fit()
    with ConversionPool(2) as pool:
        optimize = LookupTableModel._gp

        def fixed_only(self, feats, target, kernel=None):
            assert kernel is not None, "optimized in the parent process"
            return optimize(self, feats, target, kernel)

        monkeypatch.setattr(LookupTableModel, "_gp", fixed_only)
        pooled = LookupTableModel(prof).fit(pool=pool)
        assert len(pool.pids) == 2
    assert pooled.gp_fits_ == alone.gp_fits_ and set(alone.gp_fits_.values()) == {"optimized"}
    assert pooled.fitted_section() == alone.fitted_section()
    X = [(s.op, s.config) for s in prof.samples]
    np.testing.assert_array_equal(pooled.predict(X), alone.predict(X))


def _overhang_profile(n_overhang: int):
    """The hand-made profile plus `n_overhang` convs whose kernel overhangs a 2x2 or
    3x3 map, timed like XLA's slow path there: 30-300x the made-up device's time,
    erratic in the channels."""
    prof = _profile()
    rng = np.random.default_rng(3)
    extra = []
    for i in range(n_overhang):
        h = 2 + i % 2
        cfg = dict(h=h, w=h, cin=int(rng.integers(16, 512)), cout=int(rng.integers(16, 512)),
                   k=5 + 2 * (i % 3), s=1)
        ms = _device_ms("conv2d", cfg) * float(rng.uniform(30, 300))
        extra.append(Sample("conv2d", cfg, ms, 0.0, 5, (ms,) * 5))
    return DeviceProfile.create(
        device={"kind": "cpu", "name": "hand-made cpu", "fingerprint": None, "info": {}},
        runtime={"name": "keras", "version": "test", "backend": "tensorflow", "device": "cpu",
                 "threads": 1, "dtype": "float32", "batch": 1},
        roofline=prof.roofline, samples=prof.samples + extra)


def test_a_regime_with_enough_samples_gets_a_regressor_of_its_own():
    """XLA's convs whose kernel overhangs the map run a slow path 10-100x off the
    rest and erratic in the channels (`Conv2D.regime`). With MIN_REGIME_SAMPLES of
    them they are fitted apart: an ordinary conv is predicted as if they were not in
    the table, and they are predicted from their own. With fewer they stay in the
    conv regressor."""
    from latency_lab.predictors import MIN_REGIME_SAMPLES, regime_model_key

    inside, over = _conv(h=12, cin=24, cout=20), ("conv2d", dict(h=2, w=2, cin=300, cout=200,
                                                                 k=7, s=1))
    assert op_kinds.get("conv2d").regime(over[1]) == "overhang"
    assert op_kinds.get("conv2d").regime(inside[1]) is None
    assert op_kinds.get("conv2d").regime(dict(inside[1], h=3, w=3, k=3)) is None

    plain = LookupTableModel(_profile(), use_fitted=False).fit()
    apart = LookupTableModel(_overhang_profile(MIN_REGIME_SAMPLES), use_fitted=False).fit()
    joint = LookupTableModel(_overhang_profile(MIN_REGIME_SAMPLES - 1), use_fitted=False).fit()
    key = regime_model_key("conv2d", "overhang")
    assert key in apart.models_ and key not in joint.models_
    assert len(apart.models_[key]["train_x"]) == MIN_REGIME_SAMPLES
    assert len(apart.models_["conv2d"]["train_x"]) == len(plain.models_["conv2d"]["train_x"])
    assert apart.predict([inside])[0] == pytest.approx(plain.predict([inside])[0], rel=1e-9)
    assert joint._model_of(*over) is joint.models_["conv2d"]
    assert apart._model_of(*over) is apart.models_[key]
    # the overhanging conv comes from the slow samples, at least 30x the device's time
    assert apart.predict([over])[0] > 10 * _device_ms(*over)
    assert apart.check_kernel(*over).distance < apart.check_kernel(*inside).distance + 10


def test_a_regimes_fit_is_stored_and_reused():
    """The regime's model is stored under its own name (`regime_model_key`) and a
    profile with the stored fit loads without optimizing anything."""
    from latency_lab.predictors import MIN_REGIME_SAMPLES, with_fitted_lookup

    prof = with_fitted_lookup(_overhang_profile(MIN_REGIME_SAMPLES))
    assert "conv2d@overhang" in prof.fitted["lookup"]["models"]
    est = LookupTableModel(prof).fit()
    assert set(est.gp_fits_.values()) == {"stored"}
    fresh = LookupTableModel(prof, use_fitted=False).fit()
    over = ("conv2d", dict(h=2, w=2, cin=300, cout=200, k=7, s=1))
    assert est.predict([over])[0] == pytest.approx(fresh.predict([over])[0], rel=1e-6)


def test_a_gemms_output_channels_in_whole_pairs_of_tiles_are_flagged():
    """XNNPACK runs a GEMM (dense, 1x1 conv) whose outputs fill whole pairs of SIMD
    tiles through a kernel twice as wide (EPYC VM: 32 outputs faster than 20-28).
    The lookup gets a flag for it; a conv whose step is already two tiles (the
    indirect GEMM of a larger kernel) always runs the wide kernel and never gets it."""
    from latency_lab.predictors import featurize

    dense = [featurize("dense", dict(rows=27, cin=3261, cout=c), {}, 16, 1.0, {})
             for c in (24, 32, 48, 64)]
    conv1 = [featurize("conv2d", dict(h=8, w=8, cin=64, cout=c, k=1, s=1), {}, 16, 1.0, {})
             for c in (24, 32, 48, 64)]
    conv3 = [featurize("conv2d", dict(h=8, w=8, cin=64, cout=c, k=3, s=1), {}, 16, 1.0, {})
             for c in (24, 32, 48, 64)]
    for feats in (dense, conv1):
        differs = [i for i in range(len(feats[0]))
                   if [f[i] for f in feats] == [0.0, 1.0, 0.0, 1.0]]
        assert differs, feats
    for i in range(len(conv3[0])):
        assert [f[i] for f in conv3] != [0.0, 1.0, 0.0, 1.0]
    # without a channel tile (a GPU, a datasheet profile) there is no flag
    assert len(featurize("dense", dict(rows=2, cin=8, cout=32), {}, None, 1.0, {})) < len(dense[0])
