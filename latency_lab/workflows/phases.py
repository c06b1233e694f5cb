"""The whole loop in one call: learn a structure against a latency target, rebuild the
slim model, retrain it, then predict and measure it beside a uniformly width-scaled
baseline at the same target.

    task = digits_task()                       # or load_task("data.npz")
    model = digits_cnn(task.input_shape, task.classes)
    result = shrink(model, task, "out/profile.json", target_ms=0.05, out_dir="out/shrink")
    print(result.rows["learned"].measured_ms, result.rows["learned"].accuracy)

Phases (each a function of a `ShrinkRun`, each reported through ``on_event``):
  1. `pretrain` the model (skipped with ``pretrain_epochs=0``, e.g. a trained user model);
  2. `uniform_baseline` (built right after step 1, from the pretrained weights): the model
     scaled uniformly to the same target and retrained for as many epochs after
     pretraining as the learned model's weights had (``retrain_epochs``, plus
     ``learn_epochs`` with ``retrain_from="learned"``), so the two differ only in
     their structure and which channels they keep;
  3. `learn` a structure with ``LatencyRegularizer(profile, target_ms=...)`` in target
     mode (the strength adapts by dual ascent, `StrengthController`), exporting the
     structure to ``out_dir/learned_structure/`` as it goes;
  4. `snap_to_target`: `fit_to_target` scales the learned widths uniformly so the
     predicted latency meets the target (MorphNet's expand step), since a structure
     learned in a short run rarely lands exactly on it. With ``measure=True`` the
     snapped network is then timed on the profile's runtime and, if it misses the
     target by more than ``snap_tolerance``, snapped again to a goal corrected by
     target / measured (at most ``snap_rounds`` times), and the candidate measured
     closest to the target is kept: the profile's bias on this particular network is
     taken out, so learned and uniform models meet at the same measured latency;
  5. `rebuild_and_retrain`: `apply_structure` keeps the channels the regularizer found
     most important (its group vectors: |gamma|, kernel norms), their weights taken from
     the pretrained model (``retrain_from="pretrained"``, the default) or from the end
     of learning (``"learned"``). The L1 push of the learning phase shrinks the
     survivors too and leaves the channels that `fit_to_target` adds back dead, so
     restarting from the pretrained weights gives the retraining an undamaged start,
     the same start the uniform baseline gets;
  6. `measure_models`: accuracy on the validation split, predicted and measured latency of
     every model.

Data: `latency_lab.workflows.data`. Settings: `ShrinkConfig`. Report: ``out_dir`` gets
``slim.keras`` and the files of `write_report`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from latency_lab.workflows.config import ShrinkConfig
from latency_lab.workflows.data import Task
from latency_lab.workflows.models import full_structure
from latency_lab.workflows.report import ModelRow, ShrinkResult, write_report
from latency_lab.workflows.training import accuracy, loss_for, train
from latency_lab.errors import InvalidArgumentError

__all__ = ["ShrinkRun", "Learned", "shrink", "pretrain", "uniform_baseline", "learn",
           "snap_to_target", "rebuild_and_retrain", "measure_models", "probe_ms",
           "TRAINING_MODEL"]

EventHook = Callable[[str, dict], None]


def probe_ms(model, prof) -> float:
    """A quick timing of a snapped network, to re-aim the snap: the fastest repeat of 3
    short passes (the latency figure, as in `latency_lab.timing`)."""
    from latency_lab.runtimes import for_profile, measure_in_passes
    from latency_lab.timing import TimingConfig, pool_passes

    timing = TimingConfig.latency(repeats=20)
    (passes,) = measure_in_passes(for_profile(prof), [("probe", model)], timing).values()
    return pool_passes([m.raw_ms for m in passes]).min


@dataclasses.dataclass
class ShrinkRun:
    """What every phase shares: the model being shrunk (trained in place), the task,
    the loaded profile and the predictor it supports, the target, the settings, the
    event hook, and the snap goals found so far (one per snapped model)."""

    model: Any
    task: Task
    profile: Any  # a loaded DeviceProfile
    target_ms: float
    config: ShrinkConfig
    emit: EventHook
    out: Path | None = None
    goals: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def predictor(self) -> str:
        return "lookup" if self.profile.samples else "roofline"

    def predicted(self, m) -> float:
        from latency_lab.predict import predict_model

        return float(predict_model(m, self.profile, self.predictor).latency_ms)

    def epochs_callback(self, phase: str, epochs: int):
        """A Keras callback that emits ("epoch", {phase, epoch, epochs}) after each epoch."""
        import keras

        emit = self.emit

        class _Epochs(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                emit("epoch", {"phase": phase, "epoch": epoch + 1, "epochs": epochs})

        return _Epochs()

    def fit(self, model, phase: str, epochs: int) -> None:
        """`train` with the run's rate, batch size and seed, reporting epochs as ``phase``."""
        c = self.config
        train(model, self.task, epochs, learning_rate=c.learning_rate,
              batch_size=c.batch_size, callbacks=[self.epochs_callback(phase, epochs)],
              seed=c.seed)


