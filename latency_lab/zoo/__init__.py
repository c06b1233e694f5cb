"""The held-out validation set: network families that are not in keras.applications
and that no profile plan, feature or fit ever sees, written here from their papers'
descriptions and drawn at random widths, kernel sizes and input sizes the way
nn-Meter's benchmark generator samples families (per-stage channel scale 0.2-1.8,
the family's kernel choices, fixed seeds).

A predictor tuned while looking at the development set (keras.applications families,
`scripts/validate_benchmark.py`) is judged here on networks it could not have been
tuned to. Held out means held out: nothing in `latency_lab.bench` or the predictors
imports this package (tests/test_architecture.py keeps it so).

    model = build("resnet18", sample("resnet18", seed=3))
    for label, family, make in heldout_set():   # 40 networks, reproducible
        model = make()
"""

from __future__ import annotations

from typing import Any, Callable

from latency_lab.zoo.blocks import Family, build_network, draw_set, sample_config
from latency_lab.zoo.classic import alexnet, sample_alexnet, sample_vgg, vgg
from latency_lab.zoo.googlenet import googlenet, sample_googlenet
from latency_lab.zoo.mobile import mnasnet, proxylessnas, sample_mnasnet, sample_proxylessnas
from latency_lab.zoo.nasbench201 import nasbench201, sample_nasbench201
from latency_lab.zoo.resnet import resnet18, resnet34, sample_resnet18, sample_resnet34
from latency_lab.zoo.shufflenet import sample_shufflenet_v2, shufflenet_v2
from latency_lab.zoo.squeezenet import sample_squeezenet, squeezenet

__all__ = ["Family", "FAMILIES", "sample", "build", "heldout_set", "DEFAULT_PER_FAMILY",
           "alexnet", "googlenet", "mnasnet", "nasbench201", "proxylessnas", "resnet18",
           "resnet34", "shufflenet_v2", "squeezenet", "vgg"]


FAMILIES: dict[str, Family] = {
    "shufflenet_v2": Family(shufflenet_v2, sample_shufflenet_v2),
    "squeezenet": Family(squeezenet, sample_squeezenet),
    "vgg": Family(vgg, sample_vgg),
    "alexnet": Family(alexnet, sample_alexnet),
    "googlenet": Family(googlenet, sample_googlenet),
    "mnasnet": Family(mnasnet, sample_mnasnet),
    "proxylessnas": Family(proxylessnas, sample_proxylessnas),
    "resnet18": Family(resnet18, sample_resnet18),
    "resnet34": Family(resnet34, sample_resnet34),
    "nasbench201": Family(nasbench201, sample_nasbench201),
}
DEFAULT_PER_FAMILY = 4


def sample(family: str, seed: int) -> dict:
    """The keyword arguments of one randomized `family` network (`blocks.sample_config`:
    seeded with the family name and the seed)."""
    return sample_config(FAMILIES, family, seed)


def build(family: str, config: dict):
    """The `family` network of `config` (from `sample`, or written by hand)."""
    return build_network(FAMILIES, family, config)


def heldout_set(n_per_family: int = DEFAULT_PER_FAMILY, seed: int = 0,
                families=None) -> list[tuple[str, str, Callable[[], Any]]]:
    """(label, family, factory) of `n_per_family` sampled networks of each family
    (all of FAMILIES by default; 10 x 4 = 40 networks), seeds seed*1000 + i.
    factory() builds the model: nothing is built until asked, so a caller keeps
    only the networks it measures in memory. Labels name family, seed and input size."""
    return draw_set(FAMILIES, families, n_per_family, lambda i: seed * 1000 + i,
                    lambda name, s, config: f"{name}-s{s}-{config['input_size']}px")
