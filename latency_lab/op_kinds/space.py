"""Configuration spaces: every configuration an op kind can be asked to time, not only
the ones the application families use.

An op kind declares `space`, one `Dim` per key it samples (others follow, `derive`),
and `path_keys`, the discrete keys along which a runtime may switch kernel paths (a
depthwise conv's kernel size: XNNPACK has 3x3 and 5x5 depthwise microkernels; under
LiteRT on the EPYC VM a 6x6 one ran 13x slower per multiply-add than a 5x5). The table
plan draws a space-filling design from each space (`space_configs`, a Latin hypercube
in log coordinates with a cap on the work of one sample) and sweeps each path key
through all its values on a few spines (`spine_configs`); `kernel_paths` finds, in
measured samples, the values between which the time per unit of roofline work jumps,
and the lookup regressor gets the path a value belongs to as a feature.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Iterable, Sequence

__all__ = ["Dim", "Region", "token_region", "TOKENS", "TOKEN_WIDTH", "HEADS", "HEAD_DIM",
           "latin_hypercube", "kernel_paths", "kernel_paths_along", "PATH_JUMP"]


@dataclass(frozen=True)
class Dim:
    """The domain of one configuration key: integers `lo`..`hi` (drawn log-uniformly
    when `log`, else uniformly), or an explicit tuple of `choices` (ints or strs)."""

    lo: int = 1
    hi: int = 1
    log: bool = True
    choices: tuple = ()

    def values(self) -> tuple:
        """Every value of a discrete dimension (its choices, or lo..hi)."""
        return self.choices or tuple(range(self.lo, self.hi + 1))

    def at(self, u: float):
        """The value at quantile `u` in [0, 1)."""
        if self.choices:
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        if self.log:
            v = math.exp(math.log(self.lo) + u * (math.log(self.hi + 1) - math.log(self.lo)))
        else:
            v = self.lo + u * (self.hi + 1 - self.lo)
        return max(self.lo, min(self.hi, int(v)))

    def contains(self, v) -> bool:
        if self.choices:
            return v in self.choices
        return isinstance(v, int) and self.lo <= v <= self.hi


@dataclass(frozen=True)
class Region:
    """A part of an op kind's space where networks put their work although no family
    the table plan harvests does: no keras.applications model has attention, so a
    transformer's token-wise GEMMs, attention scores and patchify convs would otherwise
    only be met by the whole space's design, a few points spread over a space a
    thousand times larger. The plan draws a Latin hypercube in each region as in the
    whole space (`OpKind.region_configs`).

    dims: the drawn keys, each a `Dim` (keys of the op kind, or helper draws such as
        an attention's heads).
    ties: {key: (draws...)}: a key set to the product of other draws (a Q.K^T's
        output columns are its rows: {"n": ("m",)}; a softmax's rows are heads x
        queries: {"rows": ("heads", "cols")}). Draws that are not keys of the op kind
        are dropped after the ties are set.
    """

    dims: dict
    ties: dict = field(default_factory=dict)

    def draw(self, u: Sequence[float], keys: Sequence[str]) -> dict:
        """The configuration at point `u` (one quantile per dim, in sorted dim order),
        restricted to the op kind's `keys`."""
        drawn = {k: self.dims[k].at(x) for k, x in zip(sorted(self.dims), u)}
        for key, factors in self.ties.items():
            drawn[key] = math.prod(int(drawn[f]) for f in factors)
        return {k: v for k, v in drawn.items() if k in keys}


# Where transformers put their work: a (tokens, width) activation, heads of a head
# dimension. The ranges of issue 19's networks and the published ViT/DeiT, BERT,
# MobileViT and EfficientFormer shapes: 4-1024 tokens (a 32 px image in 8 px patches
# has 16, a text encoder up to 512, MobileViT's 2x2-pixel patches of a 64x64 map 1024
# per pixel position), widths 32-2048 (MLPs of 4x a 448-wide stream), 1-48 batched
# heads (MobileViT attends per pixel position: 4 x 12), head dims 8-128.
TOKENS = Dim(4, 1024)
TOKEN_WIDTH = Dim(32, 2048)
HEADS = Dim(1, 48)
HEAD_DIM = Dim(8, 128)


def token_region(rows: str = "rows", channels: str = "c", **dims: Dim) -> Region:
    """A transformer's (tokens, width) activations for an op kind whose rows are `rows`
    and channels `channels`, plus `dims` (an op's own keys, e.g. its function). For a
    kind of NHWC maps (h, w, c), rows="w": a (1, T, C) tensor runs as 1 x T x C."""
    return Region({rows: TOKENS, channels: TOKEN_WIDTH, **dims},
                  ties={"h": ()} if rows == "w" else {})


def latin_hypercube(n: int, dims: int, rng: random.Random) -> list[list[float]]:
    """`n` points in [0, 1)^dims, one in each of n strata per dimension."""
    cols = []
    for _ in range(dims):
        perm = list(range(n))
        rng.shuffle(perm)
        cols.append([(p + rng.random()) / n for p in perm])
    return [[cols[d][i] for d in range(dims)] for i in range(n)]


# A kernel path boundary: neighbouring values whose time per unit of roofline work
# differs by more than this factor (median over the spines that have both). Timing
# noise on the shared VM is a few percent; the switches seen on XNNPACK are 1.6-13x.
PATH_JUMP = 1.4


def kernel_paths(values_by_spine: Iterable[Sequence[tuple]],
                 jump: float = PATH_JUMP) -> list[tuple]:
    """Group the values of one discrete key into kernel paths.

    values_by_spine: per spine (samples equal in every other key), (value, log of
    time / roofline work) pairs. Neighbouring values (in sorted order, among those
    measured on some spine) belong to one path unless the median difference of their
    log efficiencies over the spines that have both exceeds log(jump). Returns the
    paths as tuples of values, in order; one path if nothing jumps or no spine has
    two values."""
    diffs: dict[tuple, list[float]] = {}
    seen: set = set()
    for spine in values_by_spine:
        pts = sorted(dict(spine).items())
        seen.update(v for v, _ in pts)
        for (va, ea), (vb, eb) in zip(pts, pts[1:]):
            diffs.setdefault((va, vb), []).append(eb - ea)
    values = sorted(seen)
    if not values:
        return []
    cut = math.log(jump)
    paths, current = [], [values[0]]
    for va, vb in zip(values, values[1:]):
        d = diffs.get((va, vb))
        if d and abs(sorted(d)[len(d) // 2]) > cut:
            paths.append(tuple(current))
            current = []
        current.append(vb)
    paths.append(tuple(current))
    return paths


def kernel_paths_along(key: str, configs: Sequence[dict], log_eff: Sequence[float],
                       jump: float = PATH_JUMP) -> list[tuple]:
    """`kernel_paths` of `key` in measured configurations and their log efficiencies:
    the spines are the configurations equal in every other key."""
    spines: dict[tuple, dict] = {}
    for cfg, e in zip(configs, log_eff):
        rest = tuple(sorted((k, v) for k, v in cfg.items() if k != key))
        spines.setdefault(rest, {})[cfg[key]] = float(e)
    return kernel_paths([list(sp.items()) for sp in spines.values()], jump)
