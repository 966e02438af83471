// Package html writes reports as one self-contained HTML page: a summary,
// total bytes over time, the groups (growing first) with sparklines and
// expandable stacks, a flame graph of bytes by stack, search and filters.
//
// # Use
//
//	err := html.Write(w, []*report.Report{r}) // one section per process
//
// # Guarantees
//
// The page loads nothing: styles and script are inline and a
// Content-Security-Policy forbids every fetch, so it opens on an
// air-gapped machine and cannot call home. Every string that comes from
// the target (function names, paths, C++ templates such as operator<) is
// data: it travels as JSON inside a script element (with <, > and &
// escaped by encoding/json) and reaches the page through textContent,
// never as markup. Series longer than a sparkline's width are reduced to
// their maximum per pixel, so a day of checks stays light.
package html
