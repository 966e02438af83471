package scanner

// Batches: plans of reads over segments, run by a pool of workers.

import (
	"fmt"
	"iter"
	"runtime"
	"runtime/debug"
)

// batchPlan is one read: the segments it serves and the ranges it reads
// (neighbouring segments merged).
type batchPlan struct {
	segs, reads []taggedSpan
	// window: reads is one range spanning all segs, gaps included.
	window bool
	// buf holds segs, when a sweep cut them (nil otherwise).
	buf *segBuf
}

// planBatches groups segments sorted by address into reads that fit a
// buffer. Neighbours closer than mergeGap are read as one range; a segment
// larger than half the buffer is read alone, in chunks.
func (m *marker) planBatches(segs []taggedSpan) []batchPlan {
	var plans []batchPlan
	start, total := 0, 0 // the batch is segs[start:i], needing total bytes
	flush := func(end int) {
		if end > start {
			plans = append(plans, batchPlan{segs: segs[start:end], reads: mergeReads(segs[start:end])})
		}
		start, total = end, 0
	}
	for i := 0; i < len(segs); i++ {
		s := segs[i]
		if s.size() > readBufSize/2 {
			flush(i)
			plans = append(plans, m.chunks(s)...)
			start = i + 1
			continue
		}
		need := int(s.size())
		if i > start && s.start >= segs[i-1].end && s.start-segs[i-1].end <= mergeGap {
			need += int(s.start - segs[i-1].end) // read along with the previous one
		}
		if total+need > readBufSize || i-start >= maxIovecs {
			flush(i)
			need = int(s.size())
		}
		total += need
	}
	flush(len(segs))
	return plans
}

// chunks splits a large segment into buffer-sized reads.
func (m *marker) chunks(s taggedSpan) []batchPlan {
	var plans []batchPlan
	for s.start < s.end {
		chunk := s
		chunk.end = min(s.end, s.start+readBufSize)
		one := []taggedSpan{chunk}
		plans = append(plans, batchPlan{segs: one, reads: one})
		if chunk.end == s.end {
			break
		}
		s.start = chunk.end
		if m.unaligned {
			s.start -= unalignedOverlap
		}
	}
	return plans
}

// mergeReads turns sorted segments into the ranges to read.
// The slice is sized exactly: a thousand blocks side by side are one
// range, and a check plans batches for a million leaked blocks.
func mergeReads(segs []taggedSpan) []taggedSpan {
	n := 0
	for range mergedSpans(segs) {
		n++
	}
	reads := make([]taggedSpan, 0, n)
	for s := range mergedSpans(segs) {
		reads = append(reads, taggedSpan{s, 0})
	}
	return reads
}

// mergedSpans yields the ranges to read for sorted segments: neighbours
// closer than mergeGap are one range.
func mergedSpans(segs []taggedSpan) iter.Seq[span] {
	return func(yield func(span) bool) {
		if len(segs) == 0 {
			return
		}
		cur := segs[0].span
		for _, s := range segs[1:] {
			if s.start >= cur.end && s.start-cur.end <= mergeGap {
				cur.end = max(cur.end, s.end)
				continue
			}
			if !yield(cur) {
				return
			}
			cur = s.span
		}
		yield(cur)
	}
}

// scanSegments reads and scans segments sorted by address, in batches
// shared among the workers; reached is told the blocks each batch reached
// (on this goroutine; it must not keep the slice).
func (m *marker) scanSegments(segs []taggedSpan, reached func(work []int32)) error {
	plans := m.planBatches(segs)
	i := 0
	err := m.runPool(func() *batchPlan {
		if i == len(plans) {
			return nil
		}
		i++
		return &plans[i-1]
	}, func(_ *batchPlan, work []int32) { reached(work) })
	m.collect()
	return err
}

// batchJob is a batch handed to a worker, with an empty list for the
// blocks it reaches.
type batchJob struct {
	plan *batchPlan
	work []int32
}

// workerDone is what a worker reports after a batch.
type workerDone struct {
	w     *scanWorker
	plan  *batchPlan
	work  []int32 // the blocks the batch reached, to be scanned later
	err   error
	panic any
}

