# Two entry points for a fresh clone: `make demo` and `make test`. Both build .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# The suite under TensorFlow, then the regularizer tests again under JAX (CPU): they are
# written with keras.ops for every backend (tests/conftest.py: which tests run where).
# Test files run in parallel, one worker per core up to 4 (pytest-xdist; a file stays
# on one worker, so its module fixtures are built once).
PYTEST := $(BIN)/python -m pytest -q -n auto --maxprocesses=4 --dist loadfile
JAX_TESTS := tests/test_regularizers.py tests/test_latency_regularizer.py \
	tests/test_regularizers_backends.py tests/test_transformer_regularizers.py \
	tests/test_residual_stream.py

test: $(STAMP)
	$(PYTEST)
	KERAS_BACKEND=jax $(PYTEST) $(JAX_TESTS)

clean:
	rm -rf $(VENV) build *.egg-info
