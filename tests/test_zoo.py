"""latency_lab.zoo: the held-out families build at their sampled configurations, the
draws are reproducible, the default set is large enough, and every family converts
to LiteRT with builtin kernels only (one small instance each)."""

from __future__ import annotations

import numpy as np
import pytest

from latency_lab import zoo
from latency_lab.errors import InvalidArgumentError
from latency_lab.zoo import FAMILIES, build, heldout_set, sample
from latency_lab.zoo.blocks import SCALE_RANGE, scaled_channels
from latency_lab.zoo.nasbench201 import live_edges

FAMILY_NAMES = sorted(FAMILIES)


def n_classes(family: str) -> int:
    return 10 if family == "nasbench201" else 1000


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_family_builds_at_its_sampled_config(family):
    cfg = sample(family, 7)
    model = build(family, cfg)
    assert model.input.shape == (None, cfg["input_size"], cfg["input_size"], 3)
    assert model.output.shape == (None, n_classes(family))
    assert not [l for l in model.layers if type(l).__name__ == "Lambda"]


@pytest.mark.backend_independent
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_sampling_is_deterministic_per_seed_and_varies_across_seeds(family):
    assert sample(family, 3) == sample(family, 3)
    draws = [sample(family, s) for s in range(6)]
    assert len({repr(d) for d in draws}) == 6


@pytest.mark.backend_independent
def test_a_seed_draws_differently_for_each_family():
    # Seeding by family name: vgg and alexnet draw the same number of scales and
    # would otherwise share their head widths at every seed.
    assert sample("vgg", 0)["head_units"] != sample("alexnet", 0)["head_units"]


@pytest.mark.backend_independent
def test_sampled_configs_stay_in_the_documented_ranges():
    lo, hi = SCALE_RANGE
    for s in range(20):
        resnet = sample("resnet18", s)
        for got, base in zip(resnet["stage_channels"], (64, 128, 256, 512)):
            assert scaled_channels(base, lo) <= got <= scaled_channels(base, hi)
        assert 64 <= resnet["input_size"] <= 160
        mnas = sample("mnasnet", s)
        assert set(mnas["stage_kernels"]) <= {3, 5, 7, 9}
        assert set(mnas["stage_expansions"]) <= {3, 6}
        assert 96 <= mnas["input_size"] <= 192
        shuffle = sample("shufflenet_v2", s)
        assert all(c % 8 == 0 for c in shuffle["stage_channels"])
        assert set(shuffle["stage_kernels"]) <= {3, 5, 7}
        for fam in ("vgg", "alexnet"):
            assert 64 <= sample(fam, s)["input_size"] <= 112
        assert live_edges(sample("nasbench201", s)["cell_ops"]) is not None


@pytest.mark.backend_independent
def test_scaled_channels_rounds_to_a_multiple_of_eight_never_below_eight():
    assert scaled_channels(64, 1.0) == 64
    assert scaled_channels(116, 1.0) == 120  # 14.5 eights round up
    assert scaled_channels(24, 0.2) == 8
    assert scaled_channels(512, 1.8) == 920


@pytest.mark.backend_independent
def test_default_heldout_set_is_reproducible_and_large_enough():
    first = heldout_set()
    second = heldout_set()
    assert len(first) >= 30
    assert [label for label, _, _ in first] == [label for label, _, _ in second]
    assert len({label for label, _, _ in first}) == len(first)
    assert {family for _, family, _ in first} == set(FAMILIES)
    assert [label for label, _, _ in heldout_set(seed=1)] != [label for label, _, _ in first]


def test_heldout_factory_builds_the_labelled_network():
    label, family, make = heldout_set(1, families=["nasbench201"])[0]
    model = make()
    size = int(label.rsplit("-", 1)[1].removesuffix("px"))
    assert family == "nasbench201"
    assert model.input.shape[1] == size


def test_nasbench201_cell_ops_shape_the_graph():
    convs = lambda m: sum(type(l).__name__ == "Conv2D" for l in m.layers)  # noqa: E731
    all_conv = zoo.nasbench201(("nor_conv_3x3",) * 6, (8, 8, 8), 32)
    # six convs per cell x 15 cells + stem + 2 reductions x 3 convs
    assert convs(all_conv) == 6 * 15 + 1 + 2 * 3
    # only skip 0->3 is live: cells are identities, only stem and reductions convolve
    identity = zoo.nasbench201(("none",) * 3 + ("skip_connect", "none", "none"), (8, 8, 8), 32)
    assert convs(identity) == 1 + 2 * 3
    # node 1 is dead (0->1 none), so 1->2 and 1->3 carry nothing
    assert live_edges(["none", "nor_conv_1x1", "nor_conv_3x3", "none", "avg_pool_3x3",
                       "skip_connect"]) == [(2, 0, "nor_conv_1x1"), (3, 2, "skip_connect")]


