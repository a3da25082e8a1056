# The README's two commands: `make demo` (the main job) and `make test` (what CI runs).
VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: install demo test test-fast lint services-up services-down chromium odbc

install: $(VENV)/.installed

# --compile-bytecode: every package compiled once, here (~30 s). Where Python may not write its
# bytecode cache (PYTHONDONTWRITEBYTECODE, set on the machines CI runs on) every process compiles
# all it imports again: loading the Dagster definitions took 25 s of CPU (6 s compiled), in each
# code server, run worker and test that loads them.
$(VENV)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --extra dev --compile-bytecode
	@touch $@

demo: install
	$(VENV)/bin/c360 up

# Everything: the fast tier on one worker per core, then the tests that need Kafka and MongoDB
# (one session of services, one test at a time); fails if either tier failed.
test: install chromium odbc
	@rc=0; \
	$(PY) -m pytest -m "not services" -n auto --dist loadscope --no-loadscope-reorder --durations=15 || rc=1; \
	$(PY) -m pytest -m services --durations=15 || rc=1; \
	exit $$rc

# The fast tier: dbt on DuckDB fixtures, unit tests, the API on a built serving copy; no Kafka or
# MongoDB (tests that need them are marked `services`, see tests/conftest.py). One worker per
# core (pytest-xdist), each test module in one worker so its module fixtures are built once, the
# slowest modules first (tests/conftest.py).
test-fast: install odbc
	$(PY) -m pytest -m "not services" -n auto --dist loadscope --no-loadscope-reorder

# The dashboard test drives a real headless Chromium (Debian's package); install it when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y chromium)

# The SQL endpoint's tests drive PostgreSQL's ODBC driver through unixODBC (Debian's packages,
# registered as "PostgreSQL Unicode"); install them when missing.
odbc:
	@odbcinst -q -d -n "PostgreSQL Unicode" >/dev/null 2>&1 || (apt-get update && apt-get install -y unixodbc odbc-postgresql)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

services-up: install
	$(VENV)/bin/c360 services up

services-down: install
	$(VENV)/bin/c360 services down
