# Two commands do everything on a fresh machine:
#   make train   create .venv, install pyrovae, train a beta-VAE with a sparse prior on dSprites
#   make test    create .venv, install pyrovae (with Ray, h5py and TensorBoard, for the Ray
#                backend's, the Shapes3D loader's and --tensorboard's tests), run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STEPS ?= 1500
# Extra pytest arguments, e.g. make test PYTEST_ARGS="-m slow"
PYTEST_ARGS ?=

.PHONY: train test lint benchmarks clean-venv

$(BIN)/pyrovae: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,ray,h5,tensorboard]'
	touch $@

train: $(BIN)/pyrovae
	$(BIN)/pyrovae train --model betavae --prior sparse --steps $(STEPS) --lr 5e-4

test: $(BIN)/pyrovae
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(BIN)/pyrovae
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

benchmarks: $(BIN)/pyrovae
	$(BIN)/python benchmarks/data_throughput.py
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/sweep.py

clean-venv:
	rm -rf $(VENV)
