"""Keras-backend selection of tests.

`make test` runs the suite under TensorFlow, then the regularizer tests again with
``KERAS_BACKEND=jax`` (see the Makefile). Two markers choose what runs where; a test
left out is reported as deselected, not skipped:

* ``@pytest.mark.only_backend("jax", ...)``: only under the Keras backends named.
* ``@pytest.mark.backend_independent``: checks that touch no tensor math (argument
  validation, file formats, config dictionaries); they run under TensorFlow only, so
  the jax pass stays short.
"""

import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "only_backend(*names): run only under these Keras backends "
        "(deselected under others; make test runs the regularizer tests under jax too)")
    config.addinivalue_line(
        "markers", "backend_independent: no tensor math; runs under TensorFlow only")


def _runs(item, backend: str) -> bool:
    only = item.get_closest_marker("only_backend")
    if only is not None and backend not in only.args:
        return False
    return backend == "tensorflow" or item.get_closest_marker("backend_independent") is None


def pytest_collection_modifyitems(config, items):
    if not any(item.get_closest_marker("only_backend")
               or item.get_closest_marker("backend_independent") for item in items):
        return
    import keras

    backend = keras.backend.backend()
    drop = [item for item in items if not _runs(item, backend)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        dropped = set(map(id, drop))
        items[:] = [item for item in items if id(item) not in dropped]
