# docker-transfer: `make demo` shows the tool at work, `make test` runs every test.
# Both install what they need: Debian packages (docker-registry, skopeo) and a .venv.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := docker-registry skopeo jq podman

.PHONY: setup system-deps venv demo test check lint typecheck bench clean

setup: system-deps venv

system-deps:
	@missing=""; \
	command -v docker-registry >/dev/null || missing="$$missing docker-registry"; \
	command -v skopeo >/dev/null || missing="$$missing skopeo"; \
	command -v jq >/dev/null || missing="$$missing jq"; \
	command -v podman >/dev/null || missing="$$missing podman"; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# The runtime dependencies at the workflow's pinned versions, so the tests run what CI installs.
$(VENV)/.installed: pyproject.toml requirements/workflow.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --constraint requirements/workflow.txt -e '.[test]'
	touch $@

venv: $(VENV)/.installed

demo: setup
	$(PY) -m devtools.demo

test: setup
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check src devtools tests benchmarks
	$(VENV)/bin/ruff format --check src devtools tests benchmarks

typecheck: venv
	$(VENV)/bin/mypy

check: lint typecheck test

bench: setup
	@missing=""; \
	for tool in curl strace; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	[ -x /usr/bin/time ] || missing="$$missing time"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for the benchmarks:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
