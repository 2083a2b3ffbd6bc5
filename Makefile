# downsample_study: `make run` trains the default job, `make test` runs the everyday test suite.
# Both install into .venv first when needed (once; again only when pyproject.toml changes).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: install run test test-slow test-all lint bench clean clean-outputs report gpu-rehearsal docs

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,docs]'
	@touch $(STAMP)

run: install
	$(PY) -m downsample_study $(ARGS)

# The everyday suite: every test but the `slow` end-to-end ones, one pytest-xdist worker per
# core (each with its share of the threads: tests/conftest.py).
test: install
	$(PY) -m pytest -n auto --dist loadgroup -m "not slow" $(ARGS)

# The `slow` end-to-end sweeps (a real SLURM cluster, two-process DDP, submitit, kill and
# resume, two sweeps into one folder, the presets, real MNIST, the benchmark): CI runs them
# after make test. The SLURM tests share one worker and its cluster. make test-all: both.
test-slow: install
	$(PY) -m pytest -n auto --dist loadgroup -m slow $(ARGS)

test-all: install
	$(PY) -m pytest -n auto --dist loadgroup $(ARGS)

# the documentation site into site/, strictly: a broken link, anchor or reference fails it
docs: install
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(VENV)/bin/mkdocs build --strict -q

# the GPU check (scripts/gpu_check.sh) rehearsed on CPU, every step at its smallest
gpu-rehearsal: install
	GPU_CHECK_REHEARSAL=1 $(PY) -m pytest -q tests/test_gpu_check.py tests/test_gpu_wheels.py

# make report SWEEP=multirun/seed000/<date>/<time>: report.md, results.csv and plots, into it
report: install
	@test -n "$(SWEEP)" || { echo "usage: make report SWEEP=<sweep folder> [ARGS=--no-wandb]"; exit 2; }
	$(PY) -m downsample_study.report $(SWEEP) $(ARGS)

# DATA_DIR=/path/to/data make bench [ARGS="--device cuda --batch-sizes 64 256"]: framework vs
# hand-written loops (the data folder as for make run: DATA_DIR, else ./data);
# ARGS="--study": also a whole study, the packed sweep against a hand-written script (minutes)
bench: install
	$(PY) -m benchmarks $(ARGS)

lint: install
	$(VENV)/bin/ruff check .

# make clean: only what can be rebuilt (caches, build files); runs and sweeps stay
clean:
	rm -rf .pytest_cache .ruff_cache build dist src/*.egg-info
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

# make clean-outputs CONFIRM=yes: delete every run and sweep (results, checkpoints, W&B runs
# not yet synced); without CONFIRM it only says what that would delete
clean-outputs:
	@if [ "$(CONFIRM)" != yes ]; then \
		echo "this would delete outputs/ and multirun/*/ (results, checkpoints, W&B runs not yet synced):"; \
		found=$$(ls -d outputs multirun/*/ 2>/dev/null); \
		if [ -n "$$found" ]; then du -sh $$found; else echo "  (nothing there)"; fi; \
		echo "run: make clean-outputs CONFIRM=yes"; exit 2; fi
	rm -rf outputs multirun/*/
