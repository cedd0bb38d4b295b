# pretrainlab: `make run` reproduces every installed domain's paper table at tiny scale;
# `make test` runs the whole suite. Both set everything up first (scripts/setup.sh, a no-op when done).
VENV   := .venv
PY     := $(VENV)/bin/python
PROFILE ?= tiny
# two pytest workers on a 2-core machine, one BLAS thread each
JOBS   ?= 2
export OMP_NUM_THREADS ?= 1
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1

.PHONY: setup run test test-fast demo bench lint device-check clean

setup:
	@bash scripts/setup.sh

run: setup
	$(PY) -m pretrainlab.core.cli reproduce --all --profile $(PROFILE) --jobs $(JOBS)

test: setup
	$(PY) -m pytest -q -n $(JOBS) --dist loadfile --timeout 900

test-fast: setup
	$(PY) -m pytest -q -n $(JOBS) --dist loadfile -m "not slow and not e2e and not ddp"

demo: setup
	$(PY) apps/hub/app.py

bench: setup
	$(PY) benchmarks/run_all.py --device cpu

device-check: setup
	bash scripts/device_check.sh

lint: setup
	$(VENV)/bin/ruff check shared domains apps tests benchmarks scripts

clean:
	rm -rf runs .pytest_cache
