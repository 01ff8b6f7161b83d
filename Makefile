# Two commands for a fresh Debian machine with Python 3.11:
#   make demo   the whole system on embedded defaults, prints the dashboard address
#   make test   the whole test suite (installs what it needs first)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# make test spreads the suite's modules over the cores (pytest-xdist, a module's
# tests on one worker so its fixtures start once); TEST_WORKERS=0: one process.
TEST_WORKERS ?= auto
PYTEST_ARGS  ?= -n $(TEST_WORKERS) --dist loadfile --durations=15

.PHONY: demo test lint system-deps venv clean bench

$(STAMP): pyproject.toml $(wildcard package.json package-lock.json)
	@echo "==> creating virtual environment in $(VENV)"
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "==> python3 -m venv needs Debian's python3-venv: installing it"; \
	  rm -rf $(VENV); SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3-venv; \
	  $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip
	@echo "==> installing nps-edge and its development tools (a minute on first run)"
	$(BIN)/pip install --quiet -e '.[dev]'
	@if [ -f package.json ]; then \
	  if ! command -v npm >/dev/null 2>&1; then \
	    echo "==> installing npm (Debian package) for the dashboard's chart library"; \
	    SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq npm; \
	  fi; \
	  echo "==> installing dashboard assets (npm)"; \
	  npm ci --silent --no-audit --no-fund || npm install --silent --no-audit --no-fund; \
	fi
	@touch $(STAMP)

# The dashboard's chart library, copied into the package (served from there, and
# shipped in the wheel as package data): the server needs no node_modules at run time.
VENDOR := server/dashboard/vendor/chart.umd.min.js
$(VENDOR): $(STAMP)
	@mkdir -p $(dir $@)
	cp node_modules/chart.js/dist/chart.umd.min.js $@

venv: $(STAMP) $(VENDOR)

# Test-only system packages: Mosquitto (the production broker) and Chromium
# (browser tests). Installed with apt-get when missing; needs root or sudo.
system-deps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto mosquitto-clients"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
	  echo "==> installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

demo: $(STAMP) $(VENDOR)
	$(BIN)/nps-edge demo $(DEMO_ARGS)

# ruff, the format check and mypy: seconds, nothing installed beyond the venv.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy contract nps_edge gateway server firmware broker tests

test: $(STAMP) $(VENDOR) system-deps lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP) $(VENDOR)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
