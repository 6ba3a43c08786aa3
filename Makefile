# `make run`: set everything up and run the main job; `make test`: set everything up and run the tests.
# `make device-check`: the prepared GPU check (benchmarks/device_check.py; no setup, the device machine is offline),
# e.g. `make device-check ARGS="--data_dir beauty --semantic_ids_file kmeans=ids.json"`; here: `make device-check
# DEVICE=cpu` (the set-up environment's Python when there is one).
VENV_BIN := .venv/bin
DEVICE ?= cuda
OUTPUT_DIR ?= outputs/device-check
PYTHON ?= $(if $(wildcard $(VENV_BIN)/python),$(VENV_BIN)/python,python3)

.PHONY: setup run test lint device-check

setup:
	bash scripts/setup.sh

run: setup
	$(VENV_BIN)/accelerate launch examples/run_indexing.py $(ARGS)

test: setup
	HF_HUB_OFFLINE=1 $(VENV_BIN)/python -m pytest tests
	$(VENV_BIN)/ruff check .

lint: setup
	$(VENV_BIN)/ruff check .

device-check:
	PYTHON=$(PYTHON) bash benchmarks/device_check.sh --device $(DEVICE) --output_dir $(OUTPUT_DIR) $(ARGS)
