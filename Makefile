# lbtune build, test and demo targets. Every target runs from a clean clone.
GO      ?= go
BIN     := bin/lbtune
PKGS    := ./...

.PHONY: build deps test test-short bench bench-gmm bench-fleet demo datasets model proof-drain fuzz fuzz-ci clean

build:
	$(GO) build -o $(BIN) ./cmd/lbtune

# deps: install the Debian packages the tests use (haproxy, nginx, wrk, chromium,
# prometheus) when missing; needs root and apt-get.
deps:
	scripts/deps.sh

# test: install what is missing, vet, then every test (unit + integration
# against real HAProxy/NGINX started on 127.0.0.1 by the tests, headless
# Chromium for the dashboard) under the race detector. One package at a
# time (-p 1): the real-balancer tests compare lbtune's figures with what
# their load generator measures, and on 2 cores another package's tests
# running alongside slow the clients, not the balancer. Then fuzz-ci.
test: deps
	$(GO) vet $(PKGS)
	$(GO) test -race -p 1 -count=1 -timeout 25m $(PKGS)
	$(MAKE) fuzz-ci

test-short:
	$(GO) test -short -count=1 $(PKGS)

# bench: the benchmarks recorded in docs/BENCHMARKS.md.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 $(PKGS)

# bench-gmm: GMM fit time and likelihood against scikit-learn and golearn.
bench-gmm: build
	bench/gmm.sh

# bench-fleet: one daemon, 200 simulated pools of 20 servers, 10 minutes
# (docs/BENCHMARKS.md "Fleet scale"); POOLS, SERVERS, DURATION override.
bench-fleet: build
	scripts/bench-fleet.sh

# fuzz: a short run of every fuzz target (30 s each, spent executing: see
# scripts/fuzz.sh). FUZZ_KEEP=--keep copies the inputs that found new
# coverage into each package's testdata/fuzz seed corpus.
fuzz:
	scripts/fuzz.sh $(FUZZ_KEEP) 30s

# fuzz-ci: every fuzz target of the repository for 3 s each, from its
# checked-in seed corpus (testdata/fuzz) and f.Add seeds; make test runs it
# after the tests (about 3 minutes, see docs/BENCHMARKS.md).
fuzz-ci:
	scripts/fuzz.sh 3s

# demo: the main job (see README.md).
demo: build
	scripts/demo.sh

# datasets: re-record the training datasets in datasets/ (needs HAProxy and NGINX).
datasets: build
	scripts/datasets.sh

# model: retrain the shipped default model + policy from datasets/ and traces.
model: build
	scripts/model.sh

# proof-drain: >= 50 scale cycles and 20 weight changes under load, 0 failures.
proof-drain: build
	scripts/proof-drain.sh

clean:
	rm -rf bin
