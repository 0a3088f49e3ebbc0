# The two commands a newcomer needs: `make demo` and `make test`.
# Both install into .venv/ first (idempotent; see scripts/install.sh); only `make test`
# adds Chromium and PostgreSQL, which only tests use.
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.facepp-installed
export FACEPP_DATA ?= $(abspath ../shared/data)

.PHONY: help install demo test bench docker-test clean

help:
	@echo "make demo   install, then run the main job"
	@echo "make test   install, then run the whole test suite"
	@echo "make bench  install, then run the quick benchmarks"
	@echo "make docker-test  build the images, run the compose stack once end to end, tear it down"

$(STAMP): pyproject.toml scripts/install.sh scripts/build-pyfhel.sh scripts/seal-offline.cmake
	bash scripts/install.sh

install: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	bash scripts/install.sh --test-tools
	$(PY) -m pytest -q

bench: $(STAMP)
	mkdir -p out
	$(PY) -m benchmarks.paillier_bench --quick --json out/paillier_bench.json
	$(PY) -m benchmarks.ckks_bench --quick --json out/ckks_bench.json
	$(PY) -m benchmarks.scale_bench --quick --json out/scale_bench.json
	$(PY) -m benchmarks.federation_bench --quick --json out/federation_bench.json

# Needs podman + podman-compose or Docker with Compose, not .venv/ (README.md, "Docker deployment").
docker-test:
	python3 docker/stack_test.py --json out/docker_test.json

clean:
	rm -rf $(VENV) .cache .pytest_cache out
