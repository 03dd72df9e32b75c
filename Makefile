# Two commands do all the set-up on a fresh machine (both idempotent):
#   make run    install what is missing, start Asterisk + demo backend + controller, stay in the foreground
#   make test   the same set-up, then the whole test suite (real Asterisk and SIPp included)
# Also: make stop, make bench, make lint, make mutate, make sandbox, make clean.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := python3-venv procps debootstrap sip-tester espeak-ng sox libsox-fmt-base systemd chromium \
                fonts-wqy-microhei baresip openssl postgresql iproute2 \
                libtiff-tools ghostscript poppler-utils
STAMP := $(VENV)/.installed

DESK_JS := controller/plugins/desk/static/vendor/jssip.min.js

.PHONY: all deps venv desk-js sandbox run stop test test-unit test-e2e bench lint mutate clean

all: venv desk-js

# Node.js and npm: Debian's packages only where no npm is on the PATH (a machine with NodeSource's nodejs,
# which bundles npm, cannot install Debian's npm beside it).
NODE_PACKAGES := nodejs npm

deps:  ## Debian packages: what README "What make installs" lists, each with why
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v npm >/dev/null 2>&1 || missing="$$missing $(NODE_PACKAGES)"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# The browser phone's SIP library (JsSIP, pinned in package-lock.json), bundled into one file the controller
# serves: npm ci from the lock, then esbuild (README "Browser phone (WebRTC)"). Nothing from a CDN at run time.
$(DESK_JS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	npm run --silent build
	@touch $@

desk-js: $(DESK_JS)

sandbox: deps venv  ## build the Asterisk 22 root (Debian sid, debootstrap) once; reused afterwards
	$(PY) tools/sandbox.py ensure

run: deps venv desk-js sandbox
	$(PY) tools/run.py

stop:
	$(PY) tools/run.py stop

# The unit tests in one process, then the e2e tests in CCC_E2E_GROUPS parallel groups (default 3), each in a
# network namespace with its own Asterisk copy (tools/e2e.py; serial when namespaces are unavailable).
# Both halves always run; the exit status is non-zero when either fails.
test: deps venv desk-js sandbox
	@status=0; \
	$(PY) -m pytest -q -p no:cacheprovider -m "not e2e" tests || status=1; \
	$(PY) tools/e2e.py || status=1; \
	exit $$status

test-unit: venv
	$(PY) -m pytest -q -p no:cacheprovider -m "not e2e" tests

test-e2e: deps venv desk-js sandbox
	$(PY) tools/e2e.py

bench: deps venv sandbox
	$(PY) -m tests.bench

lint: venv
	$(VENV)/bin/ruff check controller tests tools
	$(VENV)/bin/mypy controller

# Mutation testing of the decision code against the unit tests (slow: not part of `make test`).
#   make mutate                          all decision modules, kill rate per module, survivors listed
#   make mutate MODULES=controller/acd   a subset (paths: packages or files)
#   make mutate FAIL_UNDER=90            exit 1 if a module kills less than 90% of its non-equivalent mutants
MODULES ?=
JOBS ?= 2
mutate: venv
	nice -n 10 $(PY) tools/mutation.py run --jobs $(JOBS) $(if $(FAIL_UNDER),--fail-under $(FAIL_UNDER)) $(MODULES)

clean:
	rm -rf var mutants node_modules controller/plugins/desk/static/vendor .pytest_cache .mypy_cache .ruff_cache
