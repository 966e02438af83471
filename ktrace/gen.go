package ktrace

// The compiled program and its Go bindings are committed, so `go build`
// needs no clang; `make generate` rebuilds them.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type kobj -type kobj_key -type kspace -type kevent -type kcounter ktrace ktrace.bpf.c -- -I./headers
