package baseline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/lsan-project/lsan/record"
	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/symbolize"
)

// Baseline is the groups of an earlier report, by signature.
type Baseline struct {
	bytes map[string]uint64
	// Path is the file it was read from.
	Path string
}

// Load reads a recording (lsan --record) or a JSON report (--format json,
// JSON Lines). Recordings are symbolized with opts.
func Load(path string, opts symbolize.Options) (*Baseline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read baseline: %w", err)
	}
	b := &Baseline{bytes: map[string]uint64{}, Path: path}
	if bytes.HasPrefix(data, []byte("LSANREC\n")) {
		rec, err := record.Parse(data, path)
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		b.addRecording(rec, opts)
		return b, nil
	}
	if err := b.addJSON(data, path); err != nil {
		return nil, err
	}
	return b, nil
}

// addRecording takes the last snapshot of each process.
func (b *Baseline) addRecording(rec *record.Recording, opts symbolize.Options) {
	last := map[int]record.Snapshot{}
	for _, s := range rec.Snapshots {
		last[s.Report.PID] = s
	}
	syms := symbolize.New(opts)
	defer syms.Close()
	for _, s := range last {
		p := syms.FromModules(s.Report.PID, s.Modules)
		for _, g := range s.Report.Groups {
			stack := g.Stack
			if stack == nil {
				stack = report.SymbolizeStack(g.PCs, g.Allocator, p.Symbolize)
			}
			b.bytes[Signature(g.Kind, stack)] += g.Bytes
		}
	}
}

// addJSON takes the last record of a JSON Lines report.
func (b *Baseline) addJSON(data []byte, path string) error {
	var last []byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
			last = append(last[:0], line...)
		}
	}
	if err := sc.Err(); err != nil || last == nil {
		return fmt.Errorf("%s: not a recording or a JSON report", path)
	}
	var r struct {
		Leaks *[]struct {
			Kind  report.Kind `json:"kind"`
			Bytes uint64      `json:"bytes"`
			Stack []struct {
				Function string `json:"function"`
				Module   string `json:"module"`
			} `json:"stack"`
		} `json:"leaks"`
	}
	if err := json.Unmarshal(last, &r); err != nil || r.Leaks == nil {
		return fmt.Errorf("%s: not a recording or a JSON report", path)
	}
	for _, g := range *r.Leaks {
		frames := make([]symbolize.Frame, len(g.Stack))
		for i, f := range g.Stack {
			frames[i] = symbolize.Frame{Function: f.Function, Module: f.Module}
		}
		b.bytes[Signature(g.Kind, frames)] += g.Bytes
	}
	return nil
}

// Signature identifies a group across builds and runs: its kind and the
// function names of its stack, "?" for a frame without one (not its
// module's name: a binary run from another path or renamed is the same
// program).
func Signature(kind report.Kind, stack []symbolize.Frame) string {
	var s strings.Builder
	s.WriteString(string(kind))
	for _, f := range stack {
		s.WriteByte('|')
		if f.Function != "" {
			s.WriteString(f.Function)
		} else {
			s.WriteByte('?')
		}
	}
	return s.String()
}

// Apply keeps the groups of r that are new or larger than in the
// baseline; the others count as hidden. r's groups must be symbolized.
func (b *Baseline) Apply(r *report.Report) {
	r.Filter(func(g *report.Group) bool {
		old, ok := b.bytes[Signature(g.Kind, g.Stack)]
		if !ok {
			return true
		}
		if g.Bytes > old {
			g.BaselineBytes = &old
			return true
		}
		return false
	}, "no larger than in the baseline "+b.Path+" (--baseline)")
}
