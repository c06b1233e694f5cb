"""The training loop of every shrink phase: `train` (Adam, cosine decay by default)
and `accuracy` on the validation split."""

from __future__ import annotations

import math

import numpy as np

from latency_lab.workflows.data import Task

__all__ = ["train", "accuracy", "loss_for"]


def loss_for(model):
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
                  loss=loss if loss is not None else loss_for(model))
    model.fit(task.x_train, task.y_train, epochs=epochs, batch_size=batch_size, verbose=0,
              shuffle=True, callbacks=list(callbacks))


def accuracy(model, task: Task, batch_size: int = 256) -> float:
    """Top-1 accuracy on the validation split (inference mode)."""
    hits = 0
    for i in range(0, len(task.x_val), batch_size):
        logits = np.asarray(model(task.x_val[i:i + batch_size], training=False))
        hits += int(np.sum(np.argmax(logits, axis=-1) == task.y_val[i:i + batch_size]))
    return hits / len(task.x_val)
