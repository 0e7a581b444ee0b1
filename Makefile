# One-command entry points; README.md documents them.
PYTHON ?= python3
OUT ?= data/demo
# The CPU build on a machine without a GPU; set TORCH to another pin (or a CUDA build) as needed.
TORCH ?= torch==2.13.0

.PHONY: install install-all demo test

install:
	$(PYTHON) -m pip install -q -e '.[test]'

# Everything the tests exercise: torch first (pinned), then the project with its extras.
install-all:
	$(PYTHON) -m pip install -q '$(TORCH)'
	$(PYTHON) -m pip install -q -e '.[test,models,acquire]'

demo: install
	tld build --source synthetic --out $(OUT) --workers 2

test: install-all
	ruff check timelapse_d tests benchmarks
	$(PYTHON) -m pytest -q
