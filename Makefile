# The two commands a newcomer needs: `make demo` and `make test`.
# Both install into .venv/ first (idempotent; see scripts/install.sh).
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.facepp-installed
export FACEPP_DATA ?= $(abspath ../shared/data)

.PHONY: help install demo test bench clean

help:
	@echo "make demo   install, then run the main job"
	@echo "make test   install, then run the whole test suite"
	@echo "make bench  install, then run the quick benchmarks"

$(STAMP): pyproject.toml scripts/install.sh scripts/seal-offline.cmake
	bash scripts/install.sh

install: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	mkdir -p out
	$(PY) -m benchmarks.paillier_bench --quick --json out/paillier_bench.json
	$(PY) -m benchmarks.ckks_bench --quick --json out/ckks_bench.json
	$(PY) -m benchmarks.scale_bench --quick --json out/scale_bench.json
	$(PY) -m benchmarks.federation_bench --quick --json out/federation_bench.json

clean:
	rm -rf $(VENV) .cache .pytest_cache out
