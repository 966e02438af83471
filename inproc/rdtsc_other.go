//go:build !amd64

package inproc

// rdtscp: no TSC here; the clock is CLOCK_MONOTONIC (tscIsKernelClock).
func rdtscp() uint64 { return 0 }
