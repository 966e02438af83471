package session

import (
	"unsafe"

	"github.com/lsan-project/lsan/bpf"
	"github.com/lsan-project/lsan/inproc"
	"github.com/lsan-project/lsan/internal/anonmem"
	"github.com/lsan-project/lsan/scanner"
)

// setOf builds a set of the n blocks each hands out, once.
func (s *Session) setOf(n int, each func(func(bpf.Block))) *trackedBuilder {
	tb := s.newMappedBuilder(n)
	tb.set.readAt = monotonicNow()
	each(tb.add)
	return tb
}

// lendTracked reads the target's blocks, with the target stopped, by
// borrowing the in-process recorder's live set (inproc.Lent): its table
// goes back to the kernel as the set is made, instead of staying beside
// it through the check (a million blocks: 64 MiB). ok is false where the
// blocks cannot be borrowed; otherwise the set must be handed back
// (restoreLent) before it is released.
func (s *Session) lendTracked() (tb *trackedBuilder, l *inproc.Lent, ok bool) {
	r, ok := s.allocs.(lender)
	if !ok {
		return nil, nil, false
	}
	if l = r.Lend(s.cfg.PID); l == nil {
		return nil, nil, false
	}
	return s.setOf(l.Len(), l.Each), l, true
}

// restoreLent hands the set made of a lent live set back to the recorder
// and releases it, returning its memory as the recorder reads it: the
// recorder's table and the set are never both whole.
func restoreLent(l *inproc.Lent, set *trackedSet) {
	const part = 64 << 10 // blocks returned at a time
	recSize := int(unsafe.Sizeof(scanner.Block{}))
	l.Restore(func(i int) bpf.Block {
		if i > 0 && i%part == 0 {
			anonmem.Return(set.mem, (i-part)*recSize, i*recSize)
		}
		b := set.blocks[i]
		of := set.stacks[b.Tag]
		return bpf.Block{Addr: b.Addr, Size: b.Size, StackID: of.StackID, Fn: of.Fn}
	})
	set.release()
}
