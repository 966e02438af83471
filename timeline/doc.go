// Package timeline follows the groups of a process over its checks and
// gives each a trend: its bytes and objects per check, a rate, and a
// verdict (growing, plateau, shrinking, gone).
//
// # Use
//
//	t := timeline.New(timeline.Options{Window: 3, MinBytes: 1})
//	for each check's report r (in time order):
//		t.Add(r) // sets r.History, each group's Trend, r.Gone
//
// The same Add runs live (the session feeds every check) and offline
// (lsan report feeds the snapshots of a recording), so both give the same
// verdicts. Groups are followed per process by (kind, stack key); the key
// is the report's, stable for the life of the process.
//
// # Guarantees
//
// A group is growing only when its bytes rose in each of the last Window
// checks and by at least MinBytes over them: a cache that fills and then
// stays, or a one-off startup allocation, never is. With fewer than
// Window+1 checks nothing is growing. See docs/timeline.md.
package timeline
