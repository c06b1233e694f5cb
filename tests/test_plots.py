"""latency_lab.plots: the roofline chart of a synthetic profile whose weight-streaming
curve has three cache plateaus above DRAM (ceilings drawn, ordered, labels apart)."""

import itertools

import pytest

from latency_lab.plots import plot_roofline, profile_cache_ceilings, roofline_figure
from latency_lab.profile import DeviceProfile, Sample

KIB = 2**10
CACHES = {"L1d": 64 * KIB, "L1i": 32 * KIB, "L2": 1024 * KIB, "L3": 16384 * KIB}
# weight_stream (n, c) streams 4 * n * c^2 bytes: 16 and 32 KiB (in L1d), 256 and 512
# KiB (L2), 4 and 8 MiB (L3), 64 MiB (DRAM).
STREAMS = {"L1d": [(1, 64), (2, 64)], "L2": [(1, 256), (2, 256)],
           "L3": [(1, 1024), (2, 1024)], "DRAM": [(16, 1024)]}
DRAM_GB_PER_S = 20.0


def sample(op, config, ms):
    return Sample(op=op, config=config, median_ms=ms, iqr_ms=0.0, repeats=3,
                  raw_ms=(ms,) * 3, unstable=False)


def synthetic_profile(gb_per_s: dict) -> DeviceProfile:
    samples = []
    for level, configs in STREAMS.items():
        for n, c in configs:
            nbytes = 4.0 * n * c * c
            samples.append(sample("weight_stream", {"n": n, "c": c},
                                  nbytes / (gb_per_s[level] * 1e9) * 1e3))
    samples += [sample("add", {"h": 8, "w": 8, "c": 16, "broadcast": False}, 0.0002),
                sample("dense", {"rows": 4, "cin": 64, "cout": 64}, 0.0004)]
    return DeviceProfile.create(
        device={"kind": "cpu", "name": "Synthetic CPU", "fingerprint": "0",
                "info": {"cpu": {"cache_bytes": CACHES}}},
        runtime={"name": "litert", "version": "0", "backend": "xnnpack", "device": "cpu",
                 "threads": 1, "dtype": "float32", "batch": 1},
        roofline={"compute_flops_per_s": {"dense": 200e9, "depthwise": 40e9,
                                          "elementwise": 30e9},
                  "memory_bytes_per_s": DRAM_GB_PER_S * 1e9, "precision": "fp32"},
        samples=samples)


SPREAD = {"L1d": 400.0, "L2": 200.0, "L3": 80.0, "DRAM": DRAM_GB_PER_S}
CROWDED = {"L1d": 30.0, "L2": 26.0, "L3": 23.0, "DRAM": DRAM_GB_PER_S}  # ~1.15x apart


@pytest.mark.parametrize("gb_per_s", [SPREAD, CROWDED], ids=["spread", "crowded"])
def test_cache_ceilings_are_drawn_ordered_and_their_labels_do_not_overlap(gb_per_s):
    prof = synthetic_profile(gb_per_s)
    caches = profile_cache_ceilings(prof)
    assert [c.level for c in caches] == ["L1d", "L2", "L3"]
    assert [c.bytes_per_s / 1e9 for c in caches] == pytest.approx(
        [gb_per_s["L1d"], gb_per_s["L2"], gb_per_s["L3"]])

    fig = roofline_figure(prof)
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    labels = {t.get_gid().split(":", 1)[1]: t for t in ax.texts
              if (t.get_gid() or "").startswith("ceiling-label:")}
    assert {"memory", "L1d", "L2", "L3", "dense"} <= set(labels)
    assert labels["L2"].get_text() == f"L2 {gb_per_s['L2']:.3g} GB/s"
    for (a, ta), (b, tb) in itertools.combinations(labels.items(), 2):
        assert not ta.get_window_extent(renderer).overlaps(
            tb.get_window_extent(renderer)), f"labels {a!r} and {b!r} overlap"
    # Each label sits on its own slope: at its x, a faster cache's line is higher.
    heights = [labels[k].xy[1] / labels[k].xy[0] for k in ("L1d", "L2", "L3", "memory")]
    assert heights == sorted(heights, reverse=True)
    ceilings_legend, samples_legend = ax.artists[0], ax.get_legend()
    assert not ceilings_legend.get_window_extent(renderer).overlaps(
        samples_legend.get_window_extent(renderer))
    legend_text = [t.get_text() for t in ceilings_legend.get_texts()]
    assert any(t.startswith("L1d") and "32 KiB" in t for t in legend_text)


def test_a_profile_without_a_curve_draws_no_cache_ceiling(tmp_path):
    prof = DeviceProfile.load(__import__("device_profiles").path("t4"))
    assert profile_cache_ceilings(prof) == []
    out = plot_roofline(prof, tmp_path / "r.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
