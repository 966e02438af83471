package unwind

import (
	"bufio"
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// buildDeep compiles testdata/deep.c the way distributions build: -O2,
// no frame pointers.
func buildDeep(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "deep")
	cmd := exec.Command("cc", "-O2", "-g", "-fomit-frame-pointer", "-o", out, "testdata/deep.c")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, b)
	}
	return out
}

// readelfRow is one row of `readelf --debug-dump=frames-interp`.
type readelfRow struct {
	pc      uint64
	cfa     string // "rsp+16", "exp"
	rbp, ra string // "u", "c-16"
	// signal: the FDE's CIE has augmentation "S" (a signal trampoline).
	signal bool
}

// readelfRows runs readelf and returns the rows of every FDE; an FDE that
// prints no rows gets its CIE's initial row at its start.
func readelfRows(t *testing.T, path string) []readelfRow {
	t.Helper()
	// readelf exits 1 over unrelated sections (debuglink) yet prints the
	// frames.
	out, err := exec.Command("readelf", "--debug-dump=frames-interp", path).Output()
	if len(out) == 0 {
		t.Fatalf("readelf: %v", err)
	}
	var (
		rows    []readelfRow
		cols    []string
		cieRow  = map[string]readelfRow{}
		curCIE  string
		signals = map[string]bool{}
		signal  bool
		inCIE   bool
		pending *readelfRow // an FDE's start, until its rows show
	)
	flush := func() {
		if pending != nil {
			rows = append(rows, *pending)
			pending = nil
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 4 && f[3] == "CIE":
			flush()
			curCIE, inCIE = f[0], true
			signals[curCIE] = strings.Contains(f[4], "S")
		case len(f) >= 6 && f[3] == "FDE":
			flush()
			inCIE = false
			cie := strings.TrimPrefix(f[4], "cie=")
			lo, _ := strconv.ParseUint(strings.Split(strings.TrimPrefix(f[5], "pc="), "..")[0], 16, 64)
			r := cieRow[cie]
			r.pc = lo
			signal = signals[cie]
			r.signal = signal
			pending = &r
		case len(f) > 0 && f[0] == "LOC":
			cols = f
		case len(f) == len(cols) && len(f) > 2 && len(f[0]) == 16:
			pc, err := strconv.ParseUint(f[0], 16, 64)
			if err != nil {
				continue
			}
			r := readelfRow{pc: pc, cfa: f[1], rbp: "u", ra: "u", signal: signal && !inCIE}
			for i, c := range cols {
				switch c {
				case "rbp":
					r.rbp = f[i]
				case "ra":
					r.ra = f[i]
				}
			}
			if inCIE {
				cieRow[curCIE] = r
				continue
			}
			pending = nil
			rows = append(rows, r)
		}
	}
	flush()
	return rows
}

// want converts a readelf row to the row the table must hold.
func (r readelfRow) want() (Row, bool) {
	if r.signal {
		return Row{Kind: KindSignal}, true
	}
	if r.ra == "u" {
		return Row{Kind: KindEnd}, true
	}
	if r.ra != "c-8" || r.cfa == "exp" {
		return Row{Kind: KindExpression}, true
	}
	var row Row
	switch {
	case strings.HasPrefix(r.cfa, "rsp+"):
		row.Kind = KindRSP
	case strings.HasPrefix(r.cfa, "rbp+"):
		row.Kind = KindRBP
	default:
		return Row{}, false
	}
	off, err := strconv.Atoi(r.cfa[4:])
	if err != nil {
		return Row{}, false
	}
	row.CFAOffset = uint16(off)
	if strings.HasPrefix(r.rbp, "c") {
		o, err := strconv.Atoi(r.rbp[1:])
		if err != nil {
			return Row{}, false
		}
		row.RBPOffset8 = int8(o / 8)
	}
	return row, true
}