@dataclasses.dataclass
class Learned:
    """The outcome of the learning phase: alive counts per conv/dense layer, their
    predicted latency, per-channel importance (|regularization vector|) for
    `apply_structure`, and the controller's strength history."""

    structure: dict[str, int]
    predicted_ms: float
    importance: dict[str, np.ndarray]
    strength_history: list[tuple[int, float, float]]


# ----------------------------------------------------------------------- phases


def pretrain(run: ShrinkRun, full: dict[str, int], full_ms: float) -> tuple[ModelRow, list]:
    """Phase 1: train the model for ``pretrain_epochs``; its row and a copy of its weights."""
    epochs = run.config.pretrain_epochs
    run.emit("pretrain", {"epochs": epochs})
    run.fit(run.model, "pretrain", epochs)
    row = ModelRow("full", full, accuracy(run.model, run.task), full_ms,
                   params=int(run.model.count_params()))
    return row, [w.copy() for w in run.model.get_weights()]


def snap_to_target(run: ShrinkRun, name: str, structure: dict) -> tuple[float, dict]:
    """Phase 4 (also used by the baseline): `fit_to_target`, then (measuring) re-aim by
    target / measured up to ``snap_rounds`` times. Every candidate is measured and the
    one measured closest to the target is kept (a re-aim can overshoot: channel counts
    are whole). Records the goal kept in ``run.goals[name]``; returns (factor, snapped)."""
    from regularizers.apply import apply_structure, fit_to_target

    c, prof, target_ms = run.config, run.profile, run.target_ms
    goal = target_ms
    memo: dict = {}  # predictions by scaled structure, shared by the re-aims
    factor, snapped, _ = fit_to_target(run.model, structure, prof, goal,
                                       predictor=run.predictor, align=c.align, memo=memo)
    tried: list[tuple[float, float, dict, float]] = []  # (|miss|, factor, snapped, goal)
    for round_index in range(c.snap_rounds + 1 if c.measure else 0):
        probe = apply_structure(run.model, snapped, copy_weights=False, align=c.align)
        measured = probe_ms(probe, prof)
        tried.append((abs(measured / target_ms - 1), factor, snapped, goal))
        if tried[-1][0] <= c.snap_tolerance or round_index == c.snap_rounds:
            break
        new_goal = goal * target_ms / measured
        try:
            factor, snapped, _ = fit_to_target(run.model, structure, prof, new_goal,
                                               predictor=run.predictor, align=c.align,
                                               memo=memo)
        except ValueError as exc:  # re-aimed below the smallest structure
            run.emit("snap_limit", {"model": name, "goal_ms": new_goal, "reason": str(exc)})
            break
        goal = new_goal
    if tried:
        _, factor, snapped, goal = min(tried, key=lambda t: t[0])
    run.goals[name] = goal
    return factor, snapped


def uniform_baseline(run: ShrinkRun, full: dict[str, int]) -> tuple[Any, ModelRow]:
    """Phase 2: the full structure snapped to the target (uniform width scaling), built
    from the current (pretrained) weights and retrained as long as the learned model's
    weights are trained after pretraining."""
    from regularizers.apply import apply_structure

    c = run.config
    epochs = c.retrain_epochs + (c.learn_epochs if c.retrain_from == "learned" else 0)
    run.emit("baseline", {"epochs": epochs})
    _, structure = snap_to_target(run, "uniform", full)
    uniform = apply_structure(run.model, structure, copy_weights=True, align=c.align)
    run.fit(uniform, "baseline", epochs)
    row = ModelRow("uniform", structure, accuracy(uniform, run.task), run.predicted(uniform),
                   params=int(uniform.count_params()))
    return uniform, row


def _gated(model, config: ShrinkConfig):
    """The model with a `ProbabilisticGate` after every conv/dense block, including the
    linear ones before an Add (MobileNetV2's projections), so every group has gates."""
    from regularizers.gates import insert_gates

    return insert_gates(model, after=("activation", "linear"), seed=config.seed)


