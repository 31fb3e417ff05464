# The two commands: `make demo` (the smoke suite on CPU, then the report) and `make test`.
# Both create .venv and install what is missing first, so they work on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline

.PHONY: demo test lab setup system-deps samples bench clean

# system packages: espeak-ng makes the sample speech and is the offline speech engine (`make samples` and
# the speech tests need it); installed only when missing
system-deps:
	@command -v espeak-ng >/dev/null 2>&1 || { \
	  echo "installing espeak-ng (sample speech)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq espeak-ng >/dev/null; }

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

samples: system-deps setup
	$(BIN)/python data/make_samples.py

demo: setup
	$(BIN)/workbench models build-tiny runs/tiny --only wan-i2v   # tiny random-weight Wan I2V (kept when present)
	$(BIN)/workbench run evals/suites/smoke.yaml
	@echo "open runs/smoke/report.html"

test: setup
	@$(MAKE) --no-print-directory system-deps || echo "note: espeak-ng could not be installed; the speech tests skip"
	$(BIN)/lint-imports   # the layers of pyproject.toml [tool.importlinter] (tests/test_imports.py: also cycles)
	$(BIN)/python -m pytest -q

# JupyterLab with the repository root as the server root (notebooks, runs and reports all reachable),
# on a free port (or LAB_PORT), a fresh token, --allow-root when run as root; prints the URL to open.
# The tracked notebooks are saved without outputs (workbench.ui.nbstrip), so autosave never dirties git.
# LAB_IP=0.0.0.0 listens on every interface (a GPU box reached over the network; prefer an ssh tunnel).
LAB_IP ?= 127.0.0.1
lab: setup
	@PORT=$${LAB_PORT:-$$($(BIN)/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}; \
	TOKEN=$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(24))'); \
	ROOT=$$( [ "$$(id -u)" = 0 ] && echo --allow-root ); \
	HOST=$$( [ "$(LAB_IP)" = 0.0.0.0 ] && hostname || echo $(LAB_IP) ); \
	echo ""; echo "  JupyterLab (server root $(CURDIR)):"; \
	echo "  http://$$HOST:$$PORT/lab/tree/notebooks/01_quickstart.ipynb?token=$$TOKEN"; echo ""; \
	exec $(BIN)/jupyter lab --no-browser --ip=$(LAB_IP) --port=$$PORT --ServerApp.port_retries=0 \
	  --ServerApp.root_dir="$(CURDIR)" --IdentityProvider.token=$$TOKEN $$ROOT \
	  --ContentsManager.pre_save_hook=workbench.ui.nbstrip.strip_outputs_hook

bench: setup
	$(BIN)/python benchmarks/bench_metrics.py

clean:
	rm -rf runs .pytest_cache
