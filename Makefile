# Sitekeeper — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/sitekeeper
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/sitekeeper/sitekeeper/internal/version.Version=$(VERSION) -X github.com/sitekeeper/sitekeeper/internal/version.Commit=$(COMMIT)
# A count, not a duration: Go 1.26's fuzz coordinator can fail a run that ends on a
# -fuzztime deadline while a worker is still busy (go.dev/issue/75804), with no crasher.
FUZZTIME ?= 60000x
RUNS ?= 20
FAULTS ?= 200
GROUPS ?= 1,100,1000
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/staticcheck)

.DEFAULT_GOAL := help

help: ## List the targets with one line each
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build the sitekeeper binary into bin/sitekeeper
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) .

fmt: ## Format the code with gofmt
	gofmt -w $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')

vet: ## Run go vet for linux and windows
	$(GO) vet ./...
	GOOS=windows $(GO) vet ./...

lint: ## Run staticcheck (installs it from the module proxy when missing)
	@test -x $(STATICCHECK) || $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	$(STATICCHECK) ./...

cross: ## Cross-compile every package for Windows
	GOOS=windows GOARCH=amd64 $(GO) build ./...

fuzz: ## Run the manifest fuzz test for FUZZTIME executions (default 60000x, a few seconds)
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./internal/manifest/

unit: ## Run the unit tests with the race detector (the store's twice: network and in-process client)
	$(GO) test -race -count=1 ./...
	SITEKEEPER_TEST_STORE_CLIENT=inprocess $(GO) test -race -count=1 ./internal/store/etcdstore/ ./controllers/gitops/

test-e2e: build ## Run the end-to-end tests against bin/sitekeeper
	SITEKEEPER_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -tags e2e -timeout 15m ./test/e2e/...

test: vet unit fuzz cross test-e2e ## The whole test suite: vet, unit tests (-race), short fuzz, Windows build, end to end

bench: ## Run the benchmarks (figures for the issue notes)
	$(GO) test -run '^$$' -bench . -benchmem ./...

bench-failover: build ## Outage after kill -9 of the active node: keepalived vs Sitekeeper, in netns (root; RUNS=20)
	@command -v keepalived >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq keepalived >/dev/null)
	$(GO) build -o bin/bench-failover ./hack/bench-failover
	./bin/bench-failover -runs $(RUNS) -sitekeeper $(BIN)

chaos: build ## Fault runs, FAULTS each (200): the embedded default (power, partition, stopped site, step latency 0-2 s), then as root network namespaces (kill -9, SIGSTOP, link cut, store partition, witness loss)
	$(GO) run ./hack/chaos -faults $(FAULTS)
	@if [ "$$(id -u)" = 0 ]; then $(GO) run ./hack/chaos -netns -sitekeeper $(BIN) -held-back && $(GO) run ./hack/chaos -netns -sitekeeper $(BIN) -faults $(FAULTS); else echo "chaos: the network-namespace runs need root; skipped"; fi

bench-scale: build ## How cost grows with the work: GROUPS (1,100,1000) groups through up, then fail-node; one line per count
	$(GO) run ./hack/scale -sitekeeper $(BIN) -groups $(GROUPS)

bench-bigload: build ## Memory and time of validating FILES (60) manifest files of 1 MiB each
	$(GO) run ./hack/bigload -sitekeeper $(BIN) -files $(or $(FILES),60)

demo: build ## Start a cluster on the embedded default, fail a node, switch back
	./hack/demo.sh

verify: ## Fail when generate/fmt/tidy would change the tree
	$(GO) mod tidy
	gofmt -l . | (! grep .) || (echo "gofmt would change the files above"; exit 1)
	git diff --exit-code -- go.mod go.sum

clean: ## Remove build output
	rm -rf bin

.PHONY: help build fmt vet lint cross fuzz unit test-e2e test bench bench-failover bench-scale bench-bigload chaos demo verify clean
