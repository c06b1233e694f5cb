"""Autodiff of a scalar over Keras variables with the backend in use (the tests'
GradientTape on TensorFlow, jax.grad over a StatelessScope on JAX, torch.autograd)."""

import keras
import numpy as np


def gradients(fn, variables):
    """(value of fn(), [gradient as numpy or None per variable]). JAX gives zeros where
    TensorFlow and PyTorch give None (no path from the variable to the value)."""
    variables = list(variables)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = fn()
        grads = tape.gradient(value, variables)
    elif backend == "jax":
        import jax

        def f(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn()

        value, grads = jax.value_and_grad(f)([v.value for v in variables])
    elif backend == "torch":
        import torch

        value = fn()
        grads = torch.autograd.grad(value, [v.value for v in variables], allow_unused=True)
    else:
        raise NotImplementedError(f"no autodiff helper for Keras backend {backend!r}")
    return value, [None if g is None else np.asarray(keras.ops.convert_to_numpy(g))
                   for g in grads]


def no_gradient(g) -> bool:
    """No gradient reached the variable: None (TensorFlow, PyTorch) or, under JAX,
    which always returns an array, all zeros."""
    if g is None:
        return True
    return keras.backend.backend() == "jax" and not np.any(g)


def dtype_name(x) -> str:
    return keras.backend.standardize_dtype(x.dtype)
