package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/lsan-project/lsan/symbolize"
)

// WriteText writes r in LeakSanitizer's report layout, so that people and
// tools used to LSan read it unchanged. Outstanding reports use the same
// layout with their own header and summary.
func WriteText(w io.Writer, r *Report) error {
	if r.NoCheck {
		return nil // standard error says it; there is no report
	}
	bw := bufio.NewWriter(w)
	if r.Mode == ModeOutstanding {
		writeOutstandingText(bw, r)
	} else {
		writeLeaksText(bw, r)
	}
	return bw.Flush()
}

func writeLeaksText(w *bufio.Writer, r *Report) {
	if len(r.Groups) == 0 && len(r.Suppressed) == 0 {
		if !r.Dropped.Complete() {
			writeLosses(w, r)
			fmt.Fprintf(w, "==%d==lsan: no leaks found, on incomplete data (%s)\n", r.PID, checkSummary(r))
			return
		}
		if r.Hidden > 0 {
			// Leaks there are, but none the filters let through.
			fmt.Fprintf(w, "==%d==lsan: no leaks to show (%s)\n", r.PID, checkSummary(r))
			fmt.Fprintf(w, "lsan: %d group(s) hidden: %s\n", r.Hidden, r.HiddenWhy)
			return
		}
		fmt.Fprintf(w, "==%d==lsan: no leaks found (%s)\n", r.PID, checkSummary(r))
		return
	}
	if len(r.Groups) > 0 {
		fmt.Fprintf(w, "\n%s\n", strings.Repeat("=", 65))
		fmt.Fprintf(w, "==%d==ERROR: LeakSanitizer: detected memory leaks\n\n", r.PID)
		if r.Omitted > 0 {
			fmt.Fprintf(w, "The %d top leak(s):\n", len(r.Groups))
		}
		for _, g := range r.Groups {
			header := "Direct"
			if g.Kind == Indirect {
				header = "Indirect"
			}
			fmt.Fprintf(w, "%s leak of %d byte(s) in %d object(s) allocated from:\n", header, g.Bytes, g.Count)
			writeFrames(w, g.Stack)
			writeTrend(w, r, g)
			w.WriteString("\n")
		}
		writeObjects(w, r.Groups)
		if r.Omitted > 0 {
			fmt.Fprintf(w, "Omitting %d more leak(s).\n", r.Omitted)
		}
	}
	writeSuppressionsUsed(w, r.Suppressed)
	writeSuggestions(w, r.Groups)
	writeNotes(w, r)
	writeLosses(w, r)
	if len(r.Groups) > 0 {
		fmt.Fprintf(w, "SUMMARY: LeakSanitizer: %d byte(s) leaked in %d allocation(s).\n", r.TotalBytes(), r.TotalCount())
	}
}

// writeLosses warns, before the summary, that the check ran on incomplete
// data, and what that means for its verdict.
func writeLosses(w *bufio.Writer, r *Report) {
	if r.Dropped.Complete() {
		return
	}
	fmt.Fprintf(w, "lsan: WARNING: incomplete data: %s.\n", strings.Join(r.Dropped.losses(), ", "))
	if r.Dropped.Lost() {
		w.WriteString("lsan: WARNING: this verdict cannot be trusted: blocks reported may be live, and leaks may be missing.\n")
	}
	w.WriteString("\n")
}

func writeOutstandingText(w *bufio.Writer, r *Report) {
	fmt.Fprintf(w, "\n==%d==lsan: [%s] top stacks with outstanding allocations", r.PID, r.Time.Format("2006-01-02 15:04:05"))
	if r.MinAge > 0 {
		fmt.Fprintf(w, " older than %s", r.MinAge)
	}
	fmt.Fprintf(w, ":\n\n")
	for _, g := range r.Groups {
		fmt.Fprintf(w, "Outstanding allocation of %d byte(s) in %d object(s) allocated from:\n", g.Bytes, g.Count)
		writeFrames(w, g.Stack)
		writeTrend(w, r, g)
		w.WriteString("\n")
	}
	writeObjects(w, r.Groups)
	if r.Omitted > 0 {
		fmt.Fprintf(w, "Omitting %d more stack(s).\n", r.Omitted)
	}
	writeNotes(w, r)
	writeLosses(w, r)
	fmt.Fprintf(w, "SUMMARY: lsan: %d byte(s) outstanding in %d allocation(s).\n", r.TotalBytes(), r.TotalCount())
}

// writeFrames prints frames as LSan does: "    #N 0xPC in FUNC FILE:LINE:COL",
// or "(MODULE+0xOFF)" when no source is known; the caller ends the group
// with a blank line.
func writeFrames(w *bufio.Writer, frames []symbolize.Frame) {
	for i, f := range frames {
		fmt.Fprintf(w, "    #%d 0x%x%s\n", i, f.PC, frameText(f))
	}
}