def test_shufflenet_shuffles_channels_without_lambda_layers():
    model = zoo.shufflenet_v2((16, 32, 64), (1, 2, 1), (3, 5, 7), 8, 64, 64)
    kinds = {type(l).__name__ for l in model.layers}
    assert {"Reshape", "Permute", "Concatenate"} <= kinds and "Lambda" not in kinds
    # the shuffle interleaves the two halves: channel i of each half side by side
    from latency_lab.zoo.shufflenet import channel_shuffle
    import keras

    inp = keras.Input((1, 1, 6))
    shuffled = keras.Model(inp, channel_shuffle(inp, 2, "t"))
    out = np.asarray(shuffled(np.arange(6, dtype="float32").reshape(1, 1, 1, 6)))
    np.testing.assert_array_equal(out.ravel(), [0, 3, 1, 4, 2, 5])


def test_resnet_depths_are_the_papers():
    def blocks(m):
        return sum(l.name.endswith("_add") for l in m.layers)

    assert blocks(zoo.resnet18((8, 8, 8, 8), 8, 32)) == 8
    assert blocks(zoo.resnet34((8, 8, 8, 8), 8, 32)) == 16


def test_vgg_and_alexnet_end_in_flatten_and_dense_heads():
    for model in (zoo.vgg((8,) * 5, (1,) * 5, (3,) * 5, (96, 80), 64),
                  zoo.alexnet((8,) * 5, (11, 5, 3, 3, 3), (96, 80), 64)):
        dense = [l for l in model.layers if type(l).__name__ == "Dense"]
        assert [d.units for d in dense] == [96, 80, 1000]
        assert any(type(l).__name__ == "Flatten" for l in model.layers)


BAD = [
    ("resnet18", {"stage_channels": (64, 128, 256)}, "stage_channels"),
    ("resnet18", {"stage_channels": (64, 0, 256, 512)}, "stage_channels[1]"),
    ("resnet34", {"input_size": 16}, "input_size"),
    ("vgg", {"stage_kernels": (3, 3, 3, 3, 4)}, "stage_kernels[4]"),
    ("alexnet", {"conv_kernels": (3, 5, 3, 3, 3)}, "conv_kernels"),
    ("shufflenet_v2", {"stage_channels": (16, 33, 64)}, "stage_channels"),
    ("shufflenet_v2", {"stage_kernels": (3, 9, 3)}, "stage_kernels[1]"),
    ("squeezenet", {"stem_channels": 2.5}, "stem_channels"),
    ("googlenet", {"module_channels": ((8,) * 6,) * 8}, "module_channels"),
    ("mnasnet", {"stage_expansions": (6, 6, 6, 6, 6, 4)}, "stage_expansions[5]"),
    ("proxylessnas", {"block_kernels": ((3,),) * 5 + ((3, 3),),
                      "block_expansions": ((6,),) * 5 + ((6, 6),)}, "block_kernels[5]"),
    ("proxylessnas", {"block_kernels": ((3,),) * 6, "block_expansions": ((6,),) * 6 + ((6,),)},
     "block_expansions"),
    ("nasbench201", {"cell_ops": ("none",) * 6}, "cell_ops"),
    ("nasbench201", {"cell_ops": ("conv",) * 6}, "cell_ops[0]"),
]


@pytest.mark.backend_independent
@pytest.mark.parametrize("family,kwargs,arg", BAD, ids=[f"{f}-{a}" for f, _, a in BAD])
def test_bad_arguments_name_the_argument(family, kwargs, arg):
    with pytest.raises(InvalidArgumentError, match=arg.replace("[", r"\[")):
        FAMILIES[family].builder(**kwargs)


@pytest.mark.backend_independent
@pytest.mark.parametrize("call,arg", [
    (lambda: sample("lenet", 0), "family"),
    (lambda: sample("vgg", "0"), "seed"),
    (lambda: build("vgg", [1]), "config"),
    (lambda: heldout_set(0), "n_per_family"),
    (lambda: heldout_set(1, families=["inception_v3"]), "family"),
])
def test_bad_registry_arguments_name_the_argument(call, arg):
    with pytest.raises(InvalidArgumentError, match=arg):
        call()


def small_config(family: str) -> dict:
    """The family's seed-0 draw (kernels, depths, ops) at a quarter of its widths and
    a small input: the converter spends its time on the weights' bytes (a 45M-parameter
    ResNet-34 took 23 s), not on the layers this test is about."""
    def quarter(v):
        return [quarter(x) for x in v] if isinstance(v, list) else max(8, v // 32 * 8)

    cfg = {k: quarter(v) if k.endswith(("channels", "units")) else v
           for k, v in sample(family, 0).items()}
    cfg["input_size"] = {"nasbench201": 32, "alexnet": 64, "vgg": 64}.get(family, 96)
    return cfg


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_family_converts_to_litert_with_builtin_kernels(family):
    from latency_lab.convert import convert_keras_model
    from latency_lab.kernels.litert import kernels_from_bytes
    from latency_lab.runtimes.litert import interpreter

    model = build(family, small_config(family))
    blob = convert_keras_model(model)
    ops = {k.op for k in kernels_from_bytes(blob)}
    assert not [op for op in ops if "FLEX" in op.upper() or "CUSTOM" in op.upper()], ops
    if family == "shufflenet_v2":
        assert "TRANSPOSE" in ops
    it = interpreter(blob, threads=1)
    it.allocate_tensors()
    (out,) = it.get_output_details()
    assert tuple(out["shape"]) == (1, n_classes(family))