# algorithm -> the model its regularizer trains, when that is not the model itself. It
# shares the model's layers and weights (its gated attention layers' weights are copied
# back after learning), so training it trains the model; the structure
# it learns names the model's conv/dense layers, and everything after learning (snap,
# rebuild, measure) works on the model, not on this copy.
TRAINING_MODEL = {"logistic_sigmoid": _gated}


def learn(run: ShrinkRun) -> Learned:
    """Phase 3: train the model with a `LatencyRegularizer` in target mode (constant
    learning rate, strength by `StrengthController`), exporting structures to
    ``out/learned_structure/`` as it goes. An algorithm listed in `TRAINING_MODEL`
    trains that copy of the model (logistic_sigmoid: with gates)."""
    from regularizers.callbacks import StrengthController, StructureLogger
    from regularizers.latency import LatencyRegularizer

    c = run.config
    prepare = TRAINING_MODEL.get(c.algorithm)
    model = prepare(run.model, c) if prepare is not None else run.model
    run.emit("learn", {"epochs": c.learn_epochs, "target_ms": run.target_ms})
    reg = LatencyRegularizer(run.profile, model=model, algorithm=c.algorithm,
                             threshold=c.threshold, target_ms=run.target_ms,
                             predictor=run.predictor)
    steps = c.learn_epochs * math.ceil(len(run.task.x_train) / c.batch_size)
    controller = StrengthController(reg, anneal_steps=int(0.6 * steps))
    callbacks = [controller, run.epochs_callback("learn", c.learn_epochs)]
    if run.out is not None:
        callbacks.append(StructureLogger(reg, export_dir=run.out / "learned_structure",
                                         every_n_steps=50))
    train(model, run.task, c.learn_epochs, loss=reg.wrap_loss(loss_for(model)),
          learning_rate=c.learning_rate, batch_size=c.batch_size, callbacks=callbacks,
          seed=c.seed, cosine=False)
    if model is not run.model:
        from regularizers.gates import copy_back_attention

        copy_back_attention(model, run.model)
    structure = reg.get_alive_counts()
    predicted_ms = float(reg.get_cost())
    importance = {name: np.abs(np.asarray(v, dtype=np.float64))
                  for name, v in reg.get_regularization_vectors().items()}
    return Learned(structure, predicted_ms, importance, list(controller.history))


def rebuild_and_retrain(run: ShrinkRun, structure: dict, importance: dict,
                        pretrained_weights: list) -> tuple[Any, ModelRow]:
    """Phase 5: `apply_structure` keeping the most important channels, from the
    pretrained weights (``retrain_from="pretrained"``: the model gets them back) or the
    learned ones, then retrain for ``retrain_epochs``."""
    from regularizers.apply import apply_structure

    c = run.config
    run.emit("retrain", {"epochs": c.retrain_epochs, "from": c.retrain_from})
    if c.retrain_from == "pretrained":
        run.model.set_weights(pretrained_weights)
    slim = apply_structure(run.model, structure, copy_weights=True, align=c.align,
                           importance=importance)
    run.fit(slim, "retrain", c.retrain_epochs)
    row = ModelRow("learned", structure, accuracy(slim, run.task), run.predicted(slim),
                   params=int(slim.count_params()))
    return slim, row


def measure_models(run: ShrinkRun, models: dict[str, Any], rows: dict[str, ModelRow]) -> None:
    """Phase 6: time every model on the profile's runtime in interleaved passes (so the
    models compared meet the same machine conditions); fills the rows' measured
    (fastest), median and IQR figures in place."""
    from latency_lab.runtimes import for_profile, measure_in_passes
    from latency_lab.timing import TimingConfig, pool_passes

    run.emit("measure", {"models": list(models)})
    timing = TimingConfig.latency(repeats=40, warmup_runs=3)
    timed = measure_in_passes(for_profile(run.profile), list(models.items()), timing,
                              passes=run.config.measure_passes, seed=run.config.seed)
    for name, passes in timed.items():
        pooled = pool_passes([m.raw_ms for m in passes])
        rows[name].measured_ms, rows[name].iqr_ms = pooled.min, pooled.iqr
        rows[name].median_ms = pooled.median


# ------------------------------------------------------------------------- flow


