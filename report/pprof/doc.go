// Package pprof writes a report as a pprof profile (profile.proto,
// gzipped), for `go tool pprof`, flame graph viewers and profile stores.
//
// # Use
//
//	err := pprof.Write(w, r) // r symbolized, with its module map
//
// # Guarantees
//
// One sample per group, valued [objects, bytes]: sample types
// leaked_objects/leaked_space (count, bytes) for leaks reports,
// inuse_objects/inuse_space for outstanding reports, so that
// `go tool pprof -top` shows the same totals as the text report. Each
// distinct PC is one location; frames inlined at it are its lines,
// innermost first (pprof's order: the last line is the caller).
// Locations belong to mappings carrying the module's path, range, file
// offset and build-id. Samples are labelled with the group's kind and,
// when a timeline exists, its verdict (`-tagfocus verdict=growing`).
package pprof
