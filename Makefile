# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lab setup clean

setup: $(STAMP)

# Re-install whenever the project's dependency list changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[course,dev,cluster]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python exercises/instructor_demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/autograd_overhead.py
	$(BIN)/python bench/mlp_step.py
	$(BIN)/python bench/grading.py

# JupyterLab refuses to run as root unless told to (CI machines run as root).
lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=chapters $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
