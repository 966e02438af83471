package scanner

import "slices"

// span is the address range [start, end) of target memory.
type span struct {
	start, end uint64
}

func (s span) size() uint64 { return s.end - s.start }

// normalize sorts ranges, drops empty ones and merges the ones that overlap
// or touch. It reuses rs.
func normalize(rs []span) []span {
	slices.SortFunc(rs, func(a, b span) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	out := rs[:0]
	for _, r := range rs {
		if r.end <= r.start {
			continue
		}
		if n := len(out); n > 0 && r.start <= out[n-1].end {
			if r.end > out[n-1].end {
				out[n-1].end = r.end
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// subtract returns the parts of rs (normalized) not covered by holes.
// holes must be sorted by start and may overlap each other. With
// dropSlivers, a part of less than two words that lies between two holes
// is dropped (see planRoots).
func subtract(rs []span, holes func(yield func(span) bool), dropSlivers bool) []span {
	var out []span
	i := 0
	var cur span
	leftHole := false // cur starts where a hole ended
	have := false
	next := func() bool {
		if i >= len(rs) {
			return false
		}
		cur, leftHole = rs[i], false
		i++
		return true
	}
	emit := func(s span, rightHole bool) {
		if dropSlivers && leftHole && rightHole && s.size() < 16 {
			return
		}
		out = append(out, s)
	}
	have = next()
	holes(func(h span) bool {
		for have {
			if h.end <= cur.start {
				return true // hole entirely before the current range
			}
			if h.start >= cur.end {
				emit(cur, false) // range entirely before the hole
				have = next()
				continue
			}
			// They overlap.
			if h.start > cur.start {
				emit(span{cur.start, h.start}, true)
			}
			if h.end < cur.end {
				cur.start, leftHole = h.end, true
				return true
			}
			have = next()
		}
		return false
	})
	if have {
		emit(cur, false)
	}
	out = append(out, rs[i:]...)
	return out
}

// alignInward shrinks every range to whole aligned words and drops the
// ones left empty.
func alignInward(rs []span, align uint64) []span {
	out := rs[:0]
	for _, r := range rs {
		s := (r.start + align - 1) &^ (align - 1)
		e := r.end &^ (align - 1)
		if e > s {
			out = append(out, span{s, e})
		}
	}
	return out
}

// totalSize sums the sizes of rs.
func totalSize(rs []span) uint64 {
	var n uint64
	for _, r := range rs {
		n += r.size()
	}
	return n
}

// spansOf yields sorted ranges one by one, as subtract wants its holes.
func spansOf(rs []span) func(yield func(span) bool) {
	return func(yield func(span) bool) {
		for _, r := range rs {
			if !yield(r) {
				return
			}
		}
	}
}

// spansOfRanges turns caller ranges into sorted, disjoint spans for
// subtract.
func spansOfRanges(rs []Range) func(yield func(span) bool) {
	out := make([]span, 0, len(rs))
	for _, r := range rs {
		out = append(out, span{r.Addr, satAdd(r.Addr, r.Size)})
	}
	return spansOf(normalize(out))
}