def shrink(model, task: Task, profile: Any, target_ms: float, *, algorithm: str = "gamma",
           pretrain_epochs: int = 6, learn_epochs: int = 8, retrain_epochs: int = 6,
           learning_rate: float = 5e-3, batch_size: int = 32, threshold: float = 1e-2,
           align: int = 1, baseline: bool = True, measure: bool = True, seed: int = 0,
           snap_rounds: int = 2, snap_tolerance: float = 0.05,
           retrain_from: str = "pretrained", measure_passes: int = 3,
           config: ShrinkConfig | None = None,
           out_dir: str | os.PathLike | None = None,
           on_event: EventHook | None = None) -> ShrinkResult:
    """Learn, snap, apply, retrain; compare with uniform width scaling. See the module
    docstring; the settings are `ShrinkConfig`'s fields (or pass ``config=`` instead of
    them). ``model`` is modified in place by the pre-training and learning phases (and
    holds its pretrained weights again at the end with ``retrain_from="pretrained"``).

    ``on_event(name, info)`` is called at each phase ("pretrain", "learn", "snap",
    "retrain", "baseline", "measure", "done"), when a measured re-aim of the snap would
    go below the smallest structure ("snap_limit": the candidates measured so far are
    kept), and after every epoch ("epoch" with ``phase``, ``epoch``, ``epochs``), for
    progress displays."""
    from latency_lab.profile import load_profile
    from latency_lab.runtimes import for_profile

    settings = dict(algorithm=algorithm, pretrain_epochs=pretrain_epochs,
                    learn_epochs=learn_epochs, retrain_epochs=retrain_epochs,
                    learning_rate=learning_rate, batch_size=batch_size, threshold=threshold,
                    align=align, baseline=baseline, measure=measure, seed=seed,
                    snap_rounds=snap_rounds, snap_tolerance=snap_tolerance,
                    retrain_from=retrain_from, measure_passes=measure_passes)
    if config is None:
        config = ShrinkConfig(**settings)
    elif not isinstance(config, ShrinkConfig):
        raise InvalidArgumentError(f"shrink: `config` must be a ShrinkConfig, received "
                         f"{type(config).__name__}; build one with ShrinkConfig(...).")
    else:
        changed = [f.name for f in dataclasses.fields(ShrinkConfig)
                   if settings[f.name] != f.default]
        if changed:
            raise InvalidArgumentError(f"shrink: pass the settings either as `config` or as keywords, "
                             f"not both; received config= and {', '.join(changed)}. Use "
                             "dataclasses.replace(config, ...) to change a config.")
    if not (isinstance(target_ms, (int, float)) and math.isfinite(target_ms) and target_ms > 0):
        raise InvalidArgumentError(f"shrink: `target_ms` must be a finite number > 0, received "
                         f"{target_ms!r}.")
    prof = load_profile(profile)
    for_profile(prof)  # a runtime that cannot run as profiled fails now, not after training
    run = ShrinkRun(model, task, prof, float(target_ms), config,
                    on_event or (lambda name, info: None),
                    Path(out_dir) if out_dir is not None else None)

    full = full_structure(model)
    full_ms = run.predicted(model)
    if target_ms >= full_ms:
        raise InvalidArgumentError(
            f"shrink: target {target_ms:g} ms is not below the full model's predicted "
            f"{full_ms:.4g} ms on {prof.device_name!r}; choose a smaller target_ms.")
    full_row, pretrained_weights = pretrain(run, full, full_ms)
    rows = {"full": full_row}
    models = {"full": model}
    # the uniform baseline, from the pretrained weights (before learning changes them)
    uniform = None
    if config.baseline:
        uniform, rows["uniform"] = uniform_baseline(run, full)
    learned = learn(run)
    run.emit("snap", {"learned_ms": learned.predicted_ms})
    factor, structure = snap_to_target(run, "learned", learned.structure)
    slim, rows["learned"] = rebuild_and_retrain(run, structure, learned.importance,
                                                pretrained_weights)
    models["learned"] = slim
    if uniform is not None:
        models["uniform"] = uniform
    rows = {k: rows[k] for k in models}  # report order: full, learned, uniform
    if config.measure:
        measure_models(run, models, rows)
    result = ShrinkResult(
        target_ms=float(target_ms),
        profile=str(profile) if not hasattr(profile, "device_name") else prof.device_name,
        runtime=dict(prof.runtime), algorithm=config.algorithm, rows=rows,
        learned_raw=learned.structure, learned_raw_ms=learned.predicted_ms,
        snap_factor=float(factor), snap_goal_ms=run.goals,
        strength_history=learned.strength_history, retrain_from=config.retrain_from)
    if run.out is not None:
        run.out.mkdir(parents=True, exist_ok=True)
        slim_path = run.out / "slim.keras"
        slim.save(slim_path)
        result.files.append(str(slim_path))
        result.files += [str(p) for p in write_report(result, run.out)]
    run.emit("done", {"result": result})
    return result
