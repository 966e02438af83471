// Package baseline answers the CI question "did this change add a leak":
// it holds the groups of an earlier report (a recording or a JSON report)
// and keeps, of a new report, only the groups that are new or larger.
//
// # Use
//
//	b, err := baseline.Load(path, symbolizeOpts) // recording or JSON Lines
//	b.Apply(r)                                   // r's groups symbolized
//
// # Guarantees
//
// Groups are matched by kind and by the function names of their stack
// ("?" for frames without one), not by addresses, paths or line
// numbers: a rebuilt binary, another load address or an edit above
// the leak does not make an old leak look new. Of a recording, the last
// snapshot of each process counts; of a JSON Lines file, the last record.
// A group of the same stack in the baseline with fewer bytes is kept and
// carries the baseline's size. See docs/timeline.md.
package baseline
