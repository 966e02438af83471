package bpf

// The compiled program and its Go bindings are committed, so `go build`
// needs no clang; `make generate` rebuilds them.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type block -type stack -type counter -type target -type block_key -type event -type event_type -type freed -type unwind_row -type unwind_mapping -type unwind_mappings -type unwind_counter -type unwind_epoch -type op -type sig_flags -type late_stack tracer lsan.bpf.c -- -I./headers
