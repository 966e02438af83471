package scanner

// The edges the leak pass records between unreachable blocks.

import (
	"slices"
)

// edgeList collects edges in chunks that are never copied: one block can
// point to a million others, and a slice grown by append leaves its
// earlier arrays behind, together several times its final size.
type edgeList struct {
	chunks [][]Edge
	n      int
}

// Chunks grow from edgeChunkMin to edgeChunkMax edges: a small check
// takes little.
const (
	edgeChunkMin = 64
	edgeChunkMax = 8 << 10
)

func (l *edgeList) add(e Edge) {
	k := len(l.chunks)
	if k == 0 || len(l.chunks[k-1]) == cap(l.chunks[k-1]) {
		l.chunks = append(l.chunks, make([]Edge, 0, min(max(l.n, edgeChunkMin), edgeChunkMax)))
		k++
	}
	l.chunks[k-1] = append(l.chunks[k-1], e)
	l.n++
}

// take moves from's edges to l.
func (l *edgeList) take(from *edgeList) {
	l.chunks = append(l.chunks, from.chunks...)
	l.n += from.n
	*from = edgeList{}
}

// slice returns the edges in one slice, and empties l.
func (l *edgeList) slice() []Edge {
	out := make([]Edge, 0, l.n)
	for _, c := range l.chunks {
		out = append(out, c...)
	}
	*l = edgeList{}
	return out
}

// dedupEdges sorts edges and drops duplicates.
func dedupEdges(es []Edge) []Edge {
	slices.SortFunc(es, func(a, b Edge) int {
		if a.From != b.From {
			return int(a.From - b.From)
		}
		return int(a.To - b.To)
	})
	return slices.Compact(es)
}