// runPool runs batches on the workers until next has none left (next and
// done run on the calling goroutine only; done is told each finished
// batch and the blocks it reached, and must not keep the slice). With one
// core the batches run inline. A worker's panic is raised again here,
// where Check's recover sees it.
func (m *marker) runPool(nextBatch func() *batchPlan, done func(p *batchPlan, work []int32)) error {
	// A cancelled check ends between batches: no batch is cut after it.
	canceled := false
	next := func() *batchPlan {
		if canceled = canceled || m.canceled(); canceled {
			return nil
		}
		return nextBatch()
	}
	if err := m.runBatches(next, done); err != nil {
		return err
	}
	if canceled {
		return ErrCanceled
	}
	return nil
}

// canceled tells whether Options.Cancel was closed.
func (m *marker) canceled() bool {
	select {
	case <-m.cancel:
		return true
	default:
		return false
	}
}

// runBatches runs the batches next gives, inline or on workers.
func (m *marker) runBatches(next func() *batchPlan, done func(p *batchPlan, work []int32)) error {
	n := min(runtime.GOMAXPROCS(0), maxWorkers)
	// Batches run inline while they come one at a time (a list is
	// flooded one block after the other): starting workers for each
	// would cost more than the batch.
	first := next()
	for first != nil {
		var second *batchPlan
		if n > 1 {
			second = next()
		}
		if second != nil {
			return m.runParallel(n, first, second, next, done)
		}
		w := m.workers[0]
		if err := w.do(first); err != nil {
			return err
		}
		done(first, w.work)
		w.work = w.work[:0]
		first = next()
	}
	return nil
}

// batchesQueued is how many batches a worker holds at most: the one it
// runs and the next, so that it never waits for the dispatcher (this
// goroutine, woken from another thread, which also cuts the next batches
// and files the blocks reached: measured, a worker with one batch at a
// time waited a fifth of the time).
const batchesQueued = 2

// runParallel runs batches on n workers, starting with first and second.
func (m *marker) runParallel(n int, first, second *batchPlan, next func() *batchPlan, done func(*batchPlan, []int32)) error {
	queued := []*batchPlan{first, second}
	take := func() *batchPlan {
		if len(queued) > 0 {
			p := queued[0]
			queued = queued[1:]
			return p
		}
		return next()
	}
	for len(m.workers) < n {
		m.workers = append(m.workers, m.newWorker(m.rd.fork()))
	}
	results := make(chan workerDone, n*batchesQueued)
	inputs := make([]chan batchJob, n)
	for i := range inputs {
		inputs[i] = make(chan batchJob, batchesQueued)
		go m.workerLoop(m.workers[i], inputs[i], results)
	}
	index := map[*scanWorker]int{}
	for i, w := range m.workers[:n] {
		index[w] = i
	}
	load := make([]int, n) // batches handed to each worker and not reported
	var lists [][]int32    // work lists done has finished with
	var firstErr error
	var panicked any
	inflight := 0
	for {
		for firstErr == nil && panicked == nil {
			i := leastLoaded(load)
			if load[i] == batchesQueued {
				break
			}
			p := take()
			if p == nil {
				break
			}
			var work []int32
			if k := len(lists); k > 0 {
				work, lists = lists[k-1], lists[:k-1]
			}
			inputs[i] <- batchJob{p, work}
			load[i]++
			inflight++
		}
		if inflight == 0 {
			break
		}
		r := <-results
		inflight--
		load[index[r.w]]--
		switch {
		case r.panic != nil:
			panicked = r.panic
		case r.err != nil:
			if firstErr == nil {
				firstErr = r.err
			}
		default:
			done(r.plan, r.work)
		}
		lists = append(lists, r.work[:0])
	}
	for _, in := range inputs {
		close(in)
	}
	if panicked != nil {
		panic(panicked)
	}
	return firstErr
}

// leastLoaded returns the worker with the fewest batches.
func leastLoaded(load []int) int {
	best := 0
	for i, l := range load {
		if l < load[best] {
			best = i
		}
	}
	return best
}

// workerLoop runs the batches sent to one worker.
func (m *marker) workerLoop(w *scanWorker, in <-chan batchJob, out chan<- workerDone) {
	for job := range in {
		out <- w.run(job)
	}
}

// run does one batch, turning a panic into a report: a panic in a
// worker goroutine would end the process. The blocks the batch reaches
// go to the job's list, which the report hands back.
func (w *scanWorker) run(job batchJob) (r workerDone) {
	r.w, r.plan = w, job.plan
	w.work = job.work[:0]
	defer func() {
		if v := recover(); v != nil {
			r.panic = fmt.Sprintf("%v\n%s", v, debug.Stack())
		}
		r.work, w.work = w.work, nil
	}()
	r.err = w.do(job.plan)
	return r
}