// frameText is the part of a frame line after the PC.
func frameText(f symbolize.Frame) string {
	var b strings.Builder
	if f.Function != "" {
		b.WriteString(" in ")
		b.WriteString(f.Function)
	}
	switch {
	case f.File != "":
		fmt.Fprintf(&b, " %s", f.File)
		if f.Line > 0 {
			fmt.Fprintf(&b, ":%d", f.Line)
			if f.Column > 0 {
				fmt.Fprintf(&b, ":%d", f.Column)
			}
		}
	case f.Module != "":
		fmt.Fprintf(&b, " (%s+0x%x)", f.Module, f.ModuleOffset)
		if f.BuildID != "" {
			fmt.Fprintf(&b, " (BuildId: %s)", f.BuildID)
		}
	default:
		b.WriteString(" (<unknown module>)")
	}
	return b.String()
}

func writeObjects(w *bufio.Writer, groups []Group) {
	any := false
	for _, g := range groups {
		if len(g.Objects) > 0 {
			any = true
		}
	}
	if !any {
		return
	}
	w.WriteString("Objects leaked above:\n")
	for _, g := range groups {
		for _, o := range g.Objects {
			fmt.Fprintf(w, "0x%x (%d bytes)\n", o.Addr, o.Size)
		}
	}
	w.WriteString("\n")
}

func writeSuppressionsUsed(w *bufio.Writer, used []SuppressedRule) {
	if len(used) == 0 {
		return
	}
	dashes := strings.Repeat("-", 53)
	fmt.Fprintf(w, "%s\nSuppressions used:\n  count      bytes template\n", dashes)
	for _, s := range used {
		// LSan's table shows the template, without the "leak:" type.
		fmt.Fprintf(w, "%7d %10d %s\n", s.Count, s.Bytes, strings.TrimPrefix(s.Pattern, "leak:"))
	}
	fmt.Fprintf(w, "%s\n\n", dashes)
}

// writeSuggestions prints the --print-suppressions rules, one per
// distinct rule, ready to paste into a suppression file.
func writeSuggestions(w *bufio.Writer, groups []Group) {
	seen := map[string]bool{}
	var rules []string
	for _, g := range groups {
		if g.Suggestion != "" && !seen[g.Suggestion] {
			seen[g.Suggestion] = true
			rules = append(rules, g.Suggestion)
		}
	}
	if len(rules) == 0 {
		return
	}
	w.WriteString("Suggested suppressions (paste into a file given with -s):\n")
	for _, r := range rules {
		fmt.Fprintf(w, "%s\n", r)
	}
	w.WriteString("\n")
}

// writeNotes says what limits the report: sampling and lost events.
// Nothing is dropped silently, so the dropped counts are always shown.
func writeNotes(w *bufio.Writer, r *Report) {
	if r.SampleRate > 1 {
		fmt.Fprintf(w, "lsan: sampled: 1 in %d allocations tracked; sizes and counts are of the sampled blocks only.\n", r.SampleRate)
	}
	fmt.Fprintf(w, "lsan: %s\n", checkSummary(r))
	if s := timelineSummary(r); s != "" {
		fmt.Fprintf(w, "lsan: %s\n", s)
	}
	if r.Hidden > 0 {
		fmt.Fprintf(w, "lsan: %d group(s) hidden: %s\n", r.Hidden, r.HiddenWhy)
	}
	if n := r.Stats.Unconfirmed; n > 0 && r.Final {
		fmt.Fprintf(w, "lsan: %d block(s) unreferenced in the last snapshot but not in the one just before: not reported (unconfirmed)\n", n)
	} else if n > 0 {
		fmt.Fprintf(w, "lsan: %d block(s) unreferenced in this snapshot for the first time: reported if still unreferenced at the next check\n", n)
	}
	w.WriteString("\n")
}

func checkSummary(r *Report) string {
	s := fmt.Sprintf("%d block(s) tracked, dropped %d allocation(s) and %d stack(s) since attach", r.Stats.Blocks, r.Dropped.Allocs, r.Dropped.Stacks)
	if r.Mode == ModeLeaks && r.Stats.CheckMS > 0 {
		s += fmt.Sprintf("; scanned %d bytes, target paused %.1f ms, check %.1f ms", r.Stats.ScannedBytes, r.Stats.PausedMS, r.Stats.CheckMS)
	}
	if r.Stats.StacksCut > 0 {
		s += fmt.Sprintf("; %d stack(s) cut short by the unwinder (marked)", r.Stats.StacksCut)
	}
	return s
}
