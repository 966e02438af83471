# lsan's build. `make build` needs only Go: the compiled BPF object is
# committed. `make generate` rebuilds it (clang, llvm-strip).
GO      ?= go
BIN     := bin/lsan
GOFLAGS ?=
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# make install [PREFIX=/usr/local] [DESTDIR=staging dir]
PREFIX  ?= /usr/local
DESTDIR ?=

.PHONY: all build generate inproc test test-unit bench demo examples clean man completions install

all: build

build:
	$(GO) build $(GOFLAGS) -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/lsan

# The man page and the fish completion come from the flag definitions.
man: build
	$(BIN) __man > bin/lsan.8

completions: build
	$(BIN) __fish-completion > bin/lsan.fish

install: build man completions
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/lsan
	install -D -m 0644 bin/lsan.8 $(DESTDIR)$(PREFIX)/share/man/man8/lsan.8
	install -D -m 0644 completions/lsan.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/lsan
	install -D -m 0644 completions/_lsan $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_lsan
	install -D -m 0644 bin/lsan.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/lsan.fish

generate:
	$(GO) generate ./bpf/ ./ktrace/

# The in-process recorder's preloaded library, committed like the BPF objects.
inproc:
	$(MAKE) -C inproc/shim -B

examples:
	$(MAKE) -C examples

# The whole suite: unit tests, and the BPF and integration tests (root).
test: build examples
	$(GO) vet ./...
	# The integration tests run after the others, not beside them: a
	# uretprobe that one lsan puts on libc's malloc makes every process the
	# breakpoint is installed in return through the kernel's trampoline,
	# which leaves copies of the result below the stack pointer (the
	# return_copy examples would lose their leak) and puts its address
	# where the bpf package's exit-probe tests read their call site
	# (docs/unwind.md, known limits).
	$(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v /integration)
	$(GO) test -count=1 -timeout 40m ./integration
	# Checks of lsan -p fork the target by default; the attach-mode tests
	# that do not set the mode themselves run again with the target
	# stopped for every check (TestLeakExamples and the stress tests run
	# both modes in the pass above).
	LSAN_SNAPSHOT=stop $(GO) test -count=1 -timeout 20m -run '$(STOP_MODE_TESTS)' ./integration

STOP_MODE_TESTS = ^(TestRedisNoFalseLeaks|TestNginxNoFalseLeaks|TestSuppressionsOnExamples|TestLSanOptionsSuppressions|TestPrintSuppressions|TestReturnProbeCopies|TestUnwindAttachMode|TestSmallInodeLibc|TestChrootSelf|TestChrootStarted|TestOwnMountNamespace|TestTimelineAttach|TestSecondInterruptAborts|TestFleetTwoPrograms)$$

# Pure logic only: no root, no BPF.
test-unit:
	$(GO) test -count=1 -short ./suppressions/ ./report/... ./symbolize/ ./record/ ./timeline/ ./baseline/

bench: build examples
	$(GO) run ./bench
	$(GO) test ./scanner/ -run XXX -bench 'Scan1GiB|ScanHeapSize' -benchtime 5x

# Build lsan and show it catching a leak in the example daemon.
demo: build examples
	./scripts/demo.sh

clean:
	rm -rf bin
	$(MAKE) -C examples clean
