# One-command entry points; README.md documents them.
PYTHON ?= python3
OUT ?= data/demo
# The CPU build on a machine without a GPU; set TORCH to another pin (or a CUDA build) as needed.
TORCH ?= torch==2.13.0

# Label Studio's own environment (its pins clash with ours); the annotation tests use it.
LABEL_STUDIO_VENV ?= .venv-label-studio

.PHONY: install install-all label-studio demo test

install:
	$(PYTHON) -m pip install -q -e '.[test]'

# Everything the tests exercise: torch first (pinned), then the project with its extras.
install-all:
	$(PYTHON) -m pip install -q '$(TORCH)'
	$(PYTHON) -m pip install -q -e '.[test,models,acquire,annotation,tensorboard,report]'

label-studio: install-all
	test -x $(LABEL_STUDIO_VENV)/bin/label-studio || \
	  $(PYTHON) -m timelapse_d annotate server install --venv $(LABEL_STUDIO_VENV)

demo: install
	tld build --source synthetic --out $(OUT) --workers 2

test: install-all label-studio
	ruff check timelapse_d tests benchmarks
	TLD_LABEL_STUDIO_VENV=$(abspath $(LABEL_STUDIO_VENV)) $(PYTHON) -m pytest -q
