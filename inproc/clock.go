package inproc

import (
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
)

// clock is the records' clock: TSC ticks where the kernel keeps time with
// the TSC (it checked that the counters agree across CPUs), else
// CLOCK_MONOTONIC. Ticks are turned into CLOCK_MONOTONIC nanoseconds, the
// tracer's clock, by a line through two samples of both, the second
// taken anew as the recorder runs.
type clock struct {
	tsc bool
	mu  sync.Mutex
	// (t0, m0) and (t1, m1): TSC and CLOCK_MONOTONIC sampled together.
	t0, m0, t1, m1 uint64
}

// calibration is how long newClock samples the TSC for its first line.
const calibration = 2 * time.Millisecond

func newClock() *clock {
	c := &clock{tsc: tscIsKernelClock()}
	if !c.tsc {
		return c
	}
	c.t0, c.m0 = rdtscp(), monotonicNow()
	for monotonicNow()-c.m0 < uint64(calibration) {
	}
	c.t1, c.m1 = rdtscp(), monotonicNow()
	return c
}

// tscIsKernelClock: the kernel keeps time with the TSC.
func tscIsKernelClock() bool {
	if runtime.GOARCH != "amd64" {
		return false
	}
	b, err := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource")
	return err == nil && strings.TrimSpace(string(b)) == "tsc"
}

// now reads the records' clock.
func (c *clock) now() uint64 {
	if c.tsc {
		return rdtscp()
	}
	return monotonicNow()
}

// resample refines the line with a new sample.
func (c *clock) resample() {
	if !c.tsc {
		return
	}
	t, m := rdtscp(), monotonicNow()
	c.mu.Lock()
	c.t1, c.m1 = t, m
	c.mu.Unlock()
}

// ticks is d in the records' clock.
func (c *clock) ticks(d time.Duration) uint64 {
	if !c.tsc {
		return uint64(d)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return uint64(float64(d) * float64(c.t1-c.t0) / float64(c.m1-c.m0))
}

// ns turns a record's time into CLOCK_MONOTONIC nanoseconds.
func (c *clock) ns(t uint64) uint64 {
	if !c.tsc {
		return t
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	perTick := float64(c.m1-c.m0) / float64(c.t1-c.t0)
	return uint64(int64(c.m1) + int64(float64(int64(t-c.t1))*perTick))
}
