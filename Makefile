# hubbub — the two set-up commands are `make run` and `make test`; both build .venv on demand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
AUTOBAHN_VENV := .venv-autobahn

.PHONY: run test lint docs readme reliability fuzz autobahn autobahn-venv test-deps js-deps browser-deps bench bench-deps bench-scale clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Every extra and the dev tools (make test, make lint): the `dev` dependency group (PEP 735,
# pip >= 25.1, hence the upgrade first).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all]' --group dev
	touch $(STAMP)

# What `hubbub serve` needs, its embedded default included, and nothing else: the runtime
# dependencies (no driver, no dev tool). A venv that has the dev set keeps it.
RUN_STAMP := $(VENV)/.run-stamp

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

# `hubbub serve` with this checkout's server API key and token secret, made once into
# $(RUN_SECRETS) and printed on every run (scripts/run.sh); HUBBUB_* variables reach the
# server, e.g. `HUBBUB_PORT=9000 make run`.
RUN_SECRETS ?= $(VENV)/hubbub-run.env

run: $(RUN_STAMP)
	@exec bash scripts/run.sh $(BIN) $(RUN_SECRETS)

autobahn-venv: $(STAMP)
	bash scripts/autobahn-venv.sh $(AUTOBAHN_VENV)

# redis-server, PostgreSQL, Node and npm, Chromium: installed from Debian (apt-get) when
# missing and running as root; otherwise a message, and the tests that need them skip (fail
# under CI=true). Quiet when everything is there.
test-deps:
	@bash scripts/test-deps.sh

# centrifuge-js, pusher-js and laravel-echo for the interop and browser tests, from the lock
# file (npm ci, when any of them is missing); skipped without npm except under CI.
js-deps: test-deps
	@if command -v npm >/dev/null 2>&1; then \
	  missing=; \
	  for pkg in centrifuge pusher-js laravel-echo; do \
	    [ -d tests/interop/js/node_modules/$$pkg ] || missing=$$pkg; \
	  done; \
	  [ -z "$$missing" ] || npm ci --silent --prefix tests/interop/js; \
	else \
	  echo "js-deps: npm not found; the centrifuge-js, pusher-js and Laravel Echo tests will be skipped" >&2; \
	  [ "$$CI" != "true" ]; \
	fi

# Debian's Chromium for the browser tests (Playwright drives it; no browser is downloaded).
browser-deps:
	@bash scripts/test-deps.sh chromium

# The suite in TEST_WORKERS processes (pytest-xdist): its tests mostly wait for servers they
# start, so two processes on two cores take half the time (14 min -> 7.5 min). A module stays
# in one process (--dist loadscope), so its module-scoped servers are started once; each
# process has its own throw-away Redis and PostgreSQL. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

test: $(STAMP) test-deps autobahn-venv js-deps
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope

# The reliability suite at the issue's scale (make test runs it small); figures are appended
# to reports/reliability.jsonl and quoted in docs/reliability.md.
reliability: $(STAMP)
	HUBBUB_RELIABILITY=long $(BIN)/python -m pytest tests/reliability -m reliability -s -q

# The property-based fuzz tests (tests/fuzz) for 10 minutes, fresh seeds every round.
fuzz: $(STAMP)
	$(BIN)/python scripts/fuzz.py --minutes 10

# The docs site into site/ (mkdocs.yml; offline: no CDN, no web fonts). Its configuration
# reference is generated from src/hubbub/config.py at build time; warnings fail the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

# The README's configuration tables, regenerated from the settings' descriptions
# (tests/unit/test_configdoc.py fails while they differ).
readme: $(STAMP)
	PYTHONPATH=src $(BIN)/python -m hubbub.configdoc README.md

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts examples bench
	$(BIN)/ruff format --check src tests scripts examples bench
	$(BIN)/mypy src/hubbub

# The whole Autobahn|Testsuite (517 cases, two wstest/server pairs in parallel, ~7 minutes).
autobahn: $(STAMP) autobahn-venv
	$(BIN)/python scripts/autobahn.py --suite full

# Benchmarks print numbers; they are never part of `make test`. `make bench` installs the
# peers it compares with (the `bench` dependency group, Node's ws from bench/peers/package-lock.json).
BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[all]' --group dev --group bench
	touch $(BENCH_STAMP)

bench-deps: $(BENCH_STAMP)
	@[ -d bench/peers/node_modules/ws ] || npm ci --silent --prefix bench/peers

bench: bench-deps
	$(BIN)/python bench/peers_bench.py
	$(BIN)/python bench/history_bench.py
	$(BIN)/python bench/workers_bench.py
	$(BIN)/python bench/formats_bench.py
	$(BIN)/python bench/default_path_bench.py
	$(BIN)/python bench/fanout_bench.py
	$(BIN)/python bench/stream_bench.py
	$(BIN)/python bench/publish_bench.py
	$(BIN)/python bench/asgi_bench.py
	$(BIN)/python bench/writedelay_bench.py

# The Redis engine with 1 worker and with as many workers as the machine has cores
# (os.cpu_count()): per-worker deliveries per CPU-second, memory per connection, Redis CPU per
# publication and per delivery node (docs/performance.md, "Many cores: the model").
bench-scale: bench-deps
	$(BIN)/python bench/workers_bench.py --workers 1,cores

clean:
	rm -rf $(VENV) $(AUTOBAHN_VENV) reports
