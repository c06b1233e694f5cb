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
JAX_TESTS := tests/test_regularizers.py tests/test_latency_regularizer.py \
	tests/test_regularizers_backends.py tests/test_transformer_regularizers.py \
	tests/test_residual_stream.py

test: $(STAMP)
	$(BIN)/python -m pytest -q
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q $(JAX_TESTS)

clean:
	rm -rf $(VENV) build *.egg-info
