"""The whole loop in one call: learn a structure against a latency target, rebuild the
slim model, retrain it, then predict and measure it beside a uniformly width-scaled
baseline at the same target.

    task = digits_task()                       # or load_task("data.npz")
    model = digits_cnn(task.input_shape, task.classes)
    result = shrink(model, task, "out/profile.json", target_ms=0.05, out_dir="out/shrink")
    print(result.rows["learned"].measured_ms, result.rows["learned"].accuracy)

Steps (each reported through ``on_event``):
  1. pretrain the model (skipped with ``pretrain_epochs=0``, e.g. a trained user model);
  2. learn a structure with ``LatencyRegularizer(profile, target_ms=...)`` in target mode
     (the strength adapts by dual ascent, `StrengthController`), exporting the structure
     to ``out_dir/learned_structure/`` as it goes;
  3. snap it to the target: `fit_to_target` scales the learned widths uniformly so the
     predicted latency meets the target (MorphNet's expand step), since a structure
     learned in a short run rarely lands exactly on it. With ``measure=True`` the
     snapped network is then timed on the profile's runtime and, if it misses the
     target by more than ``snap_tolerance``, snapped again to a goal corrected by
     target / measured (at most ``snap_rounds`` times), and the candidate measured
     closest to the target is kept: the profile's bias on this particular network is
     taken out, so learned and uniform models meet at the same measured latency;
  4. `apply_structure` and retrain: the channels to keep are the ones the regularizer
     found most important (its group vectors: |gamma|, kernel norms), their weights are
     taken from the pretrained model (``retrain_from="pretrained"``, the default) or
     from the end of learning (``"learned"``). The L1 push of the learning phase
     shrinks the survivors too and leaves the channels that `fit_to_target` adds back
     dead, so restarting from the pretrained weights gives the retraining an
     undamaged start, the same start the uniform baseline gets;
  5. the baseline (built right after step 1, from the pretrained weights): the model
     scaled uniformly to the same target and retrained for as many epochs after
     pretraining as the learned model's weights had (``retrain_epochs``, plus
     ``learn_epochs`` with ``retrain_from="learned"``), so the two differ only in
     their structure and which channels they keep;
  6. accuracy on the validation split, predicted and measured latency of every model.

Data: scikit-learn's digits (shipped with the package, no download) up-sampled to
``image_size``, or a user's ``.npz`` with ``x_train, y_train`` and ``x_val, y_val`` (or
``x_test, y_test``); labels are class indices.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from latency_lab.errors import LatencyLabError

__all__ = ["Task", "ModelRow", "ShrinkResult", "digits_task", "load_task", "digits_cnn",
           "shrink", "train", "accuracy", "full_structure", "write_report"]


# ------------------------------------------------------------------------ data


@dataclasses.dataclass
class Task:
    """A classification data set: arrays in NHWC float32, labels as class indices."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max())) + 1


