# pipeline-run-metrics — run `make help` for the list of targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PORT ?= 8080
BQEMU_PORT ?= 9050
EMULATOR := 127.0.0.1:$(BQEMU_PORT)
# the copy of the metric lines `make local-run` writes and `make local-test` reads: one per port,
# so that a second instance (PORT=8081) never truncates the first one's file
METRICS_FILE := .local/$(if $(filter 8080,$(PORT)),metrics.jsonl,metrics-$(PORT).jsonl)
# cargo's target directory (CARGO_TARGET_DIR is honoured, as cargo itself does)
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: help local-up local-seed local-run local-test local-down test lint fmt check-handlers check-glibc fuzz build release

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

local-up: ## Install (if missing) and start the BigQuery emulator on 127.0.0.1 (port BQEMU_PORT, 9050 by default), then seed it
	@echo "== [local-up 1/2] BigQuery emulator on $(EMULATOR) (installed into .venv-bqemu on first use)"
	@scripts/bqemulator.sh start $(BQEMU_PORT)
	@echo "== [local-up 2/2] seeding the emulator from events/seed.json"
	@BIGQUERY_EMULATOR_HOST=$(EMULATOR) python3 scripts/seed.py

local-seed: ## Recreate the seed tables from scratch (idempotent)
	@BIGQUERY_EMULATOR_HOST=$(EMULATOR) python3 scripts/seed.py

local-run: ## Build and run the function locally (metrics as JSON lines, also in .local/metrics.jsonl; .local/metrics-PORT.jsonl on another PORT)
	@# a busy port fails here, before the emulator is reseeded and before the banner; the binary
	@# binds it again before it creates (truncates) METRICS_FILE, which is per port: a second
	@# instance (another PORT) never touches the first one's file (it reseeds the shared emulator)
	@if (exec 3<>/dev/tcp/127.0.0.1/$(PORT)) 2>/dev/null; then \
	  echo "make local-run: 127.0.0.1:$(PORT): address in use (is another make local-run running?); stop it or use PORT=..." >&2; exit 1; fi
	@$(MAKE) --no-print-directory local-up
	@echo "== building the function (debug, $(TARGET_DIR)/debug); the first build compiles about 340 crates, minutes on 2 cores: see README, Quick start"
	@cargo build --locked
	@mkdir -p .local
	@echo "pipeline-run-metrics on http://127.0.0.1:$(PORT)/ (BigQuery emulator $(EMULATOR)); Ctrl-C stops it"
	@HOST=127.0.0.1 PORT=$(PORT) BIGQUERY_EMULATOR_HOST=$(EMULATOR) DEDUP_WINDOW_SECS=$${DEDUP_WINDOW_SECS:-0} \
	  CLOUD_RUN_PROJECT_ID=$${CLOUD_RUN_PROJECT_ID:-local-project} BIGQUERY_PROJECT_ID=$${BIGQUERY_PROJECT_ID:-test-project} \
	  METRICS_FILE=$(METRICS_FILE) $(TARGET_DIR)/debug/pipeline-run-metrics

local-test: ## POST every sample event in events/ to the local function and show status and metric lines
	@PORT=$(PORT) METRICS_FILE=$(METRICS_FILE) python3 scripts/local_test.py

local-down: ## Stop the local BigQuery emulator
	@scripts/bqemulator.sh stop $(BQEMU_PORT)

test: ## Run all tests (installs what the tests start or run: the BigQuery, Cloud Storage and Firestore emulators, redis-server, openlineage-python, cargo-lambda, and the checkers of the generated dashboards and alerts)
	@scripts/install-tools.sh
	@scripts/install-bqemulator.sh
	@scripts/install-gcs-emulator.sh
	@scripts/install-test-services.sh
	@scripts/install-openlineage.sh
	@scripts/install-cargo-lambda.sh
	cargo test --locked --all-targets

fuzz: ## Property tests of the decoders with 200000 cases per property (hostile input: no panic, no hang)
	PROPTEST_CASES=$${PROPTEST_CASES:-200000} cargo test --locked --test properties -- --nocapture

lint: ## rustfmt --check, clippy (warnings are errors), cfn-lint on deploy/template.yaml (every combination), hadolint, shellcheck
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings
	@scripts/install-tools.sh
	.venv-tools/bin/cfn-lint deploy/template.yaml
	.venv-tools/bin/python scripts/check-template.py
	.venv-tools/bin/hadolint Dockerfile
	shellcheck deploy/*.sh scripts/*.sh .ci/run

check-glibc: release ## Check that the release binary needs no glibc newer than Lambda's provided.al2023 (2.34)
	@scripts/check-glibc.sh $(TARGET_DIR)/release/pipeline-run-metrics 2.34

fmt: ## Format the code
	cargo fmt --all

check-handlers: ## Validate the configuration and the handler catalogue (plus HANDLERS_DIR) without serving (local mode unless BIGQUERY_EMULATOR_HOST or ALLOWED_DATASETS is set)
	@if [ -z "$${BIGQUERY_EMULATOR_HOST}$${ALLOWED_DATASETS}" ]; then export BIGQUERY_EMULATOR_HOST=$(EMULATOR); fi; \
	  cargo run --locked --quiet -- --check

build: ## Debug build
	cargo build --locked

release: ## Release build (target/release/pipeline-run-metrics)
	cargo build --locked --release

.PHONY: bench
bench: ## Run the benchmarks (criterion, the release binary over HTTP, Cloud Storage files, replay from a JSONL.gz; ~10 min) and regenerate BENCHMARKS.md
	@BQEMU_PORT=$(BQEMU_PORT) python3 scripts/bench.py

.PHONY: bench-replay
bench-replay: ## Run the replay benchmark alone (~1 min) and rewrite its section of BENCHMARKS.md
	@python3 scripts/bench.py --replay-only

.PHONY: record-fixtures
record-fixtures: ## Record the lifecycle fixtures again from real orchestrator runs (root; ~15 min; events/lifecycle/README.md)
	@scripts/fixtures/record-all.sh
