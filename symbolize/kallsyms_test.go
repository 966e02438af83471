package symbolize

import (
	"strings"
	"testing"
)

const sampleKallsyms = `ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81001000 t do_one_initcall
ffffffff81002000 D some_data
ffffffff81003000 T __kmalloc_noprof
ffffffffc0201000 t ftrace_trampoline	[__builtin__ftrace]
ffffffffc0400000 t ext4_alloc_inode	[ext4]
ffffffffc0400100 T ext4_iget	[ext4]
`

func TestKallsymsLookup(t *testing.T) {
	k, err := ParseKallsyms(strings.NewReader(sampleKallsyms))
	if err != nil {
		t.Fatal(err)
	}
	if k.Len() != 7 {
		t.Fatalf("Len = %d, want 7 text symbols (the data symbol left out)", k.Len())
	}
	for _, c := range []struct {
		pc               uint64
		fn, mod          string
		modOff, funcOffs uint64
	}{
		{0xffffffff81003010, "__kmalloc_noprof", "vmlinux", 0x3010, 0x10},
		{0xffffffff81002010, "do_one_initcall", "vmlinux", 0x2010, 0x1010}, // data symbols don't end functions
		{0xffffffffc0400123, "ext4_iget", "ext4", 0x123, 0x23},
		{0xffffffffc0400005, "ext4_alloc_inode", "ext4", 0x5, 0x5},
	} {
		f := k.Lookup(c.pc)
		if f.Function != c.fn || f.Module != c.mod || f.ModuleOffset != c.modOff || f.FuncOffset != c.funcOffs {
			t.Errorf("Lookup(%#x) = %s %s+%#x (func+%#x), want %s %s+%#x (func+%#x)", c.pc, f.Function, f.Module, f.ModuleOffset, f.FuncOffset, c.fn, c.mod, c.modOff, c.funcOffs)
		}
	}
	if f := k.Lookup(0x1000); f.Function != "" || f.Module != "" {
		t.Errorf("Lookup below every symbol = %+v, want nothing", f)
	}
}

func TestKallsymsMalformed(t *testing.T) {
	for _, in := range []string{
		"zzzz T name\n",
		"ffffffff81000000 T\n",
		"ffffffff81000000 TT name\n",
		"ffffffff81000000 t name\tnobrackets\n",
	} {
		if _, err := ParseKallsyms(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("ParseKallsyms(%q) = %v, want an error naming line 1", in, err)
		}
	}
}

// TestKallsymsLive reads this machine's /proc/kallsyms: the kernel's own
// allocator must be found.
func TestKallsymsLive(t *testing.T) {
	k, err := LoadKallsyms()
	if err != nil {
		t.Skipf("kallsyms: %v", err)
	}
	found := false
	for _, s := range k.syms {
		if s.name == "kfree" && s.module == "vmlinux" {
			found = k.Lookup(s.addr+1).Function == "kfree"
		}
	}
	if !found {
		t.Fatal("kfree not found in /proc/kallsyms")
	}
}

func FuzzParseKallsyms(f *testing.F) {
	f.Add(sampleKallsyms)
	f.Add("0 t x\t[m]\n")
	f.Fuzz(func(t *testing.T, in string) {
		k, err := ParseKallsyms(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, s := range k.syms {
			// Several symbols may share an address: any of them will do.
			if f := k.Lookup(s.addr); f.FuncOffset != 0 || f.Module == "" {
				t.Fatalf("Lookup(%#x) = %+v, want a frame at the start of a symbol", s.addr, f)
			}
		}
	})
}
