# The whole set-up: `make demo` and `make test` (`make check` while working). All create .venv when it is missing.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
STORE  ?= data/demo
PORT   ?= 8501

.PHONY: demo test check lint bench bench-100m serve chromium texlive clean

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

# Debian's pdflatex with booktabs and poppler's pdftotext: the report test compiles `report --format latex`
# in a paper layout and measures the printed size of its numbers.
texlive:
	@{ command -v pdflatex && command -v pdftotext; } >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends texlive-latex-recommended \
	    poppler-utils; }

demo: $(STAMP)
	$(PY) -m compute demo --out $(STORE)
	$(MAKE) serve

# Hosting mode: the one store $(STORE), or with STORES=ROOT every store directly under ROOT (by name);
# ALLOW_ROOTS="DIR ..." lets attribution load checkpoints kept there (see README, allowed roots);
# ALLOW_MODULES="timm ..." lets a model card name those installed packages as its loader.
# WORKERS=N (N > 1): N Streamlit processes behind Caddy on $(PORT), sessions kept on their worker, a dead
# worker started again (dashboard/supervise.py); WORKERS=1 (the default) is one Streamlit process.
WORKERS ?= 1
APP_ARGS = $(if $(STORES),--stores $(STORES),--store $(STORE)) \
  $(foreach root,$(ALLOW_ROOTS),--allow-root $(root)) $(foreach module,$(ALLOW_MODULES),--allow-module $(module))
serve: $(STAMP)
ifeq ($(WORKERS),1)
	$(PY) -m dashboard.serve --server.address 127.0.0.1 --server.port $(PORT) \
	  --server.headless true --browser.gatherUsageStats false \
	  -- $(APP_ARGS)
else
	$(PY) -m dashboard.supervise --workers $(WORKERS) --port $(PORT) -- $(APP_ARGS)
endif

lint: $(STAMP)
	$(PY) -m ruff check .

# The tests run in pytest-xdist workers, one per core (PYTEST_WORKERS=N to choose, PYTEST_WORKERS= for one
# process), each module on one worker so its module fixtures are built once (--dist loadscope; xdist 3.8's
# loadgroup does not group under pytest 9); tests/conftest.py gives each worker its share of the cores.
PYTEST_WORKERS ?= auto
PYTEST_XDIST := $(if $(PYTEST_WORKERS),-n $(PYTEST_WORKERS) --dist loadscope)
# Python may cache compiled modules (and pytest its rewritten test modules) even where the environment says not
# to (PYTHONDONTWRITEBYTECODE): every run would otherwise compile ~200 test modules again (8 s of collection).
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest

# Every test, the slow and browser ones included; prints the 25 slowest (CI runs this).
test: $(STAMP) chromium texlive lint
	$(PYTEST) $(PYTEST_XDIST) --durations=25

# The fast subset while working: no training, kill/resume, Ray, Chromium or large AppTest.
check: $(STAMP) lint
	$(PYTEST) $(PYTEST_XDIST) -m "not slow and not browser" -p no:cacheprovider --durations=10

# The corruption benchmark compares against the imagecorruptions-imaug fork: a benchmark-only install.
bench: $(STAMP) chromium
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) -m bench

# A study the size of the real ones (issue 21): 100M prediction rows, about 10 GB, built once (15-30 min on 2
# cores, then its derived files), then every page's server time, the queries and 20/50 websocket sessions.
BENCH_STORE ?= bench/out/study-100m
bench-100m: $(STAMP)
	test -f $(BENCH_STORE)/index/aggregates.json || $(PY) -m bench store --rows 100M --out $(BENCH_STORE)
	$(PY) -m bench queries --store $(BENCH_STORE)
	$(PY) -m bench pages --store $(BENCH_STORE)
	$(PY) -m bench load --store $(BENCH_STORE)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
