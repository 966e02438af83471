package baseline

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/symbolize"
)

const jsonReport = `{"pid":1,"mode":"leaks","leaks":[]}
{"pid":1,"mode":"leaks","leaks":[{"kind":"direct","bytes":100,"count":1,"stack":[{"pc":"0x1","function":"malloc"},{"pc":"0x2","function":"old_leak"},{"pc":"0x3","function":""}]},{"kind":"direct","bytes":64,"count":1,"stack":[{"pc":"0x1","function":"malloc"},{"pc":"0x4","function":"grows"}]}]}
`

func frames(names ...string) []symbolize.Frame {
	var out []symbolize.Frame
	for _, n := range names {
		out = append(out, symbolize.Frame{Function: n, Module: "/elsewhere/" + n})
	}
	return out
}

func TestApplyJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "base.json")
	os.WriteFile(path, []byte(jsonReport), 0o644)
	b, err := Load(path, symbolize.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &report.Report{Groups: []report.Group{
		{Kind: report.Direct, Bytes: 100, Stack: frames("malloc", "old_leak", "")},   // same: hidden
		{Kind: report.Direct, Bytes: 128, Stack: frames("malloc", "grows")},          // larger: kept
		{Kind: report.Indirect, Bytes: 100, Stack: frames("malloc", "old_leak", "")}, // other kind: new
		{Kind: report.Direct, Bytes: 8, Stack: frames("malloc", "brand_new")},        // new
	}}
	b.Apply(r)
	if len(r.Groups) != 3 || r.Hidden != 1 {
		t.Fatalf("%d groups, %d hidden; want 3 and 1", len(r.Groups), r.Hidden)
	}
	if g := r.Groups[0]; g.Stack[1].Function != "grows" || g.BaselineBytes == nil || *g.BaselineBytes != 64 {
		t.Errorf("larger group %+v", g)
	}
	if r.Groups[2].BaselineBytes != nil {
		t.Errorf("new group carries a baseline size")
	}
}

func TestNotABaseline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x")
	os.WriteFile(path, []byte("Direct leak of 8 byte(s)\n"), 0o644)
	if _, err := Load(path, symbolize.Options{}); err == nil || err.Error() != path+": not a recording or a JSON report" {
		t.Errorf("err = %v", err)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(jsonReport))
	f.Add([]byte("LSANREC\n\x01\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte(`{"leaks":null}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "b")
		os.WriteFile(path, data, 0o644)
		b, err := Load(path, symbolize.Options{})
		if err != nil {
			return
		}
		r := &report.Report{Groups: []report.Group{{Kind: report.Direct, Bytes: 1, Stack: frames("malloc")}}}
		b.Apply(r)
	})
}
