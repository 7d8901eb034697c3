# Fresh-machine entry points: `make run` (app on the demo case) and `make test`.
# Both create/reuse .venv and install what they need.
# TORCH_SPEC picks the torch build. The default is the CPU build (no multi-GB CUDA download
# on CPU machines). GPU users: `make run TORCH_SPEC=torch` (or install the CUDA wheel from
# pytorch.org into .venv first; an installed torch is kept).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.mriviewer-installed

.PHONY: run test lint format install clean install-desktop uninstall-desktop bundle

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[gui,twix,test]"
	touch $(STAMP)

install: $(STAMP)

# doctor --check-gui: Qt's xcb plugin needs system libraries pip cannot install; a missing one
# (or no display) is named with its apt/dnf install line instead of Qt's abort (README: First launch).
run: $(STAMP)
	@$(VENV)/bin/mriviewer doctor --check-gui
	$(VENV)/bin/mriviewer --demo

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen MPLBACKEND=Agg $(PY) -m pytest -q
	$(VENV)/bin/ruff check mriviewer tests benchmarks

lint: $(STAMP)
	$(VENV)/bin/ruff check mriviewer tests benchmarks
	$(VENV)/bin/ruff format --check mriviewer tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format mriviewer tests benchmarks
	$(VENV)/bin/ruff check --fix mriviewer tests benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache

# Desktop entry + icons for the current user (freedesktop; XDG_DATA_HOME honoured).
install-desktop:
	packaging/install-desktop.sh

uninstall-desktop:
	packaging/install-desktop.sh --uninstall

# Standalone folder dist/mriviewer/ (PyInstaller onedir) built from this .venv's torch and Qt;
# sizes, start-up times and limits: packaging/README.md.
bundle: $(STAMP)
	$(PY) -m pip install --quiet -e ".[gui,bundle]"
	$(PY) -m PyInstaller --noconfirm --distpath dist --workpath build/pyinstaller packaging/mriviewer.spec
	dist/mriviewer/mriviewer --version
	@echo "bundle: dist/mriviewer/ (run dist/mriviewer/mriviewer --demo)"
