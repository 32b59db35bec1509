# The two commands of the README: `make demo` and `make test`.
# Each first installs the build tools a fresh machine lacks (cmake).

CARGO ?= cargo
# Where `pip install --user cmake` puts cmake, when apt-get is not available.
export PATH := $(HOME)/.local/bin:$(PATH)

.PHONY: demo test lint ci bench tools

## Run the sidecar in front of an in-process demo cluster.
demo: tools
	$(CARGO) run --quiet -- demo

## Build once and run every test.
test: tools
	$(CARGO) test --all-targets

## Formatting and clippy, warnings denied.
lint: tools
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

## The end-to-end benchmark (release build, nginx and wrk from Debian).
bench: tools
	./scripts/bench.sh

## What CI runs.
ci: test lint

tools:
	@./scripts/ensure-build-tools.sh
