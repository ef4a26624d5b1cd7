# spikedyn: two commands do everything on a fresh machine.
#   make demo   set up .venv (Python 3.11) and run the main job
#   make test   set up .venv and .venv-lava (Python 3.10, for Lava), run ruff and the test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV      ?= .venv
LAVA_VENV ?= .venv-lava
PY        := $(VENV)/bin/python
PIP       := $(PY) -m pip --disable-pip-version-check
STAMP     := $(VENV)/.spikedyn-installed
LAVA_STAMP := $(LAVA_VENV)/.spikedyn-installed
PYTEST_ARGS ?=

# The first interpreter of the wanted version found wins; PYTHON311 / SPIKEDYN_LAVA_PYTHON override.
# pyenv shims (python3.10 on PATH) can be broken, so every candidate is tried by running it.
find_python = for c in $(1); do \
	  [ -n "$$c" ] || continue; \
	  if "$$c" -c 'import sys; sys.exit(0 if "%d.%d" % sys.version_info[:2] == "$(2)" else 1)' >/dev/null 2>&1; then \
	    command -v "$$c" 2>/dev/null || echo "$$c"; exit 0; fi; \
	done; exit 1

PY311_CANDIDATES = $${PYTHON311:-} python3.11 $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.11*/bin/python 2>/dev/null) \
	$$(uv python find 3.11 2>/dev/null) python3
PY310_CANDIDATES = $${SPIKEDYN_LAVA_PYTHON:-} python3.10 $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.10*/bin/python 2>/dev/null) \
	$$(uv python find 3.10 2>/dev/null)

.PHONY: help demo test lint lint-imports venv lava clean
help:
	@echo "make demo   train a small rate net and its spiking twin (sets up .venv first)"
	@echo "make test   ruff + the whole test suite (sets up .venv and .venv-lava first)"
	@echo "make lava   only build .venv-lava (Python 3.10 + lava-nc) for the hardware layer"
	@echo "make lint   ruff + lint-imports (the layers declared in pyproject.toml)"
	@echo "make docs   build the documentation site into site/ (mkdocs --strict)"

venv: $(STAMP)
$(STAMP): pyproject.toml
	@set -e; py=$$($(call find_python,$(PY311_CANDIDATES),3.11)) || { \
	  echo "spikedyn: no Python 3.11 found (tried PYTHON311, python3.11, pyenv versions, uv). Install Python 3.11 or set PYTHON311=/path/to/python3.11." >&2; exit 1; }; \
	[ -x $(PY) ] || "$$py" -m venv $(VENV); \
	$(PIP) install -q --upgrade pip setuptools wheel; \
	if ! $(PY) -c 'import torch' >/dev/null 2>&1; then \
	  echo "installing torch (CPU build 2.13.0 when available)"; \
	  $(PIP) install -q torch==2.13.0 || $(PIP) install -q torch; fi; \
	$(PIP) install -q -e ".[test]"; \
	$(PIP) install -q --no-deps "norse==1.1.0"; \
	touch $(STAMP)

lava: $(LAVA_STAMP)
$(LAVA_STAMP): pyproject.toml
	@set -e; py=$$($(call find_python,$(PY310_CANDIDATES),3.10)) || { \
	  echo "spikedyn: Lava needs Python 3.10 and none was found (tried SPIKEDYN_LAVA_PYTHON, python3.10, pyenv versions, uv python find 3.10). Install one (e.g. 'pyenv install 3.10' or 'uv python install 3.10') or set SPIKEDYN_LAVA_PYTHON." >&2; exit 1; }; \
	[ -x $(LAVA_VENV)/bin/python ] || "$$py" -m venv $(LAVA_VENV); \
	$(LAVA_VENV)/bin/python -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel; \
	$(LAVA_VENV)/bin/python -m pip install -q --disable-pip-version-check "lava-nc==0.10.0" "nir>=1.0.4" numpy "array-api-compat>=1.9" pydantic pyyaml tqdm; \
	$(LAVA_VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .; \
	touch $(LAVA_STAMP)

# The documentation site (MkDocs Material + mkdocstrings) into site/; warnings are errors.
.PHONY: docs
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	@$(MAKE) --no-print-directory lint-imports

# The layers of pyproject.toml's [tool.importlinter]. spikedyn.tasks and spikedyn.hardware live in tasks/ and
# hardware/ (installed under spikedyn), which grimp cannot see in place: check a copy laid out as installed.
lint-imports: $(STAMP)
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cp -r spikedyn "$$tmp/spikedyn"; cp -r tasks "$$tmp/spikedyn/tasks"; cp -r hardware "$$tmp/spikedyn/hardware"; \
	cd "$$tmp" && PYTHONPATH="$$tmp" "$(CURDIR)/$(VENV)/bin/lint-imports" --no-cache "$(CURDIR)/pyproject.toml"

demo: $(STAMP)
	$(VENV)/bin/spikedyn demo

# The Lava environment is optional for the suite: without Python 3.10 its tests are reported as skipped.
test: $(STAMP)
	@$(MAKE) --no-print-directory lava || echo "spikedyn: continuing without .venv-lava; Lava tests will be skipped"
	$(VENV)/bin/ruff check .
	@$(MAKE) --no-print-directory lint-imports
	@# pytest exits 5 when nothing was collected (e.g. a -k filter); that is not a failure.
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

clean:
	rm -rf $(VENV) $(LAVA_VENV) .pytest_cache build *.egg-info
