# earmark: `make demo` and `make test` each set everything up on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DEMO   := demo_project

.PHONY: install demo test test-fast browser-deps pg-deps bench clean

install: $(STAMP)

# torch and torchaudio 2.11 are pinned as a pair (see pyproject.toml); pip takes the
# registry's build, which runs on the CPU.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,bench]"
	rm -f $(VENV)/.installed-*
	touch $@

# Debian's chromium drives the browser test through Playwright (no browser download).
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "installing Debian's chromium for the browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "warning: could not install chromium; the browser test will be skipped"; \
	fi

# Debian's PostgreSQL server for tests/test_postgres.py, which starts a throwaway cluster
# as the postgres user (postgresql-common goes first so that no system cluster is made).
pg-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's postgresql for the PostgreSQL tests"; \
	    (apt-get update -qq \
	      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-common >/dev/null \
	      && sed -ri 's/^#?\s*create_main_cluster\s*=.*/create_main_cluster = false/' \
	           /etc/postgresql-common/createcluster.conf \
	      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
	      || echo "warning: could not install postgresql; the PostgreSQL tests will be skipped"; \
	  else \
	    echo "warning: no PostgreSQL server binaries and not root; the PostgreSQL tests will be skipped (as root: apt-get install postgresql)"; \
	  fi; \
	fi

demo: $(STAMP)
	@# init + import data_samples/ + rank + queue + status, then the review app in the
	@# foreground (Ctrl+C stops it); DEMO_NO_APP=1 stops before the app, for scripts
	$(BIN)/earmark demo $(DEMO) --fresh $(if $(DEMO_NO_APP),--no-app)

test: $(STAMP) browser-deps pg-deps
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not browser"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ranking_quality.py

clean:
	rm -rf $(DEMO) .pytest_cache test-output
