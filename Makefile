VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: install run test test-fast lint typecheck bench dist clean

$(VENV)/.installed: pyproject.toml
	@echo "infersight: creating $(VENV) and installing the package with its extras (about a minute, once)..."
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[nvidia,server,litellm,test,lint]'
	@echo "infersight: installed into $(VENV)"
	touch $@

install: $(VENV)/.installed

run: install
	@echo "infersight: starting a server and an agent for this node on 127.0.0.1 (Ctrl-C stops both);"
	@echo "            to see a simulated multi-cloud fleet instead, run: $(VENV)/bin/infersight demo"
	$(VENV)/bin/infersight up

# Four workers: most tests wait on sockets, subprocesses and chDB, so 4 beat 2 on 2 cores (385 s vs 606 s measured);
# a module's tests stay in one worker (module fixtures built once).
test: install
	$(PY) -m pytest -q -n 4 --dist loadfile

# Unit tests only: no subprocesses, browsers or Alertmanager binaries.
test-fast: install
	$(PY) -m pytest -q -n 4 --dist loadfile -m "not e2e"

lint: install
	$(VENV)/bin/ruff check src tests bench dashboards scripts

typecheck: install
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/run_all.py

# sdist and wheel in dist/ (`pip install dist/infersight-*.whl[server]`; docs/deploy.md).
dist: install
	rm -rf dist
	$(PY) -m build --outdir dist .

clean:
	rm -rf $(VENV) build dist *.egg-info
