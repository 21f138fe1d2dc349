# Trellis: a service mesh in Go. See README.md.
GO        ?= go
BIN       := bin
PKGS      := ./...
FUZZTIME  ?= 30s
TESTFLAGS ?=

.PHONY: all build demo test fuzz bench vet fmt clean

all: build

## build: compile trellisd, trellis-proxy and trellis into bin/ (static: no libc pages in every sidecar's memory)
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -tags grpcnotrace -o $(BIN)/ ./cmd/trellisd ./cmd/trellis-proxy ./cmd/trellis

## demo: run the local Bookinfo mesh (Ctrl-C stops everything)
demo: build
	$(BIN)/trellis demo --dir .demo

## test: gofmt, vet and every test under the race detector, including end-to-end tests with real processes on loopback
test: vet
	$(GO) test -race -count=1 -timeout 25m $(TESTFLAGS) $(PKGS)

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

## fuzz: run every fuzz target for FUZZTIME each (30s by default)
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## bench: the performance harness (not part of make test); see bench/README.md.
## BENCH_QUICK=1 for a short smoke run; BENCH_ONLY=latency,memory to pick scenarios.
bench:
	bash bench/setup.sh
	$(GO) run ./bench/cmd/trellis-bench

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN) .demo
