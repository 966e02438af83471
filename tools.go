//go:build tools

// Package tools pins the build tools the Makefile runs through `go run`.
package tools

import _ "github.com/cilium/ebpf/cmd/bpf2go"
