package symbolize

import (
	"debug/elf"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// The benchmark symbolizes 10,000 distinct PCs of one module in a live
// process, with a fresh Symbolizer each time (cold: the module's DWARF is
// read and indexed as part of the measured time), and runs addr2line and
// llvm-symbolizer, one process each with all addresses on standard input,
// on the same module offsets. It reports the time per PC of each, how
// much faster lsan is, and how many answers agree.
//
//	go test ./symbolize/ -run '^$' -bench Symbolize10k -benchtime 5x
//
// Two modules: glibc with its libc6-dbg debug info (DWARF 5, compressed,
// a separate file found by build-id) and a generated C program with 2,000
// functions and inlined helpers (DWARF inside the executable).

const benchPCs = 10000

// generatedSource writes a C program with n exported functions, each
// inlining two of a set of helpers, so that PCs expand into inlined frames.
func generatedSource(n int) string {
	var b strings.Builder
	b.WriteString("#include <stdio.h>\n\n")
	const helpers = 64
	for h := 0; h < helpers; h++ {
		fmt.Fprintf(&b, `static inline long mix_%d(long x) {
	long y = x * %d;
	for (int i = 0; i < (x & 7); i++)
		y ^= y >> %d;
	return y + %d;
}

`, h, 2*h+3, h%13+1, h*7)
	}
	for i := 0; i < n; i++ {
		prev := "x"
		if i > 0 {
			prev = fmt.Sprintf("fn_%d(x - 1)", i-1)
		}
		fmt.Fprintf(&b, `__attribute__((noinline, noclone)) long fn_%d(long x) {
	long a = mix_%d(x);
	if (x > 0 && (a & 1))
		a += %s;
	long b = mix_%d(a + %d);
	return a ^ b;
}

`, i, i%helpers, prev, (i*7+3)%helpers, i)
	}
	fmt.Fprintf(&b, `int main(void) {
	printf("fn 0x%%lx\n", (unsigned long)fn_%d(3));
	printf("ready\n");
	fflush(stdout);
	while (getchar() != EOF) {
	}
	return 0;
}
`, n-1)
	return b.String()
}

// buildBenchTarget compiles the generated program into dir.
func buildBenchTarget(b *testing.B, dir string) string {
	requireTool(b, "gcc")
	src := filepath.Join(dir, "gen.c")
	if err := os.WriteFile(src, []byte(generatedSource(2000)), 0o644); err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(dir, "gen")
	run(b, dir, "gcc", "-O2", "-g", "-fno-ipa-icf", "-o", bin, src)
	return bin
}

// benchPCsFor picks n distinct addresses inside the sized function symbols
// of a module (deterministically), as run-time PCs.
func benchPCsFor(b *testing.B, m *module, bias uint64, n int, keep func(string) bool) []uint64 {
	var funcs []symbol
	for _, s := range m.symbols().syms {
		if s.sized && s.end > s.addr && keep(s.name) {
			funcs = append(funcs, s)
		}
	}
	if len(funcs) == 0 {
		b.Fatal("no function symbols")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[uint64]bool{}
	var pcs []uint64
	for len(pcs) < n {
		f := funcs[rng.IntN(len(funcs))]
		a := f.addr + rng.Uint64N(f.end-f.addr)
		if !seen[a] {
			seen[a] = true
			pcs = append(pcs, a+bias)
		}
	}
	sort.Slice(pcs, func(i, j int) bool { return pcs[i] < pcs[j] })
	return pcs
}

func BenchmarkSymbolize10k(b *testing.B) {
	// A benchmark with sub-benchmarks runs its own body once: the setup
	// here is shared by both.
	bin := buildBenchTarget(b, b.TempDir())
	requireTool(b, "addr2line")
	requireTool(b, "llvm-symbolizer")

	b.Run("generated", func(b *testing.B) {
		tg := start(b, bin)
		benchModule(b, tg.pid(), bin, func(name string) bool { return strings.HasPrefix(name, "fn_") })
	})
	b.Run("libc", func(b *testing.B) {
		tg := start(b, bin)
		p, err := New(Options{}).Snapshot(tg.pid())
		if err != nil {
			b.Fatal(err)
		}
		var libc string
		for _, m := range p.Modules() {
			if strings.Contains(filepath.Base(m.Path), "libc.so") {
				libc = m.Path
			}
		}
		if libc == "" {
			b.Fatal("libc not mapped")
		}
		if !libcHasDebugInfo(b, libc) {
			if os.Getenv("CI") != "" {
				b.Fatal("install libc6-dbg (CI is set)")
			}
			b.Skip("no debug info for libc: install libc6-dbg")
		}
		benchModule(b, tg.pid(), libc, func(string) bool { return true })
	})
}

// benchModule runs the comparison on one module of process pid.
func benchModule(b *testing.B, pid int, path string, keep func(string) bool) {
	s := New(Options{})
	p, err := s.Snapshot(pid)
	if err != nil {
		b.Fatal(err)
	}
	var mod *module
	var bias uint64
	for i := range p.maps {
		if p.maps[i].path == path && p.mods[i] != nil {
			mod, bias = p.mods[i], p.bias[i]
		}
	}
	if mod == nil {
		b.Fatalf("%s not mapped", path)
	}
	pcs := benchPCsFor(b, mod, bias, benchPCs, keep)
	defer s.Close()
	offsets := make([]uint64, len(pcs))
	for i, pc := range pcs {
		offsets[i] = pc - bias
	}

	var lsanTime, a2lTime, llvmTime, warmTime time.Duration
	var ours [][]Frame
	var a2lOut, llvmOut string
	input := offsetsInput(offsets)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		ours = symbolizeAll(b, pid, pcs, nil)
		lsanTime += time.Since(t0)

		// The tools, interleaved with lsan so that the machine's load
		// weighs on all three alike. Their time is the process's, from
		// start to exit, output parsing excluded.
		b.StopTimer()
		t0 = time.Now()
		a2lOut = addr2lineOutput(b, path, input)
		a2lTime += time.Since(t0)
		t0 = time.Now()
		llvmOut = llvmSymbolizerOutput(b, path, input)
		llvmTime += time.Since(t0)
		b.StartTimer()
	}
	b.StopTimer()
	a2l := parseAddr2line(b, a2lOut, len(offsets))
	llvm := parseLLVMSymbolizer(b, llvmOut, len(offsets))
	// Warm: a long-lived Symbolizer at its next check, modules cached.
	warm := New(Options{})
	symbolizeAll(b, pid, pcs, warm)
	t0 := time.Now()
	symbolizeAll(b, pid, pcs, warm)
	warmTime = time.Since(t0)
	warm.Close()

	perPC := func(d time.Duration, runs int) float64 { return float64(d.Nanoseconds()) / float64(runs*len(pcs)) }
	b.ReportMetric(perPC(lsanTime, b.N), "lsan-ns/pc")
	b.ReportMetric(perPC(warmTime, 1), "lsan-warm-ns/pc")
	b.ReportMetric(perPC(a2lTime, b.N), "addr2line-ns/pc")
	b.ReportMetric(perPC(llvmTime, b.N), "llvm-ns/pc")
	b.ReportMetric(float64(a2lTime)/float64(lsanTime), "x-vs-addr2line")
	b.ReportMetric(float64(llvmTime)/float64(lsanTime), "x-vs-llvm")
	agree := compareAnswers(ours, a2l, llvm, aliasesOf(mod, offsets))
	b.ReportMetric(float64(agree.llvmLoc), "llvm-loc-agree")
	b.ReportMetric(float64(agree.llvmAll), "llvm-all-agree")
	b.ReportMetric(float64(agree.llvmAlias), "llvm-alias-agree")
	b.ReportMetric(float64(agree.llvmUnnamed), "llvm-unnamed")
	b.ReportMetric(float64(agree.a2lLoc), "a2l-loc-agree")
	b.Logf("%s: %d PCs, %d frames; agreement with llvm-symbolizer: locations %d, locations and names %d, "+
		"names up to the alias chosen %d, and %d more where only lsan names a frame; with addr2line: locations %d, "+
		"and %d more with the same lines in another file",
		path, len(pcs), agree.frames, agree.llvmLoc, agree.llvmAll, agree.llvmAlias, agree.llvmUnnamed, agree.a2lLoc, agree.a2lOtherFile)
	for _, d := range agree.examples {
		b.Log(d)
	}
}

// symbolizeAll snapshots pid and symbolizes every PC, with s or a new
// Symbolizer (cold).
func symbolizeAll(b *testing.B, pid int, pcs []uint64, s *Symbolizer) [][]Frame {
	if s == nil {
		s = New(Options{})
		defer s.Close()
	}
	p, err := s.Snapshot(pid)
	if err != nil {
		b.Fatal(err)
	}
	out := make([][]Frame, len(pcs))
	for i, pc := range pcs {
		out[i] = p.Symbolize(pc)
	}
	return out
}

type agreement struct {
	frames                                           int
	llvmLoc, llvmAll, llvmAlias, llvmUnnamed, a2lLoc int
	a2lOtherFile                                     int // same lines, another file name
	examples                                         []string
}

// compareAnswers counts the PCs on which every frame agrees: with
// llvm-symbolizer on file, line and column (and on names too, or on names
// up to the alias chosen for the outer frame), with addr2line on file and
// line. aliases[i] are the names the symbol tables give PC i's function.
func compareAnswers(ours [][]Frame, a2l, llvm [][]toolFrame, aliases []map[string]bool) agreement {
	var a agreement
	for i := range ours {
		o := toolView(ours[i])
		a.frames += len(o)
		loc, all := sameFrames(o, llvm[i], true)
		if loc {
			a.llvmLoc++
		}
		switch {
		case all:
			a.llvmAll++
			a.llvmAlias++
		case loc && sameUpToOuterAlias(o, llvm[i], aliases[i], false):
			a.llvmAlias++
		case loc && sameUpToOuterAlias(o, llvm[i], aliases[i], true):
			a.llvmUnnamed++
		default:
			if len(a.examples) < 5 {
				a.examples = append(a.examples, fmt.Sprintf("differs from llvm-symbolizer at %#x: %v vs %v", ours[i][0].ModuleOffset, o, llvm[i]))
			}
		}
		if loc, _ := sameFrames(o, a2l[i], false); loc {
			a.a2lLoc++
		} else if sameLinesOtherFile(o, a2l[i]) {
			a.a2lOtherFile++
		}
	}
	return a
}

// sameUpToOuterAlias: the frames' names agree up to the name chosen for a
// function. llvm-symbolizer names DWARF frames by their linkage name, for
// C an assembler label ("__GI___printf_fp_l" for __printf_fp_l), and the
// outer frame from the object's symbol table when one covers the PC (any
// alias: "cfree" for free; GCC's clones with their suffix: "f(int)
// (.isra.0)").
// With unnamedOK, a frame llvm-symbolizer leaves unnamed ("??") while we
// name it (from the debug file's .symtab, which it does not read) passes.
func sameUpToOuterAlias(ours, theirs []toolFrame, aliases map[string]bool, unnamedOK bool) bool {
	last := len(ours) - 1
	for k := range ours {
		o, t := ours[k].Function, theirs[k].Function
		if o == t || strings.TrimPrefix(t, "__GI_") == o || (unnamedOK && t == "??") {
			continue
		}
		if k == last && (aliases[t] || strings.HasPrefix(t, o+" (.")) {
			continue
		}
		return false
	}
	return true
}

// aliasesOf lists, for each offset, every symbol name of the function
// containing it (all aliases, from every symbol table of the module).
func aliasesOf(m *module, offsets []uint64) []map[string]bool {
	byAddr := map[uint64]map[string]bool{}
	objs := []*elfObject{m.obj}
	if m.debugObj != nil {
		objs = append(objs, m.debugObj)
	}
	for _, o := range objs {
		for _, typ := range []elf.SectionType{elf.SHT_SYMTAB, elf.SHT_DYNSYM} {
			syms, _ := readFunctionSymbols(o, typ)
			for _, s := range syms {
				if byAddr[s.addr] == nil {
					byAddr[s.addr] = map[string]bool{}
				}
				byAddr[s.addr][demangleName(s.name)] = true
			}
		}
	}
	out := make([]map[string]bool, len(offsets))
	for i, off := range offsets {
		if s, ok := m.symbols().lookup(off); ok {
			out[i] = byAddr[s.addr]
		}
	}
	return out
}

// sameLinesOtherFile: the frames have the same lines, some in another file.
func sameLinesOtherFile(ours, theirs []toolFrame) bool {
	if len(ours) != len(theirs) {
		return false
	}
	for k := range ours {
		if ours[k].Line != theirs[k].Line {
			return false
		}
	}
	return true
}

func sameFrames(ours, theirs []toolFrame, columns bool) (loc, all bool) {
	if len(ours) != len(theirs) {
		return false, false
	}
	loc, all = true, true
	for k := range ours {
		if ours[k].File != theirs[k].File || ours[k].Line != theirs[k].Line || (columns && ours[k].Column != theirs[k].Column) {
			loc = false
		}
		if ours[k].Function != theirs[k].Function {
			all = false
		}
	}
	return loc, loc && all
}
