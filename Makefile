# Zato-HA. `make run` starts a two-server cluster with its load balancer; `make test` runs the suite.
VENV      ?= .venv
ZATO      := $(VENV)/bin/zato
PYTEST    := $(VENV)/bin/pytest
RUN_DIR   ?= run/quickstart
PYTEST_ARGS ?=
# What `make stop` needs to stop this RUN_DIR and not the default one (in run's summary).
RUN_DIR_ARG = $(if $(filter-out run/quickstart,$(RUN_DIR)), RUN_DIR=$(RUN_DIR))

.PHONY: deps run stop status test test-unit check-protocol lint bench clean

deps:
	bin/setup-deps

run: deps
	@if [ ! -f $(RUN_DIR)/.zato ]; then $(ZATO) quickstart create $(RUN_DIR) --servers 2; fi
	$(ZATO) start $(RUN_DIR) --skip-running
	@echo
	@echo "Cluster running from $(RUN_DIR):"
	@$(ZATO) info $(RUN_DIR) --urls
	@echo "  logs           $(RUN_DIR)/*/logs/"
	@if [ -d $(RUN_DIR)/user-conf ]; then echo "  user config    $(RUN_DIR)/user-conf/*.ini   (self.config in services; edits apply at once)"; fi
	@echo "  status         $(ZATO) cluster status $(RUN_DIR)"
	@echo "  stop           make stop$(RUN_DIR_ARG)   (or: $(ZATO) stop $(RUN_DIR))"

# Nothing made there yet (make stop before any make run): said, and not a failure.
stop:
	@if [ -e $(RUN_DIR) ]; then echo "$(ZATO) stop $(RUN_DIR)"; $(ZATO) stop $(RUN_DIR); \
	else echo "nothing to stop: no cluster in $(RUN_DIR) (make run$(RUN_DIR_ARG) creates and starts one)"; fi

status:
	$(ZATO) cluster status $(RUN_DIR)

# The suite runs in TEST_JOBS processes (pytest-xdist; a test file stays in one of them, so its
# module-wide clusters start once): most of a test's time is waiting for processes it started.
# Then the tests marked `exclusive` (they restart a service the others share) run alone.
# Both parts always run; either failing fails `make test`. pytest exits 5 when it collected no
# test: that fails the run too (but for the exclusive part when PYTEST_ARGS chose other tests).
# TEST_JOBS=1 runs everything in one process, in order. 4 on 2 cores (2026-12-06): the
# processes were 82% busy on average, and the suite took 1014 s, against 1086-1283 s with 3.
# 2026-12-07: 935 s with 4, once the tests' CLI calls forked from pre-imported processes
# (tests/cli_fork.py), against 1922 s the same morning before.
TEST_JOBS ?= 4
# Without PYTHONDONTWRITEBYTECODE (set in some build shells) pytest keeps the test modules it
# rewrote for their asserts in tests/**/__pycache__: the exclusive part and any later run then
# collect in 4.5 s of CPU instead of 12 s each (`--collect-only`, 2026-12-07). Services are
# compiled from source in memory, so no server reads bytecode this writes.
RUN_PYTEST = env -u PYTHONDONTWRITEBYTECODE $(PYTEST) -q -p no:cacheprovider -rfEs
test: deps
	@case "$(TEST_JOBS)" in ''|*[!0-9]*|0) echo "TEST_JOBS must be a whole number of processes, 1 or more (got '$(TEST_JOBS)')" >&2; exit 2;; esac; \
	rc=0; \
	if [ "$(TEST_JOBS)" -gt 1 ]; then \
		$(RUN_PYTEST) -n $(TEST_JOBS) --dist loadfile -m "not exclusive" $(PYTEST_ARGS) tests || rc=$$?; \
		echo "== the exclusive tests, alone"; \
		$(RUN_PYTEST) -m exclusive $(PYTEST_ARGS) tests; x=$$?; \
		[ $$x = 0 ] || { [ $$x = 5 ] && [ -n "$(PYTEST_ARGS)" ]; } || rc=$$x; \
	else \
		$(RUN_PYTEST) -p no:xdist $(PYTEST_ARGS) tests || rc=$$?; \
	fi; \
	exit $$rc

test-unit: deps
	$(PYTEST) -q tests/unit

# The lease protocol's property tests with many more examples than `make test` runs.
check-protocol: deps
	ZATO_PROTOCOL_EXAMPLES=$${ZATO_PROTOCOL_EXAMPLES:-2000} $(PYTEST) -q -p no:cacheprovider tests/unit/test_lease_protocol.py

# ruff (pyproject.toml: annotations, blind except, simplify, security rules on) and mypy over zato/.
lint: deps
	$(VENV)/bin/ruff check zato tests bench
	$(VENV)/bin/ruff format --check zato tests bench
	$(VENV)/bin/mypy zato

bench: deps
	@for b in bench/*; do [ -x $$b ] && { echo "== $$b"; $$b; }; done

clean:
	rm -rf $(VENV) build *.egg-info
