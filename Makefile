# The two commands a user needs, as root on Debian 12:
#   make demo   build a lab of network namespaces and show every tool on live traffic
#   make test   run the whole test suite (unit tests, then kernel tests in namespaces)
# Both install what they need first (Debian packages, a virtual environment, the
# BPF objects) and can be run again at any time.

# Debian's Python: every user can run it (the tool refuses non-root users itself,
# with one clear line), unlike a Python installed under /root.
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup deps venv build demo test test-unit test-kernel bench lint clean

setup: deps venv build

deps:
	@scripts/install-deps

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

build: venv
	$(PY) buildbpf.py

demo: setup
	$(VENV)/bin/netbpf lab demo

# The second pass: the flood-dependent tests again with the fallback generator, as on a
# machine that refuses live XDP frames (tests/kernel/test_flood.py says how it is chosen).
test: setup
	$(PY) -m pytest $(PYTEST_ARGS) tests/unit tests/kernel
	NETBPF_FLOOD=socket $(PY) -m pytest $(PYTEST_ARGS) -m flood tests/kernel

test-unit: setup
	$(PY) -m pytest $(PYTEST_ARGS) tests/unit

test-kernel: setup
	$(PY) -m pytest $(PYTEST_ARGS) tests/kernel
	NETBPF_FLOOD=socket $(PY) -m pytest $(PYTEST_ARGS) -m flood tests/kernel

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist src/*.egg-info
	find src tests -name '*.bpf.o' -delete

lint: venv
	$(PY) -m pip install -q -e '.[dev]'
	$(VENV)/bin/ruff check src tests bench buildbpf.py setup.py
	$(VENV)/bin/mypy src/netbpf
