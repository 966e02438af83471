package scanner

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// forEachPart calls fn(i) for every i in [0, parts), spread over up to
// GOMAXPROCS goroutines (the caller's included), which take the parts in
// order as they become free. The target is stopped while the index is
// built: its linear passes are cut into parts so that every core helps.
//
// A panic in fn is raised again here, once every goroutine has stopped —
// a panic left in a goroutine would end the process, and the caller's
// recover (Check's) must not run while other goroutines still use the
// memory it releases.
func forEachPart(parts int, fn func(i int)) {
	workers := min(parts, runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for i := 0; i < parts; i++ {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var failed atomic.Pointer[string]
	work := func() {
		defer func() {
			if v := recover(); v != nil {
				msg := fmt.Sprintf("%v\n%s", v, debug.Stack())
				failed.CompareAndSwap(nil, &msg)
			}
		}()
		for failed.Load() == nil {
			i := int(next.Add(1)) - 1
			if i >= parts {
				return
			}
			fn(i)
		}
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()
	if msg := failed.Load(); msg != nil {
		panic(*msg)
	}
}

// partBounds returns part i of [0, n) cut into parts nearly equal parts.
func partBounds(n, parts, i int) (lo, hi int) {
	return i * n / parts, (i + 1) * n / parts
}
