"""The settings of one shrink run (`ShrinkConfig`), checked when it is made: a bad value
raises ``InvalidArgumentError`` (a ValueError) naming the field, what it received, and what to pass instead.

`shrink(model, task, profile, target_ms, **settings)` builds one from its keywords;
``ShrinkConfig(**settings)`` checks a set of settings without running anything.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from latency_lab.errors import InvalidArgumentError

__all__ = ["ShrinkConfig", "ALGORITHMS", "RETRAIN_FROM"]

# logistic_sigmoid trains a gated copy of the model (`phases.learn`); the gates are not
# part of the model that is snapped and rebuilt, so no slim model carries them.
ALGORITHMS = ("gamma", "group_lasso", "logistic_sigmoid")
RETRAIN_FROM = ("pretrained", "learned")


@dataclasses.dataclass(frozen=True)
class ShrinkConfig:
    """How `shrink` trains, snaps and measures (see `latency_lab.workflows.phases`).

    algorithm: the regularizer's algorithm, ``"gamma"`` (BN |gamma|, the default),
        ``"group_lasso"`` (kernel norms) or ``"logistic_sigmoid"`` (FiGS gates, learned
        on a gated copy of the model and left out of the slim one).
    pretrain_epochs, learn_epochs, retrain_epochs: epochs of each training phase (0
        skips it; ``pretrain_epochs=0`` for an already trained model).
    learning_rate, batch_size: Adam's rate and the batch size of every phase.
    threshold: the regularizer's alive threshold.
    align: round every learned / snapped channel count up to a multiple of this.
    baseline: also build, retrain and measure the uniformly width-scaled model.
    measure: time the models (and re-aim the snap) on the profile's runtime.
    seed: seeds every training phase and the interleaving of the measurement passes.
    snap_rounds, snap_tolerance: at most this many measured re-aims of a snapped
        network that misses the target by more than this fraction.
    retrain_from: ``"pretrained"`` (default) or ``"learned"``: the weights the slim
        model starts its retraining from.
    measure_passes: interleaved timing passes of the final measurement.
    """

    algorithm: str = "gamma"
    pretrain_epochs: int = 6
    learn_epochs: int = 8
    retrain_epochs: int = 6
    learning_rate: float = 5e-3
    batch_size: int = 32
    threshold: float = 1e-2
    align: int = 1
    baseline: bool = True
    measure: bool = True
    seed: int = 0
    snap_rounds: int = 2
    snap_tolerance: float = 0.05
    retrain_from: str = "pretrained"
    measure_passes: int = 3

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise InvalidArgumentError(
                f"shrink: `algorithm` must be one of {', '.join(map(repr, ALGORITHMS))}, "
                f"received {self.algorithm!r}.")
        if self.retrain_from not in RETRAIN_FROM:
            raise InvalidArgumentError("shrink: `retrain_from` must be 'pretrained' or 'learned', "
                             f"received {self.retrain_from!r}.")
        for name in ("pretrain_epochs", "learn_epochs", "retrain_epochs", "snap_rounds", "seed"):
            _check_int(name, getattr(self, name), minimum=0)
        for name in ("batch_size", "align", "measure_passes"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_number("learning_rate", self.learning_rate, positive=True, example="5e-3")
        _check_number("threshold", self.threshold, positive=False, example="1e-2")
        _check_number("snap_tolerance", self.snap_tolerance, positive=False, example="0.05")
        for name in ("baseline", "measure"):
            if not isinstance(getattr(self, name), (bool, int)):
                raise InvalidArgumentError(f"shrink: `{name}` must be True or False, received "
                                 f"{getattr(self, name)!r}.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_int(name: str, value, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InvalidArgumentError(f"shrink: `{name}` must be an integer >= {minimum}, received "
                         f"{value!r}; pass e.g. {name}={max(minimum, 1)}.")


def _check_number(name: str, value, *, positive: bool, example: str) -> None:
    ok = (not isinstance(value, bool) and isinstance(value, numbers.Real)
          and math.isfinite(value) and (value > 0 if positive else value >= 0))
    if not ok:
        raise InvalidArgumentError(f"shrink: `{name}` must be a finite number {'>' if positive else '>='} "
                         f"0, received {value!r}; pass e.g. {name}={example}.")
