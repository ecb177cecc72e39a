# BetterVideo: `make run` and `make test` are all you need (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help

export BV_DATA_DIR ?= $(HOME)/.local/share/bettervideo
# Builds live outside the clone so CI and fresh clones reuse them.
CACHE_TARGET := /var/cache/bettervideo/target
export CARGO_TARGET_DIR ?= $(shell mkdir -p $(CACHE_TARGET) 2>/dev/null && [ -w $(CACHE_TARGET) ] && echo $(CACHE_TARGET) || echo $(CURDIR)/target)
BV := $(CARGO_TARGET_DIR)/release/bv
SAMPLE := $(BV_DATA_DIR)/samples/carphone_pristine.mp4
RESULT := $(BV_DATA_DIR)/output/carphone_pristine-x4.mp4

FUZZ_SECONDS ?= 600
TOOLS := $(BV_DATA_DIR)/tools

.PHONY: help setup build run enhance-sample test lint unit test-tls test-api test-cluster bench-load bench bench-serve bench-jobs bench-segments bench-limits fuzz deny sbom clean

help:
	@echo "make run    install what is missing, build, start bv serve (prints URL and first API key)"
	@echo "make test   install what is missing, lint, run every test"
	@echo "make setup  install Debian packages, models and sample videos only"
	@echo "make bench  engine speed against ncnn, onnxruntime and OpenVINO (slow)"
	@echo "make bench-serve  download/upload throughput and memory of bv serve vs nginx (slow)"
	@echo "make bench-jobs  job throughput with 1 and 2 workers (slow)"
	@echo "make bench-segments  one long job whole on 1 worker vs in segments on 2"
	@echo "make bench-limits  what the shared rate limits cost a request (wrk, limits on vs off)"
	@echo "make bench-load  2 servers under 60 s of mixed traffic and uploads (wrk)"
	@echo "make enhance-sample  enhance the bundled sample video locally"
	@echo "make test-tls  testssl.sh against bv serve (part of make test)"
	@echo "make test-api  schemathesis against /v1/openapi.json (part of make test)"
	@echo "make test-cluster  2 servers + 3 workers on PostgreSQL + S3 under faults (part of make test)"
	@echo "make fuzz   every fuzz target for FUZZ_SECONDS each (default 600)"
	@echo "make deny   the dependency policy (deny.toml), offline (part of make test)"
	@echo "make sbom   a CycloneDX SBOM of the bv binary's dependencies"

setup:
	@scripts/setup.sh

build: setup
	cargo build --release --locked --bins < /dev/null

# The service with embedded defaults (SQLite catalog, local sealed vault, all in
# BV_DATA_DIR); prints its URL and, on first start, a one-time admin API key.
run: build
	$(BV) serve

# The former main job: enhance the bundled sample video locally (sandboxed).
enhance-sample: build
	@mkdir -p $(dir $(RESULT))
	$(BV) enhance $(SAMPLE) -o $(RESULT) --overwrite
	@echo "Enhanced sample video: $(RESULT)"

lint:
	cargo fmt --all -- --check
	@# stdin from /dev/null: a closed stdin lets rustc's target probe read whatever file
	@# cargo opened as descriptor 0, and cargo caches that failure in .rustc_info.json.
	cargo clippy --release --locked --workspace --all-targets -- -D warnings < /dev/null

unit: setup
	cargo test --release --locked --workspace < /dev/null

test: setup lint deny unit test-tls test-api test-cluster
	@scripts/record-suite.sh

# Licenses, banned and duplicate crates, allowed sources (deny.toml); offline: the advisory
# database cannot be fetched here (docs/supply-chain.md).
deny: setup
	PATH="$(TOOLS)/bin:$$PATH" cargo deny --offline --locked check bans licenses sources < /dev/null

# A CycloneDX SBOM (JSON) of the bv binary's crates: $(BV_DATA_DIR)/sbom/bv.cdx.json, where
# the security report finds it and quotes its date.
sbom: setup
	scripts/tool.sh cargo-cyclonedx
	scripts/sbom.sh $(TOOLS)/bin $(BV_DATA_DIR)/sbom

# schemathesis against a live bv serve: every operation, valid and invalid data, every check.
test-api: build
	scripts/api-fuzz.sh $(BV)

# The cluster under faults: its own PostgreSQL, s3s-fs, 2 servers and 3 workers; 30 clients
# while workers, a server, PostgreSQL and the S3 server fail (about a minute; part of make test).
test-cluster: build
	cargo test --release --locked -p bv --test service cluster:: -- --ignored --nocapture < /dev/null

# Load test: 2 servers on PostgreSQL + s3s-fs, 60 s of mixed traffic and 20 concurrent uploads.
bench-load: build
	bench/load.sh $(BV)

# testssl.sh against a running bv serve: TLS 1.2/1.3 only, AEAD+FS only, HSTS, nothing flagged.
test-tls: build
	scripts/test-tls.sh $(BV)

bench: build
	bench/enhance.sh

bench-serve: build
	bench/serve.sh $(BV)

bench-jobs: build
	bench/jobs.sh $(BV)

bench-segments: build
	bench/segments.sh $(BV)

bench-limits: build
	bench/limits.sh $(BV)

# libFuzzer needs unstable rustc flags: RUSTC_BOOTSTRAP lets the stable toolchain accept them.
# Every cargo-fuzz target for FUZZ_SECONDS each (scripts/fuzz.sh; opt-in: not part of make test).
FUZZ_TARGETS ?= open_sealed signed_link tus_headers ncnn_model config
fuzz: setup
	@[ -x $(TOOLS)/bin/cargo-fuzz ] || cargo install --quiet --locked cargo-fuzz --root $(TOOLS)
	FUZZ_TARGET_DIR=$(dir $(CARGO_TARGET_DIR))fuzz-target scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	cargo clean
