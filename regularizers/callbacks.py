"""Keras callbacks for structure learning: StructureLogger logs a regularizer's term,
cost and alive counts to TensorBoard and exports the learned structure every N steps;
StrengthController drives target mode (the strength adapts until the cost settles at
the target).

Both run on every Keras backend. Under JAX, ``fit`` keeps the model's variables outside
the model between steps; reading ``Callback.model`` puts them back (Keras'
``jax_state_sync``), so both read the model through it before evaluating the
regularizer. TensorBoard summaries (``StructureLogger(log_dir=...)``) are written with
tf.summary, so they need TensorFlow installed (under any backend; it is imported only
then)."""

from __future__ import annotations

import importlib.util
import os

import keras
from keras import ops

from regularizers.structure import export_structure
from latency_lab.errors import InvalidArgumentError

__all__ = ["StructureLogger", "StrengthController"]


class StructureLogger(keras.callbacks.Callback):
    """Log and export what a regularizer has learned during ``model.fit``.

    Every ``every_n_steps`` training steps (and once when training ends) it
    * writes ``{export_dir}/structure_{step:08d}.json`` (skipped if export_dir is None;
      by default ``{log_dir}/learned_structure``, or ``./learned_structure`` without a
      log_dir),
    * if ``log_dir`` is given, writes TensorBoard scalars ``regularizer/term``,
      ``regularizer/{cost_name}`` and ``alive/{layer}`` via tf.summary.

    The step is the optimizer's iteration count (so resumed training continues the
    numbering), or a count of batches seen when there is no optimizer. The count is
    read once when training begins and then advanced by the steps each batch reports,
    so no batch reads a variable off the device (under JAX that would also move the
    whole model state back into the model after every step).
    """

    def __init__(self, regularizer, log_dir=None, export_dir="auto", every_n_steps=100):
        super().__init__()
        _check_every("every_n_steps", every_n_steps)
        if not hasattr(regularizer, "get_alive_counts"):
            raise InvalidArgumentError(
                "Invalid value for argument `regularizer`: expected a NetworkRegularizer, "
                f"received {type(regularizer).__name__}."
            )
        if log_dir is not None and not _tensorflow_installed():
            raise InvalidArgumentError(
                "Invalid value for argument `log_dir`: StructureLogger writes TensorBoard "
                "summaries with tf.summary, which needs TensorFlow, and it is not "
                f"installed (Keras backend: {keras.backend.backend()!r}). Install "
                "tensorflow, or pass log_dir=None to only export structure files."
            )
        self.regularizer = regularizer
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        if isinstance(export_dir, str) and export_dir == "auto":
            export_dir = os.path.join(self.log_dir or "", "learned_structure")
        self.export_dir = None if export_dir is None else os.fspath(export_dir)
        self.every_n_steps = every_n_steps
        self._batches = 0
        self._base: int | None = None  # optimizer iterations when fit began
        self._run = 0  # steps run since then
        self._epoch_start = 0
        self._last_logged = None
        self._writer = None
        self.written: list[str] = []  # structure files written, in order

    def _optimizer_step(self) -> int | None:
        model = self.model  # under JAX this also syncs the variables into the model
        opt = getattr(model, "optimizer", None) if model is not None else None
        it = getattr(opt, "iterations", None)
        if it is not None:
            try:
                return int(ops.convert_to_numpy(it))
            except Exception:  # noqa: BLE001 - fall back to our own count
                pass
        return None

    def _step(self) -> int:
        if self._base is not None:
            return self._base + self._run
        step = self._optimizer_step()
        return self._batches if step is None else step

    def on_train_begin(self, logs=None):
        self._base = self._optimizer_step()
        self._run = self._epoch_start = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._run

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        # `batch` is the epoch's index of the last step this call covers
        # (steps_per_execution > 1 runs several per call).
        self._run = self._epoch_start + int(batch) + 1
        step = self._step() if self._base is not None else self._batches
        if step % self.every_n_steps == 0:
            self.log(step)

    def on_train_end(self, logs=None):
        step = self._step()
        if step != self._last_logged:
            self.log(step)
        if self._writer is not None:
            self._writer.flush()

    def log(self, step: int) -> None:
        """Export and log now, at ``step``."""
        _sync(self)
        self._last_logged = step
        reg = self.regularizer
        counts = reg.get_alive_counts()
        if self.export_dir is not None:
            self.written.append(export_structure(counts, self.export_dir, step))
        if self.log_dir is not None:
            import tensorflow as tf

            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.log_dir)
            term = float(ops.convert_to_numpy(reg.get_regularization_term()))
            cost = reg.get_cost()
            with self._writer.as_default(step=step):
                _scalar("regularizer/term", term, step)
                _scalar(f"regularizer/{reg.cost_name}", cost, step)
                if getattr(reg, "strength_variable", None) is not None:
                    _scalar("regularizer/strength",
                            float(ops.convert_to_numpy(reg.strength_variable)), step)
                for name, count in counts.items():
                    _scalar(f"alive/{name}", count, step)
            self._writer.flush()


