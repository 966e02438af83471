package scanner

// classify decides every block's class from the reachability the scan
// found and the edges between unreachable blocks, as LSan does:
// unreachable blocks pointed to by another unreachable block are
// Indirect, the others Direct. Blocks with ignored[i] set are roots
// (LSan's kIgnored, which a suppression rerun gives suppressed blocks):
// the unreachable blocks they lead to become Reachable.
func classify(reachable []bool, edges []Edge, ignored []bool) []Class {
	n := len(reachable)
	isIgnored := func(i int32) bool { return int(i) < len(ignored) && ignored[i] }
	live := make([]bool, n) // reachable, from the roots or from an ignored block
	copy(live, reachable)

	// Flood from the ignored blocks over the recorded edges.
	adj := adjacency(n, edges)
	var work []int32
	for i := 0; i < n && i < len(ignored); i++ {
		if ignored[i] {
			work = append(work, int32(i))
		}
	}
	for len(work) > 0 {
		u := work[len(work)-1]
		work = work[:len(work)-1]
		for _, v := range adj.from(u) {
			if !live[v] && !isIgnored(v) {
				live[v] = true
				work = append(work, v)
			}
		}
	}

	indirect := make([]bool, n)
	for _, e := range edges {
		if e.From == e.To || !validEdge(e, n) {
			continue
		}
		if live[e.From] || isIgnored(e.From) || live[e.To] || isIgnored(e.To) {
			continue
		}
		indirect[e.To] = true
	}

	classes := make([]Class, n)
	for i := range classes {
		switch {
		case isIgnored(int32(i)):
			classes[i] = Ignored
		case live[i]:
			classes[i] = Reachable
		case indirect[i]:
			classes[i] = Indirect
		default:
			classes[i] = Direct
		}
	}
	return classes
}

func validEdge(e Edge, n int) bool {
	return e.From >= 0 && e.To >= 0 && int(e.From) < n && int(e.To) < n
}

// csr is a compressed adjacency list.
type csr struct {
	offs []int32
	to   []int32
}

func (g csr) from(u int32) []int32 {
	return g.to[g.offs[u]:g.offs[u+1]]
}

func adjacency(n int, edges []Edge) csr {
	g := csr{offs: make([]int32, n+1)}
	for _, e := range edges {
		if validEdge(e, n) {
			g.offs[e.From+1]++
		}
	}
	for i := 0; i < n; i++ {
		g.offs[i+1] += g.offs[i]
	}
	g.to = make([]int32, g.offs[n])
	fill := make([]int32, n)
	for _, e := range edges {
		if validEdge(e, n) {
			g.to[g.offs[e.From]+fill[e.From]] = e.To
			fill[e.From]++
		}
	}
	return g
}

// Reclassify classifies the blocks again with the blocks where ignored[i]
// is true treated as roots, as LSan's suppression rerun does: blocks
// reachable only from them are no longer leaks, which can turn indirect
// leaks into reachable blocks and expose nothing new. Ignored blocks get
// the class Ignored. It needs only r.Classes (to know which blocks the
// scan reached) and r.Edges: the target is not touched, and a stored
// Result can be reclassified later. ignored may be shorter than Blocks
// (missing entries are false).
func (r *Result) Reclassify(ignored []bool) []Class {
	reachable := make([]bool, len(r.Classes))
	for i, c := range r.Classes {
		reachable[i] = c == Reachable
	}
	classes := classify(reachable, r.Edges, ignored)
	for dup, orig := range r.duplicates {
		if int(dup) < len(classes) && int(orig) < len(classes) && !(int(dup) < len(ignored) && ignored[dup]) {
			classes[dup] = classes[orig]
		}
	}
	return classes
}
