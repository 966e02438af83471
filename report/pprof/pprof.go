package pprof

import (
	"fmt"
	"io"

	"github.com/google/pprof/profile"

	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/symbolize"
)

// Write writes r as a gzipped profile.proto.
func Write(w io.Writer, r *report.Report) error {
	p := Build(r)
	if err := p.CheckValid(); err != nil {
		return fmt.Errorf("build pprof profile: %w", err)
	}
	if err := p.Write(w); err != nil {
		return fmt.Errorf("write pprof profile: %w", err)
	}
	return nil
}

// builder interns mappings, functions and locations.
type builder struct {
	p         *profile.Profile
	mods      []symbolize.Module
	mappings  map[int]*profile.Mapping // by index in mods
	functions map[[2]string]*profile.Function
	locations map[uint64]*profile.Location
}

// Build makes the profile of r.
func Build(r *report.Report) *profile.Profile {
	objects, space := "leaked_objects", "leaked_space"
	if r.Mode == report.ModeOutstanding {
		objects, space = "inuse_objects", "inuse_space"
	}
	p := &profile.Profile{
		SampleType:        []*profile.ValueType{{Type: objects, Unit: "count"}, {Type: space, Unit: "bytes"}},
		DefaultSampleType: space,
		TimeNanos:         r.Time.UnixNano(),
	}
	if h := r.History; h != nil && len(h.Times) > 1 {
		p.DurationNanos = h.Times[len(h.Times)-1].Sub(h.Times[0]).Nanoseconds()
	}
	b := &builder{p: p, mods: r.Modules, mappings: map[int]*profile.Mapping{},
		functions: map[[2]string]*profile.Function{}, locations: map[uint64]*profile.Location{}}
	for _, g := range r.Groups {
		s := &profile.Sample{
			Value: []int64{int64(g.Count), int64(g.Bytes)},
			Label: map[string][]string{"kind": {string(g.Kind)}},
		}
		if g.Trend != nil && r.History != nil && len(r.History.Times) > 1 {
			s.Label["verdict"] = []string{string(g.Trend.Verdict)}
		}
		for _, frames := range byPC(g.Stack) {
			s.Location = append(s.Location, b.location(frames))
		}
		p.Sample = append(p.Sample, s)
	}
	return p
}

// byPC splits a symbolized stack into the frames of each PC (a PC with
// inlined calls expands into several frames, innermost first).
func byPC(stack []symbolize.Frame) [][]symbolize.Frame {
	var out [][]symbolize.Frame
	for i := 0; i < len(stack); {
		j := i + 1
		for j < len(stack) && stack[j].PC == stack[i].PC && stack[j-1].Inlined {
			j++
		}
		out = append(out, stack[i:j])
		i = j
	}
	return out
}

func (b *builder) location(frames []symbolize.Frame) *profile.Location {
	pc := frames[0].PC
	if l, ok := b.locations[pc]; ok {
		return l
	}
	l := &profile.Location{ID: uint64(len(b.p.Location) + 1), Address: pc, Mapping: b.mapping(pc, frames[0])}
	for _, f := range frames {
		if f.Function == "" {
			continue
		}
		l.Line = append(l.Line, profile.Line{Function: b.function(f), Line: int64(f.Line), Column: int64(f.Column)})
	}
	if l.Mapping != nil && len(l.Line) > 0 {
		l.Mapping.HasFunctions = true
		if frames[0].File != "" {
			l.Mapping.HasFilenames, l.Mapping.HasLineNumbers = true, true
		}
		if len(l.Line) > 1 {
			l.Mapping.HasInlineFrames = true
		}
	}
	b.locations[pc] = l
	b.p.Location = append(b.p.Location, l)
	return l
}

// mapping finds the module holding pc in the module map; without one
// (a report made without it), the frame's own module name.
func (b *builder) mapping(pc uint64, f symbolize.Frame) *profile.Mapping {
	for i, m := range b.mods {
		if m.Start <= pc && pc < m.End {
			if mp, ok := b.mappings[i]; ok {
				return mp
			}
			mp := &profile.Mapping{ID: uint64(len(b.p.Mapping) + 1), Start: m.Start, Limit: m.End, Offset: m.Offset, File: m.Path, BuildID: m.BuildID}
			b.mappings[i] = mp
			b.p.Mapping = append(b.p.Mapping, mp)
			return mp
		}
	}
	return nil
}

func (b *builder) function(f symbolize.Frame) *profile.Function {
	k := [2]string{f.Function, f.File}
	if fn, ok := b.functions[k]; ok {
		return fn
	}
	fn := &profile.Function{ID: uint64(len(b.p.Function) + 1), Name: f.Function, SystemName: f.Function, Filename: f.File}
	b.functions[k] = fn
	b.p.Function = append(b.p.Function, fn)
	return fn
}
