package pprof

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/symbolize"
)

func leakReport(mode report.Mode, kind report.Kind) *report.Report {
	return &report.Report{
		PID: 5, Time: time.Unix(1700000000, 0), Mode: mode,
		Modules: []symbolize.Module{
			{Path: "/lib/libc.so.6", BuildID: "aa11", Start: 0x7f0000, End: 0x7f8000, Offset: 0x1000, ELF: true},
			{Path: "/srv/app", BuildID: "bb22", Start: 0x550000, End: 0x551000, ELF: true},
		},
		Groups: []report.Group{
			{Kind: kind, Bytes: 640, Count: 8, Stack: []symbolize.Frame{
				{PC: 0x7f0100, Function: "malloc", Module: "/lib/libc.so.6"},
				{PC: 0x550010, Function: "inlined_helper", File: "/src/a.c", Line: 3, Inlined: true},
				{PC: 0x550010, Function: "caller", File: "/src/a.c", Line: 9},
				{PC: 0x550020, Function: "main", File: "/src/a.c", Line: 20},
			}},
			{Kind: kind, Bytes: 100, Count: 1, Stack: []symbolize.Frame{
				{PC: 0x7f0100, Function: "malloc", Module: "/lib/libc.so.6"},
				{PC: 0x550020, Function: "main", File: "/src/a.c", Line: 20},
			}},
		},
	}
}

func TestProfile(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, leakReport(report.ModeLeaks, report.Direct)); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(&b)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.SampleType) != 2 || p.SampleType[0].Type != "leaked_objects" || p.SampleType[1].Type != "leaked_space" || p.SampleType[1].Unit != "bytes" {
		t.Fatalf("sample types %v", p.SampleType)
	}
	if len(p.Sample) != 2 || p.Sample[0].Value[0] != 8 || p.Sample[0].Value[1] != 640 || p.Sample[1].Value[1] != 100 {
		t.Fatalf("samples %v", p.Sample)
	}
	// 3 distinct PCs: malloc, the inlined call site, main; shared.
	if len(p.Location) != 3 {
		t.Fatalf("%d locations, want 3", len(p.Location))
	}
	site := p.Sample[0].Location[1]
	if len(site.Line) != 2 || site.Line[0].Function.Name != "inlined_helper" || site.Line[1].Function.Name != "caller" || site.Line[1].Line != 9 {
		t.Errorf("inlined location lines %+v", site.Line)
	}
	if site.Mapping == nil || site.Mapping.File != "/srv/app" || site.Mapping.BuildID != "bb22" || !site.Mapping.HasInlineFrames {
		t.Errorf("app mapping %+v", site.Mapping)
	}
	if m := p.Sample[0].Location[0].Mapping; m == nil || m.BuildID != "aa11" || m.Start != 0x7f0000 || m.Limit != 0x7f8000 || m.Offset != 0x1000 {
		t.Errorf("libc mapping %+v", m)
	}
	if p.Sample[1].Location[1] != p.Sample[0].Location[2] {
		t.Errorf("main's location not shared")
	}
	if got := p.Sample[0].Label["kind"]; len(got) != 1 || got[0] != "direct" {
		t.Errorf("kind label %v", got)
	}
}

func TestOutstandingSampleTypes(t *testing.T) {
	p := Build(leakReport(report.ModeOutstanding, report.Outstanding))
	if p.SampleType[0].Type != "inuse_objects" || p.SampleType[1].Type != "inuse_space" || p.DefaultSampleType != "inuse_space" {
		t.Errorf("sample types %v default %s", p.SampleType, p.DefaultSampleType)
	}
}
