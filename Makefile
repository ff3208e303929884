# Two commands for a fresh machine: `make demo` and `make test` (each creates the environment first).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
export PREFECT_HOME ?= $(CURDIR)/.prefect

.PHONY: install demo test bench bench-smoke bench-gpu server worker deploy serve

# A local Prefect server and the processes that talk to it (see docs/orchestration.md).
PREFECT_PORT ?= 4200
API := PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "Python 3.11 is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/synth demo --output out/demo

test: install
	$(BIN)/python -m pytest

# Speed and memory against the machine's floor and SDV (benchmarks/README.md). Needs the bench extra.
BENCH_THREADS ?= 0
bench: install
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/run_all.py --threads $(BENCH_THREADS)

bench-smoke: install  ## every benchmark at tiny sizes (the tests run these too)
	$(BIN)/python benchmarks/run_all.py --smoke

# Training and sampling rows/s on CUDA (bf16) against the CPU, <= 5 minutes on one GPU; fails
# (exit 2, one line) where torch sees no CUDA device, never falling back to the CPU.
bench-gpu: install
	$(BIN)/python benchmarks/gpu.py --device cuda

server: install  ## Prefect server and UI on http://127.0.0.1:4200 (state in .prefect/)
	$(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

worker: install  ## a process worker for the synth-cpu pool (created if missing)
	$(API) $(BIN)/prefect worker start --pool synth-cpu --type process

deploy: install  ## register deployments/prefect.yaml with the server
	$(API) $(BIN)/prefect work-pool inspect synth-cpu >/dev/null 2>&1 || $(API) $(BIN)/prefect work-pool create synth-cpu --type process
	$(API) $(BIN)/prefect work-pool inspect synth-gpu >/dev/null 2>&1 || $(API) $(BIN)/prefect work-pool create synth-gpu --type process
	$(API) $(BIN)/prefect --no-prompt deploy --all --prefect-file deployments/prefect.yaml

serve: install  ## or, instead of worker + deploy: serve the deployments from one process
	$(API) $(BIN)/python -m deployments.serve
