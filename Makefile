# Vigil: `make run` starts the whole system, `make test` runs the tests, `make bench` the benchmarks.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Keep compiled bytecode (gitignored __pycache__/): with PYTHONDONTWRITEBYTECODE set, as on some
# hosts, every hub, agent and CLI process compiled our ~400 modules from source again at start,
# about 0.35 s of CPU each, and the test suite starts hundreds.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test bench setup clean chromium promtool chaos soak

setup: $(STAMP) chromium promtool

# The console's browser tests drive Debian's Chromium (no browser download is possible here).
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian Chromium for the console browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
	  echo "NOTE: /usr/bin/chromium is missing and we are not root: console browser tests will be skipped (sudo apt-get install -y chromium)"; \
	fi

# The alert rules' tests run promtool, which Debian ships in its prometheus package (which also
# brings the server's systemd unit: on a host with systemd, `systemctl disable --now prometheus`).
promtool:
	@if command -v promtool >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian's prometheus package for promtool (alert rule tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; \
	else \
	  echo "NOTE: promtool is missing and we are not root: the alert rule tests will be skipped (sudo apt-get install -y prometheus)"; \
	fi

$(STAMP): pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m provisioning.stack

# Two workers: most tests wait on real processes and servers, so two of them share two cores well
# and the suite takes half the time. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

test: $(STAMP) chromium promtool
	$(PY) -m pytest -n $(TEST_WORKERS)

# The chaos suite at the seed's scale (tests/chaos; docs/operations.md "Chaos suite"): every
# scenario in one process, printing its `CHAOS <id> <figure>=…` lines. About 20 minutes (the WAN
# partition alone is held 10). `make test` runs the same scenarios reduced.
chaos: $(STAMP)
	VIGIL_CHAOS=full $(PY) -m pytest -p no:xdist -p no:cacheprovider -s tests/chaos

# 30 minutes (VIGIL_SOAK_S seconds) of steady traffic through a real hub and edge; their RSS may
# grow less than 10 % after the warm-up. Never part of `make test`.
VIGIL_SOAK_S ?= 1800
soak: $(STAMP)
	VIGIL_SOAK=1 VIGIL_SOAK_S=$(VIGIL_SOAK_S) $(PY) -m pytest -p no:xdist -p no:cacheprovider -s tests/chaos/test_soak.py

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) var .pytest_cache bench/last.json
