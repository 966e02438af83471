# lsan's build. `make build` needs only Go: the compiled BPF object is
# committed. `make generate` rebuilds it (clang, llvm-strip).
GO      ?= go
BIN     := bin/lsan
GOFLAGS ?=

.PHONY: all build generate test test-unit bench demo examples clean

all: build

build:
	$(GO) build $(GOFLAGS) -o $(BIN) ./cmd/lsan

generate:
	$(GO) generate ./bpf/

examples:
	$(MAKE) -C examples

# The whole suite: unit tests, and the BPF and integration tests (root).
test: build examples
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

# Pure logic only: no root, no BPF.
test-unit:
	$(GO) test -count=1 -short ./suppressions/ ./report/ ./symbolize/

bench: build examples
	$(GO) run ./bench
	$(GO) test ./scanner/ -run XXX -bench 'Scan1GiB|ScanHeapSize' -benchtime 5x

# Build lsan and show it catching a leak in the example daemon.
demo: build examples
	./scripts/demo.sh

clean:
	rm -rf bin
	$(MAKE) -C examples clean
