# The whole set-up: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
STORE  ?= data/demo
PORT   ?= 8501

.PHONY: demo test lint bench serve chromium clean

$(STAMP): requirements.txt requirements-dev.txt requirements-optional.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

# Debian's Chromium for the browser tests (never `playwright install`: it downloads a browser).
chromium:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

demo: $(STAMP)
	$(PY) -m compute demo --out $(STORE)
	$(MAKE) serve

# Hosting mode: the one store $(STORE), or with STORES=ROOT every store directly under ROOT (by name).
serve: $(STAMP)
	$(PY) -m streamlit run dashboard/app.py --server.address 127.0.0.1 --server.port $(PORT) \
	  --server.headless true --browser.gatherUsageStats false -- $(if $(STORES),--stores $(STORES),--store $(STORE))

lint: $(STAMP)
	$(PY) -m ruff check .

test: $(STAMP) chromium lint
	$(PY) -m pytest

# The corruption benchmark compares against the imagecorruptions-imaug fork: a benchmark-only install.
bench: $(STAMP) chromium
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
