"""The data a shrink run trains on: a `Task` (train and validation arrays), scikit-learn's
digits made as hard as asked (`digits_task`, shipped with scikit-learn, no download), or
a user's ``.npz`` (`load_task`) with clear errors for a file that does not fit.

``.npz`` layout: ``x_train, y_train`` and ``x_val, y_val`` (or ``x_test, y_test``);
images NHWC (a missing channel axis is added), labels class indices (one-hot labels are
turned into indices).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from latency_lab.errors import InvalidArgumentError, LatencyLabError

__all__ = ["Task", "digits_task", "load_task"]


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
        raise InvalidArgumentError(f"digits_task: `digit_size` must be a multiple of 8 and at most "
                         f"image_size={image_size}, received {digit_size!r}.")
    if copies < 1 or noise < 0:
        raise InvalidArgumentError(f"digits_task: need copies >= 1 and noise >= 0, received "
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
        try:
            x, y = np.asarray(data[xk]), np.asarray(data[yk])
        except ValueError as e:  # object arrays need pickle, which is never allowed
            raise LatencyLabError(
                f"{str(p)!r}: {xk}/{yk} cannot be read without unpickling ({e}); save "
                "plain numeric arrays (numpy.savez with float images and integer labels)."
            ) from None
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
