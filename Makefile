# perpsim: every command sets itself up. `make demo` and `make test` are the README's quick start.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# ape-vyper uses the pip-installed vyper only when it is on PATH; otherwise it tries to download one.
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/@foundry-rs/anvil-linux-amd64/bin:$(PATH)
STAMP := $(VENV)/.installed
VENV_HOOK := $(VENV)/.venv-hook
# Every optional extra (pyproject.toml): `all` lists them.
EXTRAS := all
# The browser tests drive Debian's Chromium (Playwright's own browser download cannot be used).
CHROMIUM := /usr/bin/chromium
ANVIL := node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil

.PHONY: setup chromium demo test compile bench bench-sweep bench-attack fuzz devnet devnet-stop docs clean

setup: $(STAMP) $(VENV_HOOK) $(ANVIL)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "perpsim needs $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"  # every optional extra (pyproject's `all`), so tests skip nothing
	$(BIN)/python -m pip check
	touch $(STAMP)

# ape from .venv/bin/ape alone, without the venv on PATH: ape-vyper uses the pip-installed vyper
# only when `vyper` is on PATH (else VyperNotInstalled), and its config model warns at every ape
# command (IncompleteFieldDefinitionWarning: a forward reference in ape-vyper's pydantic model).
# scripts/_venv_hook.pth, copied into the venv's site-packages, runs at the venv interpreter's
# start: it puts the venv's bin first on PATH and silences that one warning.
$(VENV_HOOK): $(STAMP) scripts/_venv_hook.pth
	$(BIN)/python -c "import pathlib, shutil, sysconfig; shutil.copy('scripts/_venv_hook.pth', pathlib.Path(sysconfig.get_path('purelib'), 'perpsim_venv_hook.pth'))"
	touch $(VENV_HOOK)

# anvil comes from the npm registry, pinned in package.json / package-lock.json.
$(ANVIL): package.json
	@command -v npm >/dev/null || { echo "npm not found: anvil (the devnet) cannot be installed; integration tests will be skipped"; exit 0; }
	npm ci --no-audit --no-fund --loglevel=error
	@test -x $(ANVIL) || chmod +x $(ANVIL)

compile: $(STAMP)
	$(BIN)/ape compile

# Runs the flash-crash scenario and prints where its report is (nothing is opened).
demo: setup
	$(BIN)/perpsim run flash-crash

# As root (CI), installs Chromium with apt when it is missing; otherwise says why the browser tests will skip.
chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium is missing and this is not root: the browser tests will be skipped (apt-get install chromium)"; fi

test: setup chromium
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python -m benchmarks.gas
	$(BIN)/python -m benchmarks.sweep
	$(BIN)/python -m benchmarks.throughput

# Sweep throughput alone: runs/min on 1 and 2 workers (local, Ray) and the snapshot-reuse saving (a few minutes).
bench-sweep: setup
	$(BIN)/python -m benchmarks.sweep

# Attack search: trials/s and trials to the first profitable plan with each defence off (a few minutes).
bench-attack: setup
	$(BIN)/python -m benchmarks.attack

# A long hypothesis campaign over the stateful suite (tests/fuzz); `make test` runs the quick `ci` profile.
fuzz: setup
	HYPOTHESIS_PROFILE=campaign $(BIN)/python -m tests.fuzz.campaign

# anvil on 127.0.0.1 (PORT, default 8545; BLOCK_TIME for interval mining; CONFIG: what to deploy, default calm),
# the protocol deployed through ape; `make devnet-stop` stops it.
devnet: setup
	$(BIN)/python -m sim.devnet start

devnet-stop: setup
	$(BIN)/python -m sim.devnet stop

# docs/scenario-reference.md is generated from the scenario schema (a test fails when it is stale).
docs: setup
	$(BIN)/python -m sim.reference > docs/scenario-reference.md

clean:
	rm -rf .build .pytest_cache .hypothesis
