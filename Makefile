# The two commands of the README: `make run` and `make test`. `make check` lints and type-checks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: install run test test-fast check bench soak fuzz-long engine-stop clean chromium rsyslog screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The benchmark's profiler comes with the `bench` extra.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/auditlog run

test: $(STAMP) chromium rsyslog
	$(BIN)/python -m pytest

# The edit-test loop: everything but the browser, the fuzzers, the tests at scale and those with
# engines or service processes of their own, on three workers sharing the development engine (started if need be, left
# running for the next loop; `make engine-stop` stops it). CI runs `make test`, the whole suite.
test-fast: $(STAMP) rsyslog
	AUDITLOG_TEST_ES_URL=$$($(BIN)/auditlog engine start --url) $(BIN)/python -m pytest -n 3 \
		--dist load -m "not browser and not fuzz and not second_engine and not slow and not fleet"

# The page's browser tests drive Debian's chromium (never a browser that playwright downloads).
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian chromium for the browser tests..."; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else \
			echo "$(CHROMIUM) is missing and this is not root: the browser tests will fail" \
				"(as root: apt-get install -y chromium)" >&2; \
		fi; \
	fi

# The page with the demo data at 1440x1000 and 390x844, for reviewers: PNGs in $(SHOTS).
SHOTS ?= artifacts/screenshots
screenshots: $(STAMP) chromium
	AUDITLOG_ARTIFACTS_DIR=$(SHOTS) AUDITLOG_TEST_ES_URL=$$($(BIN)/auditlog engine start --url) \
		$(BIN)/python -m pytest -q -s tests/page/test_page_browser.py -k screenshots

# The syslog sender's tests run Debian's rsyslogd (with its OpenSSL driver for TLS).
RSYSLOGD := /usr/sbin/rsyslogd
rsyslog:
	@if [ ! -x $(RSYSLOGD) ] || ! ls /usr/lib/*/rsyslog/lmnsd_ossl.so >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian rsyslog for the syslog tests..."; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsyslog rsyslog-openssl; \
		else \
			echo "$(RSYSLOGD) or rsyslog-openssl is missing and this is not root: the syslog tests will fail" \
				"(as root: apt-get install -y rsyslog rsyslog-openssl)" >&2; \
		fi; \
	fi

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run

# The long reliability runs (not part of `make test`): a 10-minute mixed load, and 10,000+
# generated requests against the OpenAPI document.
soak: $(STAMP)
	$(BIN)/python -m bench.soak --minutes 10

fuzz-long: $(STAMP)
	AUDITLOG_FUZZ_EXAMPLES=1000 $(BIN)/python -m pytest -s -p no:cacheprovider tests/fuzz

engine-stop: $(STAMP)
	$(BIN)/auditlog engine stop

clean:
	rm -rf $(VENV) *.egg-info
