# One-command entry points; README.md documents them.
PYTHON ?= python3
OUT ?= data/demo

.PHONY: install demo test lint

install:
	$(PYTHON) -m pip install -q -e '.[test]'

demo: install
	tld build --source synthetic --out $(OUT) --workers 2

test: install
	ruff check timelapse_d tests benchmarks
	$(PYTHON) -m pytest -q