func inPLT(f *elf.File, pc uint64) bool {
	for _, s := range f.Sections {
		if strings.HasPrefix(s.Name, ".plt") && pc >= s.Addr && pc < s.Addr+s.Size {
			return true
		}
	}
	return false
}

// TestRowsMatchReadelf compares every row of the table with readelf's
// interpretation of the same .eh_frame.
func TestRowsMatchReadelf(t *testing.T) {
	for _, path := range []string{buildDeep(t), "/lib/x86_64-linux-gnu/libc.so.6"} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			tab, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			checked := 0
			for _, r := range readelfRows(t, path) {
				want, ok := r.want()
				if !ok || inPLT(f, r.pc) {
					continue
				}
				got, ok := tab.RowAt(r.pc)
				got.PC = 0
				if !ok || got != want {
					t.Errorf("%#x: readelf %s rbp=%s ra=%s, want %+v, table has %+v", r.pc, r.cfa, r.rbp, r.ra, want, got)
				}
				checked++
			}
			if checked < 10 {
				t.Fatalf("only %d rows compared", checked)
			}
			t.Logf("%d rows compared, %d expression rows", checked, tab.Expressions)
		})
	}
}

// TestDeepLevel2Rows pins the rows of one known function: deep_level2
// grows its frame for its volatile array, so its CFA is rsp + 8 at entry
// and rsp + a larger offset inside.
func TestDeepLevel2Rows(t *testing.T) {
	path := buildDeep(t)
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	var fn elf.Symbol
	for _, s := range syms {
		if s.Name == "deep_level2" {
			fn = s
		}
	}
	if fn.Value == 0 {
		t.Fatal("deep_level2 not in the symbol table")
	}
	tab, err := Build(f)
	if err != nil {
		t.Fatal(err)
	}
	entry, _ := tab.RowAt(fn.Value)
	if entry.Kind != KindRSP || entry.CFAOffset != 8 {
		t.Errorf("entry row %+v, want rsp+8", entry)
	}
	var inside []Row
	for _, r := range tab.Rows {
		if uint64(r.PC) > fn.Value && uint64(r.PC) < fn.Value+fn.Size {
			inside = append(inside, r)
		}
	}
	var expected []Row
	for _, r := range readelfRows(t, path) {
		if r.pc > fn.Value && r.pc < fn.Value+fn.Size {
			w, _ := r.want()
			w.PC = uint32(r.pc)
			expected = append(expected, w)
		}
	}
	if len(expected) == 0 || len(inside) != len(expected) {
		t.Fatalf("rows inside deep_level2: %+v, readelf: %+v", inside, expected)
	}
	for i := range inside {
		if inside[i] != expected[i] {
			t.Errorf("row %d: %+v, readelf %+v", i, inside[i], expected[i])
		}
	}
	if inside[0].CFAOffset <= 8 {
		t.Errorf("deep_level2 never grows its frame: %+v", inside)
	}
}

func TestPLTRow(t *testing.T) {
	path := buildDeep(t)
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := Build(f)
	if err != nil {
		t.Fatal(err)
	}
	plt := f.Section(".plt")
	if plt == nil {
		t.Skip("no .plt in this build")
	}
	r, _ := tab.RowAt(plt.Addr + 16)
	if r.Kind != KindPLT {
		t.Errorf(".plt row %+v, want plt", r)
	}
}

func FuzzBuild(f *testing.F) {
	for _, p := range []string{"/lib/x86_64-linux-gnu/libc.so.6"} {
		if b, err := os.ReadFile(p); err == nil && len(b) < 4<<20 {
			f.Add(b[:min(len(b), 1<<16)])
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ef, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			return
		}
		tab, err := Build(ef)
		if err != nil {
			return
		}
		for i := 1; i < len(tab.Rows); i++ {
			if tab.Rows[i].PC < tab.Rows[i-1].PC {
				t.Fatalf("rows out of order at %d", i)
			}
		}
	})
}
