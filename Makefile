# Two commands for a fresh machine: `make demo` and `make test`. Both install what they need
# into .venv first. torch comes from pip with the pinned release that lies on this machine's disk.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo_out

.PHONY: install demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[torch,onnx,yolo,ray,dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/sitesight demo --out $(DEMO_OUT)

test: install
	$(BIN)/python -m pytest -q tests

lint: install
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
