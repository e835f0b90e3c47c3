# vouch: the two commands a newcomer runs are `make demo` and `make test`.
CARGO ?= cargo

.PHONY: demo test build lint deps

## Run the demo: a local registry, a signed and an unsigned image, vouch's verdicts.
demo:
	@scripts/ensure-deps.sh
	$(CARGO) run --quiet -p vouch -- demo

## Run every test (unit, integration against a real registry, doc tests).
test:
	@scripts/ensure-deps.sh --test
	$(CARGO) nextest run --workspace --no-fail-fast
	$(CARGO) test --workspace --doc --quiet

build:
	$(CARGO) build --workspace --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

deps:
	@scripts/ensure-deps.sh --test
