# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lab study setup clean

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

# JupyterLab refuses to run as root unless told to (CI machines run as
# root). The settings in build/ hide the news toast and nbgrader's panels
# that need an exchange; the venv goes first on PATH so that a terminal in
# JupyterLab finds `autograde` without activating anything.
STUDY    ?= build/study
LAB_ENV  := PATH="$(abspath $(BIN)):$$PATH"
LAB_ARGS := --no-browser $(if $(filter 0,$(shell id -u)),--allow-root)

# JupyterLab on the chapters themselves (edits land in the repository).
lab: $(STAMP)
	$(BIN)/python exercises/study.py --lab-config build/lab-config
	JUPYTER_CONFIG_PATH="$(abspath build/lab-config)" $(LAB_ENV) \
	  $(BIN)/jupyter lab --ServerApp.root_dir=chapters $(LAB_ARGS)

# A student's own copy: chapters and released exercises in $(STUDY);
# answers there are kept between runs. Test one with `autograde check`.
study: $(STAMP)
	$(BIN)/python exercises/study.py $(STUDY)
	JUPYTER_CONFIG_PATH="$(abspath $(STUDY))/.jupyter" $(LAB_ENV) \
	  $(BIN)/jupyter lab --ServerApp.root_dir="$(STUDY)" $(LAB_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
