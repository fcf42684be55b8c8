# The two commands a user needs: `make run` and `make test`. Both set everything up first.
.PHONY: setup run test lint unit

CONFIG ?= examples/si/config.yaml
BIN := .venv/bin
# CPU builds by default; `make setup GPU=1` (or `make run GPU=1`) installs the GPU builds
# (TensorFlow with its CUDA wheels, ~4 GB more), GPU=0 goes back. Unset: keep what .venv has.
GPU ?=

setup:
	@GPU=$(GPU) scripts/setup.sh

run: setup
	$(BIN)/mlip-autopipe run $(CONFIG)

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: setup lint
	scripts/run-tests.sh

unit: setup
	scripts/run-tests.sh tests/unit
