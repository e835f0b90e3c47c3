# vouch: the two commands a newcomer runs are `make demo` and `make test`.
CARGO ?= cargo

.PHONY: demo test build lint deny deps conformance templates-test chart-test

## Run the demo: a local registry, a signed and an unsigned image, vouch's verdicts.
demo:
	@scripts/ensure-deps.sh
	$(CARGO) run --quiet -p vouch --features demo -- demo

## Run every test (unit, integration against a real registry, doc tests).
test:
	@scripts/ensure-deps.sh --test
	$(CARGO) test --workspace --features vouch/demo --doc --quiet
	$(CARGO) nextest run --workspace --features vouch/demo --no-fail-fast

## Run the Notation conformance table (crates/notation/tests/conformance) and print every case.
conformance:
	$(CARGO) test -p vouch-notation --test conformance -- --nocapture

build:
	$(CARGO) build --workspace --all-targets --features vouch/demo

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

## Dependency policy (deny.toml): licenses, bans, sources; advisories with VOUCH_DENY_ADVISORIES=1.
deny:
	@scripts/ensure-deps.sh --test
	$(CARGO) deny --log-level error check bans licenses sources $(if $(VOUCH_DENY_ADVISORIES),advisories,)

deps:
	@scripts/ensure-deps.sh --test

## Gatekeeper side: provider-templates/ (Suites run with regorus against a real vouch and registry).
templates-test:
	@scripts/ensure-deps.sh --test
	@results=$$(mktemp -d); status=0; \
	VOUCH_TEMPLATES_RESULTS=$$results $(CARGO) nextest run -p vouch-templates-test --no-fail-fast || status=$$?; \
	passed=$$(cat $$results/*.txt 2>/dev/null | grep -c '^PASS '); \
	failed=$$(cat $$results/*.txt 2>/dev/null | grep -c '^FAIL '); \
	if [ $$status -ne 0 ] && [ $$failed -eq 0 ]; then failed=1; fi; \
	rm -rf $$results; \
	echo "templates: $$passed passed, $$failed failed"; \
	exit $$status

## The Helm chart (helm/vouch) with Helm 3 and 4: lint, render, and the rendered pod run for real.
chart-test:
	@scripts/ensure-deps.sh --test
	$(CARGO) nextest run -p vouch --test helm_chart --no-fail-fast
