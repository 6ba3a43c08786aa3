# `make run`: set everything up and run the main job; `make test`: set everything up and run the tests.
VENV_BIN := .venv/bin

.PHONY: setup run test lint

setup:
	bash scripts/setup.sh

run: setup
	$(VENV_BIN)/accelerate launch examples/run_indexing.py $(ARGS)

test: setup
	HF_HUB_OFFLINE=1 $(VENV_BIN)/python -m pytest tests
	$(VENV_BIN)/ruff check .

lint: setup
	$(VENV_BIN)/ruff check .
