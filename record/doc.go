// Package record is lsan's recording file (--record FILE): every check
// appended as one snapshot, to be rendered again later, elsewhere
// (lsan report FILE).
//
// # Use
//
//	w, err := record.Create(path)           // appends; creates with a header
//	err = w.Write(report, modules, symbols) // one check, one write(2)
//	rec, err := record.ReadFile(path)       // every complete snapshot
//
// # Guarantees
//
// A file starts with a 16-byte header (magic "LSANREC\n", version). Each
// snapshot is one record: its length, its CRC-32C and its payload,
// written with a single write(2) on a file opened O_APPEND. A writer
// killed at any point leaves a file whose complete records all read back;
// the reader stops at a torn or corrupt tail and says how many bytes it
// left. Stacks are stored as program counters once per process (later
// snapshots refer to them), with the module map (path, build-id, load
// bias) whenever it changed, so that another machine can symbolize them
// from debug info found there; with symbols (--record-symbols) the
// symbolized frames are stored too. The layout is in docs/recording.md.
package record
