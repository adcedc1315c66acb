# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lab study setup clean hub hub-stop hub-clean

setup: $(STAMP)

# Re-install whenever the project's dependency list changes.
# pip 25 and later show the warnings of the build backend, and setuptools
# warns on every editable install of a project laid out like this one
# ("Editable installation ... Please be careful with folders in your
# working directory"), a note with nothing to act on: it is filtered out
# by its text, every other warning still shows.
EXTRAS       ?= course,dev,cluster
QUIET_BUILD  := PYTHONWARNINGS="ignore:Editable installation"
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(QUIET_BUILD) $(BIN)/python -m pip install --quiet \
	  -e '.$(if $(EXTRAS),[$(EXTRAS)])'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python exercises/instructor_demo.py

# Two pytest-xdist workers, for a 2-core machine (TEST_WORKERS=auto: one
# per core; 0: a single process). What must run in one worker is said in
# tests/conftest.py.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

bench: $(STAMP)
	$(BIN)/python bench/autograd_overhead.py
	$(BIN)/python bench/mlp_step.py
	$(BIN)/python bench/grading.py

# JupyterLab refuses to run as root unless told to (CI machines run as
# root). Each JupyterLab runs in its own notebook folder, so that a new
# terminal opens there and nbgrader finds the course's config there. The
# settings that study.py writes hide the news toast and nbgrader's panels
# that need an exchange, keep each target's saved layout apart, and start
# terminals as a shell that keeps the venv first on PATH, so `autograde`
# is found without activating anything. LAB_FLAGS adds JupyterLab options
# (make study LAB_FLAGS=--port=9999).
STUDY     ?= build/study
LAB_FLAGS ?=
LAB_ENV   := PATH="$(abspath $(BIN)):$$PATH"
LAB_ARGS  := --no-browser $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_FLAGS)

# JupyterLab on the chapters themselves (edits land in the repository).
lab: $(STAMP)
	$(BIN)/python exercises/study.py --lab-config build/lab-config chapters
	cd chapters && JUPYTER_CONFIG_PATH="$(abspath build/lab-config)" \
	  $(LAB_ENV) "$(abspath $(BIN))/jupyter" lab $(LAB_ARGS)

# A student's own copy: chapters and released exercises in $(STUDY);
# answers there are kept between runs. Test one with `autograde check`.
study: $(STAMP)
	$(BIN)/python exercises/study.py "$(STUDY)"
	cd "$(STUDY)" && JUPYTER_CONFIG_PATH="$(abspath $(STUDY))/.jupyter" \
	  $(LAB_ENV) "$(abspath $(BIN))/jupyter" lab $(LAB_ARGS)

# The course on a JupyterHub with an instructor's and two students'
# accounts (root only; see hub/README.md). HUB_FLAGS passes options to
# hub/hub.py (make hub HUB_FLAGS="--port 8080").
HUB_FLAGS ?=
hub: $(STAMP)
	$(BIN)/python hub/hub.py start $(HUB_FLAGS)

hub-stop: $(STAMP)
	$(BIN)/python hub/hub.py stop $(HUB_FLAGS)

# Stops the hub, removes its accounts (with their homes), the exchange,
# the hub's environment and build/hub.
hub-clean: $(STAMP)
	$(BIN)/python hub/hub.py clean $(HUB_FLAGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