class StrengthController(keras.callbacks.Callback):
    """Target mode in ``model.fit``: one `update_strength()` dual-ascent step every
    ``every_n_steps`` batches, so the regularizer's cost settles at its target.

    With ``anneal_steps`` the goal moves linearly from the cost at the start of
    training down to the target over that many steps (then stays there), as in gradual
    pruning: the cost only responds once weights have shrunk, and chasing a distant
    target from the first step winds the strength up until every channel dies.

    The regularizer must be in target mode (``LatencyRegularizer(..., target_ms=T)``)
    and the model compiled with ``reg.wrap_loss(loss)``. ``history`` keeps
    ``(step, cost, strength)`` of every update for inspection and plots."""

    def __init__(self, regularizer, every_n_steps: int = 1, anneal_steps: int = 0):
        super().__init__()
        _check_every("every_n_steps", every_n_steps)
        if isinstance(anneal_steps, bool) or not isinstance(anneal_steps, int) \
                or anneal_steps < 0:
            raise InvalidArgumentError(
                "Invalid value for argument `anneal_steps`: expected an int >= 0, "
                f"received {anneal_steps!r}.")
        if getattr(regularizer, "target", None) is None:
            raise InvalidArgumentError(
                "Invalid value for argument `regularizer`: StrengthController needs a "
                "regularizer in target mode (e.g. LatencyRegularizer(profile, model=model, "
                f"target_ms=2.0)), received {regularizer!r}.")
        self.regularizer = regularizer
        self.every_n_steps = every_n_steps
        self.anneal_steps = anneal_steps
        self.history: list[tuple[int, float, float]] = []
        self._batches = 0
        self._start_cost: float | None = None

    def on_train_begin(self, logs=None):
        if self.regularizer.strength_variable is None:
            raise InvalidArgumentError(
                "StrengthController: the regularizer has no strength variable yet; compile "
                "the model with loss=reg.wrap_loss(loss) before fit().")
        if self._start_cost is None:
            _sync(self)
            self._start_cost = self.regularizer.get_cost()

    def goal(self, step: int) -> float:
        """The target the controller steers to at ``step`` (annealed)."""
        target = self.regularizer.target
        if not self.anneal_steps or self._start_cost is None \
                or self._start_cost <= target:
            return target
        frac = min(1.0, step / self.anneal_steps)
        return self._start_cost + frac * (target - self._start_cost)

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        if self._batches % self.every_n_steps:
            return
        _sync(self)
        cost = self.regularizer.get_cost()  # one evaluation of the groups per update
        strength = self.regularizer.update_strength(self.goal(self._batches), cost=cost)
        self.history.append((self._batches, cost, strength))
        if logs is not None:
            logs["reg_strength"] = strength


def _sync(callback: keras.callbacks.Callback) -> None:
    """Put the model's current variables back into it before the regularizer reads
    them: under JAX, `Callback.model` runs Keras' `jax_state_sync` (a no-op elsewhere
    and outside fit)."""
    callback.model  # noqa: B018 - the property does the work


def _tensorflow_installed() -> bool:
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["tensorflow"] is None
        return False


def _check_every(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(
            f"Invalid value for argument `{name}`: expected a positive int, "
            f"received {value!r}.")


def _scalar(tag: str, value: float, step: int) -> None:
    """A TensorBoard scalar. tf.summary.scalar needs the tensorboard package; the core
    tf.summary.write with the "scalars" plugin metadata writes the same event."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step,
                     metadata=metadata)
