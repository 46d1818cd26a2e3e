# The two commands a new user needs: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PG_ADMIN_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: install serve test test-sqlite test-postgresql lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## Serve consentgate on the embedded SQLite store (created and migrated on first start).
serve: install
	$(BIN)/consentgate serve --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

## Lint, then run the whole suite on SQLite and again on PostgreSQL.
test: install lint test-sqlite test-postgresql

lint: install
	$(BIN)/ruff check consentgate tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy consentgate

# One test process per core (pytest-xdist): each has a database of its own.
test-sqlite: install
	$(BIN)/pytest -n auto --db sqlite

test-postgresql: install
	CONSENTGATE_TEST_PG_URL=$(PG_ADMIN_URL) $(BIN)/pytest -n auto --db postgresql

## Speed figures on SQLite and on the PostgreSQL server of PG_ADMIN_URL (in databases of their own).
bench: install
	$(BIN)/python bench/eligibility.py --postgresql $(PG_ADMIN_URL)
	$(BIN)/python bench/import.py --postgresql $(PG_ADMIN_URL)
	$(BIN)/python bench/reports.py --postgresql $(PG_ADMIN_URL)
	$(BIN)/python bench/decide.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache consentgate.db consentgate.db-* .consentgate-secret