def digits_task(image_size: int = 32, seed: int = 0, val_fraction: float = 0.25, *,
                digit_size: int | None = None, noise: float = 0.0, copies: int = 1) -> Task:
    """scikit-learn's 8x8 digits, up-sampled (nearest) so that the network's latency is
    large enough to measure and to shape. Stratified split.

    Harder variants (plain digits are nearly separable even by a tiny network, which
    hides the difference between structures): ``digit_size < image_size`` pastes each
    digit at a random place on the canvas, ``noise`` adds Gaussian noise of that
    standard deviation, ``copies`` draws that many placements per digit (the split is
    made before, so no digit is in both halves)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digit_size = image_size if digit_size is None else digit_size
    if digit_size < 8 or digit_size % 8 or digit_size > image_size:
        raise ValueError(f"digits_task: `digit_size` must be a multiple of 8 and at most "
                         f"image_size={image_size}, received {digit_size!r}.")
    if copies < 1 or noise < 0:
        raise ValueError(f"digits_task: need copies >= 1 and noise >= 0, received "
                         f"copies={copies!r}, noise={noise!r}.")
    d = load_digits()
    rep = digit_size // 8
    glyphs = np.kron((d.images / 16.0).astype("float32"), np.ones((1, rep, rep), "float32"))
    gtr, gva, ytr, yva = train_test_split(glyphs, d.target.astype("int64"),
                                          test_size=val_fraction, random_state=seed,
                                          stratify=d.target)
    rng = np.random.default_rng(seed)

    def render(g: np.ndarray, y: np.ndarray):
        g, y = np.repeat(g, copies, axis=0), np.repeat(y, copies)
        x = np.zeros((len(g), image_size, image_size), "float32")
        span = image_size - digit_size + 1
        rows, cols = rng.integers(0, span, len(g)), rng.integers(0, span, len(g))
        for i, (r, c) in enumerate(zip(rows, cols)):
            x[i, r:r + digit_size, c:c + digit_size] = g[i]
        if noise:
            x += rng.normal(0.0, noise, x.shape).astype("float32")
        return x[..., None], y

    name = f"digits{image_size}" + ("" if digit_size == image_size else f"-shift{digit_size}") \
        + (f"-noise{noise:g}" if noise else "")
    return Task(name, *render(gtr, ytr), *render(gva, yva))


_NPZ_KEYS = (("x_train", "y_train"), ("x_val", "y_val"), ("x_test", "y_test"))


def load_task(path: str | os.PathLike) -> Task:
    """A task from an ``.npz`` file: ``x_train, y_train`` and ``x_val, y_val`` (or
    ``x_test, y_test``). Images NHWC (a missing channel axis is added); labels class
    indices (one-hot labels are turned into indices)."""
    p = Path(path)
    if not p.is_file():
        raise LatencyLabError(f"data file {str(p)!r} does not exist; give an .npz with "
                              "x_train, y_train, x_val, y_val.")
    try:
        data = np.load(p, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - numpy raises several types for bad files
        raise LatencyLabError(f"data file {str(p)!r} is not a readable .npz ({e}); save it "
                              "with numpy.savez(path, x_train=..., y_train=..., ...).") from e
    keys = set(data.files)
    if not {"x_train", "y_train"} <= keys:
        raise LatencyLabError(f"data file {str(p)!r} has arrays {sorted(keys)}; expected "
                              "x_train and y_train (plus x_val, y_val or x_test, y_test).")
    val = next(((x, y) for x, y in _NPZ_KEYS[1:] if {x, y} <= keys), None)
    if val is None:
        raise LatencyLabError(f"data file {str(p)!r} has no validation split: add x_val and "
                              f"y_val (or x_test and y_test); it has {sorted(keys)}.")
    arrays = []
    for xk, yk in (("x_train", "y_train"), val):
        x, y = np.asarray(data[xk]), np.asarray(data[yk])
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4:
            raise LatencyLabError(f"{str(p)!r}: {xk} has shape {x.shape}; expected images "
                                  "(N, H, W, C) or (N, H, W).")
        if y.ndim == 2:
            y = y.argmax(axis=1)
        if y.ndim != 1 or len(y) != len(x):
            raise LatencyLabError(f"{str(p)!r}: {yk} has shape {y.shape}; expected one class "
                                  f"index per image of {xk} ({len(x)}).")
        if not np.issubdtype(y.dtype, np.integer):
            if not np.all(np.equal(np.mod(y, 1), 0)):
                raise LatencyLabError(f"{str(p)!r}: {yk} must hold class indices (integers).")
        if not np.all(np.isfinite(x)):
            raise LatencyLabError(f"{str(p)!r}: {xk} contains NaN or infinite values.")
        arrays += [x.astype("float32"), y.astype("int64")]
    if arrays[0].shape[1:] != arrays[2].shape[1:]:
        raise LatencyLabError(f"{str(p)!r}: train images {arrays[0].shape[1:]} and validation "
                              f"images {arrays[2].shape[1:]} differ in shape.")
    return Task(p.stem, *arrays)


def digits_cnn(input_shape=(32, 32, 1), classes: int = 10, widths=(24, 48, 48, 96, 96),
               seed: int = 0):
    """The default network to shrink: 3x3 conv + BN + ReLU blocks, stride 2 at every
    other block, global pooling and a dense head (logits)."""
    import keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    x = keras.Input(input_shape, name="image")
    h = x
    for i, width in enumerate(widths):
        stride = 2 if i % 2 == 1 else 1
        h = L.Conv2D(width, 3, strides=stride, padding="same", use_bias=False,
                     name=f"conv{i + 1}")(h)
        # momentum 0.9: short runs must still settle the moving statistics.
        h = L.BatchNormalization(momentum=0.9, name=f"bn{i + 1}")(h)
        h = L.ReLU(name=f"relu{i + 1}")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    y = L.Dense(classes, name="logits")(h)
    return keras.Model(x, y, name="digits_cnn")


# -------------------------------------------------------------------- training


def _loss_for(model):
    """Sparse cross-entropy, from logits unless the model ends in a softmax."""
    import keras

    act = getattr(model.layers[-1], "activation", None)
    from_logits = getattr(act, "__name__", "") != "softmax"
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)


def train(model, task: Task, epochs: int, *, loss=None, learning_rate: float = 3e-3,
          batch_size: int = 32, callbacks=(), seed: int = 0, cosine: bool = True) -> None:
    """Compile (Adam) and fit for ``epochs`` (no-op for 0). ``cosine`` decays the
    learning rate to zero over the run: without it the final weights are a snapshot of
    a still-bouncing optimizer, and accuracies of short runs differ by several points
    for no reason but the last few steps. Structure learning keeps a constant rate
    (``cosine=False``) so the regularizer can act until the end."""
    import keras

    if epochs <= 0:
        return
    keras.utils.set_random_seed(seed)
    rate = learning_rate
    if cosine:
        steps = epochs * math.ceil(len(task.x_train) / batch_size)
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    model.compile(optimizer=keras.optimizers.Adam(rate),
                  loss=loss if loss is not None else _loss_for(model))
    model.fit(task.x_train, task.y_train, epochs=epochs, batch_size=batch_size, verbose=0,
              shuffle=True, callbacks=list(callbacks))


def accuracy(model, task: Task, batch_size: int = 256) -> float:
    """Top-1 accuracy on the validation split (inference mode)."""
    hits = 0
    for i in range(0, len(task.x_val), batch_size):
        logits = np.asarray(model(task.x_val[i:i + batch_size], training=False))
        hits += int(np.sum(np.argmax(logits, axis=-1) == task.y_val[i:i + batch_size]))
    return hits / len(task.x_val)


def full_structure(model) -> dict[str, int]:
    """Every conv/dense layer of ``model`` at its full width, as a structure."""
    from regularizers.grouping import build_channel_graph

    cg = build_channel_graph(model)
    out: dict[str, int] = {}
    for op in cg.sources:
        out.setdefault(op.layer_name, cg.groups[op.out_group].size)
    return out


# ------------------------------------------------------------------------ flow


@dataclasses.dataclass
class ModelRow:
    """One model of the comparison."""

    name: str
    structure: dict[str, int]
    accuracy: float
    predicted_ms: float
    measured_ms: float | None = None  # fastest repeat over the passes (the latency figure)
    iqr_ms: float | None = None
    params: int = 0
    median_ms: float | None = None  # median over the passes' repeats

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ShrinkResult:
    target_ms: float
    profile: str
    runtime: dict
    algorithm: str
    rows: dict[str, ModelRow]
    learned_raw: dict[str, int]
    learned_raw_ms: float
    snap_factor: float
    snap_goal_ms: dict[str, float]
    strength_history: list[tuple[int, float, float]]
    retrain_from: str = "pretrained"
    files: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["rows"] = {k: v.to_dict() for k, v in self.rows.items()}
        return d


def _probe_ms(model, prof) -> float:
    """A quick timing of a snapped network, to re-aim the snap: the fastest repeat of 3
    short passes (the latency figure, as in `latency_lab.timing`)."""
    from latency_lab.runtimes import for_profile, measure_in_passes
    from latency_lab.timing import TimingConfig, pool_passes

    timing = TimingConfig.latency(repeats=20)
    (passes,) = measure_in_passes(for_profile(prof), [("probe", model)], timing).values()
    return pool_passes([m.raw_ms for m in passes]).min


def shrink(model, task: Task, profile: Any, target_ms: float, *, algorithm: str = "gamma",
           pretrain_epochs: int = 6, learn_epochs: int = 8, retrain_epochs: int = 6,
           learning_rate: float = 5e-3, batch_size: int = 32, threshold: float = 1e-2,
           align: int = 1, baseline: bool = True, measure: bool = True, seed: int = 0,
           snap_rounds: int = 2, snap_tolerance: float = 0.05,
           retrain_from: str = "pretrained", measure_passes: int = 3,
           out_dir: str | os.PathLike | None = None,
           on_event: Callable[[str, dict], None] | None = None) -> ShrinkResult:
    """Learn, snap, apply, retrain; compare with uniform width scaling. See the module
    docstring. ``model`` is modified in place by the pre-training and learning phases
    (and holds its pretrained weights again at the end with ``retrain_from="pretrained"``).

    ``on_event(name, info)`` is called at each phase ("pretrain", "learn", "snap",
    "retrain", "baseline", "measure", "done"), when a measured re-aim of the snap would
    go below the smallest structure ("snap_limit": the candidates measured so far are
    kept), and after
    every epoch ("epoch" with ``phase``, ``epoch``, ``epochs``), for progress displays."""
    import keras

    from latency_lab.predict import predict_model
    from latency_lab.profile import load_profile
    from regularizers.apply import apply_structure, fit_to_target
    from regularizers.callbacks import StrengthController, StructureLogger
    from regularizers.latency import LatencyRegularizer

    if algorithm not in ("gamma", "group_lasso"):
        raise ValueError(
            "shrink: `algorithm` must be 'gamma' or 'group_lasso' (logistic_sigmoid leaves "
            f"gate layers in the slim model), received {algorithm!r}.")
    if retrain_from not in ("pretrained", "learned"):
        raise ValueError("shrink: `retrain_from` must be 'pretrained' or 'learned', "
                         f"received {retrain_from!r}.")
    if not (isinstance(target_ms, (int, float)) and math.isfinite(target_ms) and target_ms > 0):
        raise ValueError(f"shrink: `target_ms` must be a finite number > 0, received "
                         f"{target_ms!r}.")
    emit = on_event or (lambda name, info: None)
    prof = load_profile(profile)
    predictor = "lookup" if prof.samples else "roofline"
    out = Path(out_dir) if out_dir is not None else None

    class _Epochs(keras.callbacks.Callback):
        def __init__(self, phase, epochs):
            super().__init__()
            self.phase, self.epochs = phase, epochs

        def on_epoch_end(self, epoch, logs=None):
            emit("epoch", {"phase": self.phase, "epoch": epoch + 1, "epochs": self.epochs})

    def predicted(m) -> float:
        return float(predict_model(m, prof, predictor).latency_ms)

    goals: dict[str, float] = {}

    def snap(name: str, structure: dict) -> tuple[float, dict]:
        """fit_to_target, then (measuring) re-aim by target / measured up to
        `snap_rounds` times. Every candidate is measured and the one measured closest
        to the target is kept (a re-aim can overshoot: channel counts are whole)."""
        goal = target_ms
        factor, snapped, _ = fit_to_target(model, structure, prof, goal, predictor=predictor,
                                           align=align)
        tried: list[tuple[float, float, dict, float]] = []  # (|miss|, factor, snapped, goal)
        for round_index in range(snap_rounds + 1 if measure else 0):
            probe = apply_structure(model, snapped, copy_weights=False, align=align)
            measured = _probe_ms(probe, prof)
            tried.append((abs(measured / target_ms - 1), factor, snapped, goal))
            if tried[-1][0] <= snap_tolerance or round_index == snap_rounds:
                break
            new_goal = goal * target_ms / measured
            try:
                factor, snapped, _ = fit_to_target(model, structure, prof, new_goal,
                                                   predictor=predictor, align=align)
            except ValueError as exc:  # re-aimed below the smallest structure
                emit("snap_limit", {"model": name, "goal_ms": new_goal, "reason": str(exc)})
                break
            goal = new_goal
        if tried:
            _, factor, snapped, goal = min(tried, key=lambda t: t[0])
        goals[name] = goal
        return factor, snapped

    full = full_structure(model)
    full_ms = predicted(model)
    if target_ms >= full_ms:
        raise ValueError(
            f"shrink: target {target_ms:g} ms is not below the full model's predicted "
            f"{full_ms:.4g} ms on {prof.device_name!r}; choose a smaller target_ms.")
    emit("pretrain", {"epochs": pretrain_epochs})
    train(model, task, pretrain_epochs, learning_rate=learning_rate, batch_size=batch_size,
          callbacks=[_Epochs("pretrain", pretrain_epochs)], seed=seed)
    rows = {"full": ModelRow("full", full, accuracy(model, task), full_ms,
                             params=int(model.count_params()))}
    pretrained_weights = [w.copy() for w in model.get_weights()]

    # 2. the uniform baseline, from the pretrained weights (before learning changes them)
    if baseline:
        # The same training from the pretrained weights as the learned model gets.
        baseline_epochs = retrain_epochs + (learn_epochs if retrain_from == "learned" else 0)
        emit("baseline", {"epochs": baseline_epochs})
        _, uniform_s = snap("uniform", full)
        uniform = apply_structure(model, uniform_s, copy_weights=True, align=align)
        train(uniform, task, baseline_epochs, learning_rate=learning_rate,
              batch_size=batch_size, callbacks=[_Epochs("baseline", baseline_epochs)],
              seed=seed)
        rows["uniform"] = ModelRow("uniform", uniform_s, accuracy(uniform, task),
                                   predicted(uniform), params=int(uniform.count_params()))

    # 3. structure learning in target mode
    emit("learn", {"epochs": learn_epochs, "target_ms": target_ms})
    reg = LatencyRegularizer(prof, model=model, algorithm=algorithm, threshold=threshold,
                             target_ms=target_ms, predictor=predictor)
    steps = learn_epochs * math.ceil(len(task.x_train) / batch_size)
    controller = StrengthController(reg, anneal_steps=int(0.6 * steps))
    callbacks = [controller, _Epochs("learn", learn_epochs)]
    if out is not None:
        callbacks.append(StructureLogger(reg, export_dir=out / "learned_structure",
                                         every_n_steps=50))
    train(model, task, learn_epochs, loss=reg.wrap_loss(_loss_for(model)),
          learning_rate=learning_rate, batch_size=batch_size, callbacks=callbacks, seed=seed,
          cosine=False)
    learned_raw = reg.get_alive_counts()
    learned_raw_ms = reg.get_cost()
    importance = {name: np.abs(np.asarray(v, dtype=np.float64))
                  for name, v in reg.get_regularization_vectors().items()}

    # 4. snap the learned widths to the target
    emit("snap", {"learned_ms": learned_raw_ms})
    factor, learned = snap("learned", learned_raw)

    # 5. apply and retrain
    emit("retrain", {"epochs": retrain_epochs, "from": retrain_from})
    if retrain_from == "pretrained":
        model.set_weights(pretrained_weights)
    slim = apply_structure(model, learned, copy_weights=True, align=align,
                           importance=importance)
    train(slim, task, retrain_epochs, learning_rate=learning_rate, batch_size=batch_size,
          callbacks=[_Epochs("retrain", retrain_epochs)], seed=seed)
    rows["learned"] = ModelRow("learned", learned, accuracy(slim, task), predicted(slim),
                               params=int(slim.count_params()))
    models = {"full": model, "learned": slim}
    if baseline:
        models["uniform"] = uniform
    rows = {k: rows[k] for k in models}  # report order: full, learned, uniform

    # 6. measure on this machine with the profile's runtime
    if measure:
        from latency_lab.runtimes import for_profile, measure_in_passes
        from latency_lab.timing import TimingConfig, pool_passes

        emit("measure", {"models": list(models)})
        # In interleaved passes, so the models compared meet the same machine conditions.
        timing = TimingConfig.latency(repeats=40, warmup_runs=3)
        timed = measure_in_passes(for_profile(prof), list(models.items()), timing,
                                  passes=measure_passes, seed=seed)
        for name, passes in timed.items():
            pooled = pool_passes([m.raw_ms for m in passes])
            rows[name].measured_ms, rows[name].iqr_ms = pooled.min, pooled.iqr
            rows[name].median_ms = pooled.median
    result = ShrinkResult(target_ms=float(target_ms), profile=str(profile) if not hasattr(
        profile, "device_name") else prof.device_name, runtime=dict(prof.runtime),
        algorithm=algorithm, rows=rows, learned_raw=learned_raw,
        learned_raw_ms=float(learned_raw_ms), snap_factor=float(factor), snap_goal_ms=goals,
        strength_history=list(controller.history), retrain_from=retrain_from)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        slim_path = out / "slim.keras"
        slim.save(slim_path)
        result.files.append(str(slim_path))
        result.files += [str(p) for p in write_report(result, out)]
    emit("done", {"result": result})
    return result


# ---------------------------------------------------------------------- report


def write_report(result: ShrinkResult, out_dir: str | os.PathLike) -> list[Path]:
    """``report.md``, ``result.json``, ``accuracy_vs_latency.png`` and ``channels.png``
    in ``out_dir`` (each written atomically)."""
    from latency_lab.plots import save_figure
    from latency_lab.profile import write_json_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    write_json_atomic(out / "result.json", result.to_dict(), "the shrink result")
    paths.append(out / "result.json")
    paths.append(save_figure(_accuracy_figure(result), out / "accuracy_vs_latency.png"))
    paths.append(save_figure(_channels_figure(result), out / "channels.png"))
    md = out / "report.md"
    tmp = md.with_name(f".{md.name}.tmp")
    tmp.write_text(report_markdown(result))
    os.replace(tmp, md)
    paths.append(md)
    return paths


def report_markdown(result: ShrinkResult) -> str:
    rt = result.runtime
    lines = [
        f"# shrink report: target {result.target_ms:g} ms",
        "",
        f"Profile {result.profile} ({rt.get('name')} {rt.get('version')}, "
        f"{rt.get('threads')} thread(s)); algorithm {result.algorithm}. The learned "
        f"structure was predicted at {result.learned_raw_ms:.4g} ms at the end of "
        f"training and scaled by {result.snap_factor:.3f} to meet the target (predicted "
        "goals after the measured correction: "
        + ", ".join(f"{k} {v:.4g} ms" for k, v in result.snap_goal_ms.items()) + "); "
        f"the slim model was retrained from the {result.retrain_from} weights of the "
        "channels the regularizer ranked highest.",
        "",
        "| model | accuracy | predicted ms | measured ms | vs target | params |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result.rows.values():
        meas = "" if r.measured_ms is None else f"{r.measured_ms:.4f}"
        vs = "" if r.measured_ms is None else f"{100 * (r.measured_ms / result.target_ms - 1):+.1f}%"
        lines.append(f"| {r.name} | {100 * r.accuracy:.1f}% | {r.predicted_ms:.4f} | {meas} "
                     f"| {vs} | {r.params} |")
    lines += ["", "## Channels per layer", "",
              "| layer | full | learned (raw) | learned (snapped) |"
              + (" uniform |" if "uniform" in result.rows else ""),
              "|---|---:|---:|---:|" + ("---:|" if "uniform" in result.rows else "")]
    full = result.rows["full"].structure
    for name, n in full.items():
        row = f"| {name} | {n} | {result.learned_raw.get(name, n)} | " \
              f"{result.rows['learned'].structure.get(name, n)} |"
        if "uniform" in result.rows:
            row += f" {result.rows['uniform'].structure.get(name, n)} |"
        lines.append(row)
    lines += ["", "![accuracy vs latency](accuracy_vs_latency.png)", "",
              "![channels](channels.png)", ""]
    return "\n".join(lines)


def _accuracy_figure(result: ShrinkResult):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    colors = {"full": "tab:gray", "learned": "tab:blue", "uniform": "tab:orange"}
    for r in result.rows.values():
        c = colors.get(r.name, "black")
        ax.scatter([r.predicted_ms], [100 * r.accuracy], marker="o", facecolors="none",
                   edgecolors=c, s=60, label=f"{r.name} (predicted)")
        if r.measured_ms is not None:
            ax.scatter([r.measured_ms], [100 * r.accuracy], marker="s", color=c, s=40,
                       label=f"{r.name} (measured)")
    ax.axvline(result.target_ms, color="tab:red", ls="--", lw=1, label="target")
    ax.set_xlabel("latency per inference (ms)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("accuracy vs latency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def _channels_figure(result: ShrinkResult):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    full = result.rows["full"].structure
    names = list(full)
    series = [("full", full, "tab:gray"),
              ("learned", result.rows["learned"].structure, "tab:blue")]
    if "uniform" in result.rows:
        series.append(("uniform", result.rows["uniform"].structure, "tab:orange"))
    x = np.arange(len(names))
    w = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(names) + 2), 4))
    for i, (label, s, c) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * w, [s.get(n, full[n]) for n in names], w,
               label=label, color=c)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("output channels")
    ax.set_title(f"channels per layer (target {result.target_ms:g} ms)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig

