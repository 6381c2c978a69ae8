# Two commands set everything up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install serve test tools lint audit format clean image layers

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/sidetask serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python .ci/layers.py --check
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint docker/Dockerfile docker/Dockerfile.cuda
	$(MAKE) --no-print-directory audit

# The package-level import graph and the layer rule it must keep (.ci/layers.py).
layers:
	@$(BIN)/python .ci/layers.py

# Known vulnerabilities (PyPI advisory data) in the venv and in the image's pins. Fails on a
# vulnerability; only warns when PyPI is unreachable (.ci/audit.py --strict to fail then too).
audit: $(STAMP)
	$(BIN)/python .ci/audit.py
	$(BIN)/python .ci/audit.py -r docker/constraints.txt

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The CPU image sidetask:cpu, built here with no image registry (docs/deploy.md, "Building
# without a registry"): starts dockerd if none answers (it says how to stop it), makes and
# caches a Debian base image (debootstrap), builds docker/Dockerfile with this machine's CA
# bundle and torch wheel. Needs root, docker.io and debootstrap (make tools installs them).
image:
	$(PYTHON) docker/local_build.py image

# nginx, Prometheus (promtool) and hey, which the deployment, metrics and load tests run for
# real: installed with apt-get where this runs as root (or with passwordless sudo).
tools:
	@.ci/system_tools.sh

# -rs: every skipped test prints its reason, so a promise that was not checked is visible.
test: $(STAMP) lint tools
	$(BIN)/python -m pytest -q -rs

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
