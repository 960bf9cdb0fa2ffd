# Two commands do all set-up on a fresh machine:
#   make demo   from nothing to a trained, gated, registered and served model (synthetic default)
#   make test   the whole test suite (what CI runs through .ci/run)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export UV_PYTHON := 3.11
export PYTHONUNBUFFERED := 1

UV_VERSION := 0.13.9
# uv from PATH, else the one pip installed for python3 (`python3 -m uv` finds its binary)
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENV := .venv
RUN := $(UV) run --frozen --no-sync
APT_PACKAGES := chromium git
# `make images` and the image tests: a container engine and the tools that make the Debian base
# from Debian's packages (docs/deploy.md, "Images"); `make stack` and its tests: PostgreSQL 15
CONTAINER_PACKAGES := podman runc buildah mmdebstrap uidmap slirp4netns netavark aardvark-dns \
  catatonit fuse-overlayfs containernetworking-plugins
STACK_PACKAGES := postgresql

.PHONY: help setup uv system-deps demo test lint format clean images stack stack-down

help:
	@echo "make demo   - set up, then build data, validate, train, gate, register and serve"
	@echo "make test   - set up, then run the whole test suite"
	@echo "make images - build the pipeline, serving and PostgreSQL images (podman/docker, no registry)"
	@echo "make stack  - PostgreSQL, MLflow, Airflow and the service on this machine (dove stack up)"
	@echo "make lint   - ruff"

uv:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)" \
	  || python3 -m pip install --quiet --user --break-system-packages "uv==$(UV_VERSION)"

# The locked environment; re-synced only when the lock or the project changes. A change to
# pyproject.toml re-installs the project itself, so its entry points (`dove`, and the
# `dove pipeline` group in components/cli.py) follow.
$(VENV)/.synced: pyproject.toml uv.lock | uv
	$(UV) sync --frozen --compile-bytecode
	touch $@

# The search page's map library (Leaflet), from the npm registry at a pinned version and
# sha512 (dove_model/serving/page_assets.py), into serving/static/vendor/ (gitignored; the
# Bento includes it). Offline: NPM_TARBALL=leaflet-1.9.4.tgz, or NPM_REGISTRY=<a mirror>.
NPM_REGISTRY ?= https://registry.npmjs.org
NPM_TARBALL ?=
PAGE_ASSETS := serving/static/vendor/leaflet/.integrity
$(PAGE_ASSETS): dove_model/serving/page_assets.py | $(VENV)/.synced
	$(RUN) python -m dove_model.serving.page_assets --registry $(NPM_REGISTRY) \
	  $(if $(NPM_TARBALL),--tarball $(NPM_TARBALL))

setup: $(VENV)/.synced $(PAGE_ASSETS)

# Debian packages the tests need (Chromium for the browser test, kubectl for the manifest
# checks: Debian's kubernetes-client where no kubectl is installed, the container engine and
# PostgreSQL above); skipped when present.
system-deps:
	@missing=""; for p in $(APT_PACKAGES) $(CONTAINER_PACKAGES) $(STACK_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v kubectl >/dev/null 2>&1 || missing="$$missing kubernetes-client"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

demo: setup
	$(RUN) python -m dove_model.demo

# the serving image needs a model in the BentoML store: run it after `make demo` (or `dove
# deploy`); `make images IMAGES=pipeline` builds the pipeline image alone
IMAGES ?=
images: setup system-deps
	$(RUN) dove images build $(IMAGES)

stack: setup system-deps
	$(RUN) dove stack up

stack-down: setup
	$(RUN) dove stack down

# one pytest-xdist worker per core, at most 8 (each may hold a few GB of services and models;
# `make test TEST_WORKERS=0`: no workers, the suite in one process); a test module stays on
# one worker, so its module-scoped services start once
TEST_WORKERS ?= auto

test: setup system-deps
	$(RUN) ruff check .
	$(RUN) pytest -q -n $(TEST_WORKERS) --maxprocesses 8 --dist loadfile --durations=15

lint: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check .

format: setup
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

clean:
	rm -rf data/prepared reports artifacts mlruns local_outputs .cache
