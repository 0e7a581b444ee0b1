# One-command entry points; README.md documents them.
PYTHON ?= python3
OUT ?= data/demo
# The CPU build on a machine without a GPU; set TORCH to another pin (or a CUDA build) as needed.
TORCH ?= torch==2.13.0

# Label Studio's own environment (its pins clash with ours); the annotation tests use it.
LABEL_STUDIO_VENV ?= .venv-label-studio

# A newer Python for test-newest: PyAV 19 needs Python 3.12, and the annotation extra holds
# OpenCV below 4.13, so the main environment never meets the newest of either.
NEWEST_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3.12)
NEWEST_VENV ?= .venv-newest
NEWEST_TESTS = tests/test_media.py tests/test_real_media.py tests/test_cuts.py \
  tests/test_bad_input.py tests/test_borders.py tests/test_quality.py tests/test_motion.py \
  tests/test_stream_copy.py tests/test_build_synthetic.py tests/test_resume.py

.PHONY: install install-all label-studio demo test test-newest

install:
	$(PYTHON) -m pip install -q -e '.[test]'

# Everything the tests exercise: torch first (pinned), then the project with its extras.
install-all:
	$(PYTHON) -m pip install -q '$(TORCH)'
	$(PYTHON) -m pip install -q -e '.[test,models,acquire,annotation,tensorboard,report,ray]'

label-studio: install-all
	test -x $(LABEL_STUDIO_VENV)/bin/label-studio || \
	  $(PYTHON) -m timelapse_d annotate server install --venv $(LABEL_STUDIO_VENV)

demo: install
	tld build --source synthetic --out $(OUT) --workers 2

test: install-all label-studio
	ruff check timelapse_d tests benchmarks
	$(PYTHON) -m mypy
	TLD_LABEL_STUDIO_VENV=$(abspath $(LABEL_STUDIO_VENV)) $(PYTHON) -m pytest -q
	$(MAKE) test-newest

# Decoding, analysis and building again with the newest PyAV and OpenCV the project admits,
# on the core install alone (no extras beyond the test tools).
test-newest:
	@if ! $(NEWEST_PYTHON) --version >/dev/null 2>&1; then \
	  echo "test-newest: skipped, $(NEWEST_PYTHON) not found (set NEWEST_PYTHON)"; exit 0; fi; \
	test -x $(NEWEST_VENV)/bin/python || $(NEWEST_PYTHON) -m venv $(NEWEST_VENV); \
	$(NEWEST_VENV)/bin/python -m pip install -q --upgrade -e '.[test]' && \
	$(NEWEST_VENV)/bin/python -c 'import av, cv2; print("test-newest: PyAV", av.__version__, "OpenCV", cv2.__version__)' && \
	$(NEWEST_VENV)/bin/python -m pytest -q -p no:cacheprovider $(NEWEST_TESTS)
