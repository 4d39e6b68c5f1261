# Two commands do everything on a fresh machine (Python 3.11 and the package registries):
#   make demo   installs into .venv, then runs the whole job on freshly made phantom X-rays
#   make test   installs into .venv, then runs every notebook test (all flags) and tests/
# Both skip the install when .venv is up to date with pyproject.toml.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the notebook test flags (slow: minutes of CPU; shared: needs ../shared), as pyproject.toml lists them
TST_FLAGS := $(shell sed -n 's/^tst_flags *= *"\(.*\)"/\1/p' pyproject.toml)

.PHONY: install browser demo test test-fast export clean readme docs

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3,11), "Python 3.11 or newer is needed: run make PYTHON=/path/to/python3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pneumonia-fastai demo --out demo_out

# The HTML report and the web app are checked in a real browser: Debian's chromium (installed here when missing).
browser:
	@command -v chromium >/dev/null || { echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; }; }
	@command -v chromium >/dev/null || { echo "chromium is needed for the browser tests: apt-get install chromium"; exit 1; }

# Tests that need ../shared (the real X-rays and weights) fail without it here; a bare `pytest` skips them and says so.
test: $(STAMP) browser
	OMP_NUM_THREADS=1 $(BIN)/nbdev-test --flags "$(TST_FLAGS)" --timing
	PNEUMONIA_FASTAI_REQUIRE_SHARED=1 $(BIN)/python -m pytest tests/

# while iterating: notebooks without the slow and shared-data cells
test-fast: $(STAMP)
	$(BIN)/nbdev-test
	@echo 'test-fast: skipped the notebook cells flagged "$(TST_FLAGS)" and tests/ (make test runs everything)'

export: $(STAMP)
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean

# nbdev-readme needs Quarto, whose PyPI package downloads its binary at install time (impossible offline);
# nbconvert turns nbs/index.ipynb into README.md without it.
readme: $(STAMP)
	$(BIN)/jupyter nbconvert --to markdown --log-level WARN --output-dir . --output README nbs/index.ipynb

# The docs site into docs/ without Quarto: nbdev's processors, then MkDocs (tools/build_docs.py, mkdocs.yml).
# tests/test_docs.py checks it in chromium. Where Quarto is installed, nbdev-docs works as before.
docs: $(STAMP)
	$(BIN)/python tools/build_docs.py

clean:
	rm -rf demo_out _proc _mkdocs docs
