package bpf

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/go-delve/delve/pkg/dwarf/frame"
	"golang.org/x/arch/x86/x86asm"
)

// Exit sites: where an allocator call ends, probed instead of the return.
//
// A uretprobe returns through the kernel's trampoline, which on x86-64
// (Linux 6.11 and later: the uretprobe system call) writes the return
// address, rcx and r11 into the 24 bytes below the caller's stack pointer.
// glibc's malloc returns with its result in rcx too, so the pointer stays
// in dead stack that later calls turn into live frames, where the program
// itself keeps no copy: a leak hidden by lsan's own probe. Erasing it from
// BPF needs bpf_probe_write_user, which kernel lockdown forbids.
//
// So on x86-64 an allocating function is probed on its own exits instead:
// each `ret` (the kernel emulates it: one trap, nothing written), and each
// tail jump whose result is known at the jump (memset and memcpy return
// their first argument: calloc and strdup end so). A tail jump into another
// probed function, or into an internal function that can itself be
// analyzed (glibc's _mid_memalign), ends where that function's exits are.
// The BPF side pairs an exit with its call by the stack pointer, which at
// every exit of the outer call equals its value at the entry. A function
// whose exits cannot all be found keeps the uretprobe.

// exitKind says where an exit site finds the call's result.
type exitKind uint8

const (
	exitReturn    exitKind = iota // a ret: the result is in rax
	exitTailFirst                 // a tail jump to a function returning its first argument (rdi)
)

// exitSite is one probed exit: a file offset in the allocator's object.
type exitSite struct {
	offset uint64
	kind   exitKind
}

// returnsFirstArg are the tail-jump targets whose result is their first
// argument, known at the jump.
var returnsFirstArg = []string{"memset", "memcpy", "memmove", "__memset_chk", "__memcpy_chk", "__memmove_chk"}

// noReturn are functions that never return: a call to one ends a path
// (what follows it in the code belongs to something else).
var noReturn = []string{
	"abort", "exit", "_exit", "_Exit", "__stack_chk_fail", "__assert_fail", "__libc_fatal",
	"__cxa_throw", "__cxa_rethrow", "__cxa_bad_alloc", "_Unwind_Resume", "_ZSt9terminatev",
	"_ZSt17__throw_bad_allocv", "_ZSt28__throw_bad_array_new_lengthv", "__cxa_throw_bad_array_new_length",
	"__fortify_fail", "__chk_fail",
}

// maxExitInstructions bounds the instructions decoded for one function
// and what it tail-jumps into.
const maxExitInstructions = 1 << 16

// exitFinder finds the exits of the functions of one ELF file.
type exitFinder struct {
	f *elf.File
	// probed holds the addresses of the allocating functions lsan probes
	// in this file, probedNames those probed in any object: a tail jump
	// into one ends at its exits.
	probed      map[uint64]bool
	probedNames map[string]bool
	fdes        frame.FrameDescriptionEntries
	funcs       []funcSym         // sized, sorted by address
	names       map[uint64]string // every function symbol, sized or not
	defined     map[string]uint64 // where this object defines a function
	plt         map[uint64]string // GOT slot -> the function it is bound to
	pltSections []*elf.Section
}

// funcSym is a function symbol with its extent.
type funcSym struct {
	name        string
	start, size uint64
}

// newExitFinder prepares the analysis of f's functions: probed are the
// allocating functions probed in f, by address; names those probed in any
// object.
func newExitFinder(f *elf.File, probed map[uint64]string, names map[string]bool) (*exitFinder, error) {
	x := &exitFinder{f: f, probed: map[uint64]bool{}, probedNames: names}
	for addr := range probed {
		x.probed[addr] = true
	}
	if s := f.Section(".eh_frame"); s != nil && s.Type != elf.SHT_NOBITS {
		data, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("read .eh_frame: %w", err)
		}
		fdes, err := frame.Parse(data, binary.LittleEndian, 0, 8, s.Addr)
		if err != nil {
			return nil, fmt.Errorf("parse .eh_frame: %w", err)
		}
		// Parse keeps the section's order, which is not by address where
		// cold parts were moved apart; FDEForPC searches a sorted list.
		x.fdes = frame.FrameDescriptionEntries(nil).Append(fdes)
	}
	x.funcs, x.names = functionSymbols(f)
	x.defined = map[string]uint64{}
	for addr, name := range x.names {
		x.defined[name] = addr
	}
	for _, name := range []string{".plt", ".plt.sec", ".plt.got"} {
		if s := f.Section(name); s != nil {
			x.pltSections = append(x.pltSections, s)
		}
	}
	x.plt = gotBindings(f)
	return x, nil
}

// functionSymbols lists the sized function symbols of both symbol
// tables, and names every function symbol (assembly ones have no size).
func functionSymbols(f *elf.File) ([]funcSym, map[uint64]string) {
	var sized []funcSym
	names := map[uint64]string{}
	for _, load := range []func() ([]elf.Symbol, error){f.Symbols, f.DynamicSymbols} {
		syms, _ := load()
		for _, s := range syms {
			if t := elf.ST_TYPE(s.Info); (t != elf.STT_FUNC && t != elf.STT_GNU_IFUNC) || s.Value == 0 {
				continue
			}
			if _, ok := names[s.Value]; !ok {
				names[s.Value] = s.Name
			}
			if s.Size != 0 {
				sized = append(sized, funcSym{s.Name, s.Value, s.Size})
			}
		}
	}
	slices.SortFunc(sized, func(a, b funcSym) int { return cmpUint(a.start, b.start) })
	return sized, names
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// extent returns the code range that holds vaddr: its frame description
// entry's, else a function symbol's.
func (x *exitFinder) extent(vaddr uint64) (start, end uint64, ok bool) {
	if fde, err := x.fdes.FDEForPC(vaddr); err == nil {
		return fde.Begin(), fde.End(), true
	}
	i, _ := slices.BinarySearchFunc(x.funcs, vaddr+1, func(f funcSym, v uint64) int { return cmpUint(f.start, v) })
	if i > 0 && vaddr < x.funcs[i-1].start+x.funcs[i-1].size {
		return x.funcs[i-1].start, x.funcs[i-1].start + x.funcs[i-1].size, true
	}
	return 0, 0, false
}

// symbolAt names the function starting at vaddr ("" if none).
func (x *exitFinder) symbolAt(vaddr uint64) string { return x.names[vaddr] }

// calleeName names what a direct jump or call to target reaches: a PLT
// entry's function, or the function symbol at target.
func (x *exitFinder) calleeName(target uint64) (string, error) {
	if x.inPLT(target) {
		return x.pltTarget(target)
	}
	return x.symbolAt(target), nil
}

// exits returns the exit sites of the function at vaddr with size bytes
// (0: its extent comes from .eh_frame or the symbol table). It follows
// the control flow from the entry: branches, jumps into cold parts and
// into the internal functions it tail-jumps to, each path ending at a
// ret, a tail jump or a call that never returns.
func (x *exitFinder) exits(vaddr, size uint64) ([]exitSite, error) {
	w := &exitWalk{x: x, seen: map[uint64]bool{}, bounds: map[uint64][2]uint64{}}
	if size > 0 {
		w.bounds[vaddr] = [2]uint64{vaddr, vaddr + size}
	}
	w.todo = append(w.todo, vaddr)
	for len(w.todo) > 0 {
		addr := w.todo[len(w.todo)-1]
		w.todo = w.todo[:len(w.todo)-1]
		if err := w.path(addr); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(w.out, func(a, b exitSite) int { return cmpUint(a.offset, b.offset) })
	return slices.Compact(w.out), nil
}

// exitWalk is one traversal.
type exitWalk struct {
	x      *exitFinder
	todo   []uint64
	seen   map[uint64]bool
	bounds map[uint64][2]uint64 // extents given by the caller, by start
	out    []exitSite
	budget int
}

// span returns the extent a path from addr may run in.
func (w *exitWalk) span(addr uint64) (uint64, uint64, error) {
	for _, b := range w.bounds {
		if addr >= b[0] && addr < b[1] {
			return b[0], b[1], nil
		}
	}
	if start, end, ok := w.x.extent(addr); ok {
		return start, end, nil
	}
	return 0, 0, fmt.Errorf("no extent known for code at %#x", addr)
}

// path decodes from addr until the path ends.
func (w *exitWalk) path(addr uint64) error {
	start, end, err := w.span(addr)
	if err != nil {
		return err
	}
	code, off, err := w.x.code(start, end-start)
	if err != nil {
		return err
	}
	for pos := addr - start; pos < uint64(len(code)); {
		here := start + pos
		if w.seen[here] {
			return nil
		}
		w.seen[here] = true
		if w.budget++; w.budget > maxExitInstructions {
			return fmt.Errorf("too much code behind %#x", addr)
		}
		rest := code[pos:]
		if hasPrefix(rest, endbr64) {
			pos += uint64(len(endbr64))
			continue
		}
		inst, err := x86asm.Decode(rest, 64)
		if err != nil {
			return fmt.Errorf("undecodable instruction at %#x", here)
		}
		more, err := w.visit(inst, here, off+pos)
		if err != nil || !more {
			return err
		}
		pos += uint64(inst.Len)
	}
	return nil // off the end of the extent: after a call that never returns
}

// visit handles one instruction; more says whether the path goes on.
func (w *exitWalk) visit(inst x86asm.Inst, here, fileOff uint64) (more bool, err error) {
	switch {
	case inst.Op == x86asm.RET:
		w.out = append(w.out, exitSite{fileOff, exitReturn})
		return false, nil
	case inst.Op == x86asm.UD2 || inst.Op == x86asm.HLT || inst.Op == x86asm.INT:
		return false, nil
	case inst.Op == x86asm.CALL:
		target, ok := relTarget(inst, here)
		return !ok || !w.neverReturns(target), nil
	case inst.Op != x86asm.JMP && !isJcc(inst.Op):
		return true, nil
	}
	target, ok := relTarget(inst, here)
	if !ok {
		return false, fmt.Errorf("indirect jump at %#x", here)
	}
	if err := w.jump(target, here, fileOff); err != nil {
		return false, err
	}
	return inst.Op != x86asm.JMP, nil
}

// jump follows a jump from here to target.
func (w *exitWalk) jump(target, here, fileOff uint64) error {
	switch {
	case w.x.probed[target]:
		return nil // ends at that function's exits
	}
	name, err := w.x.calleeName(target)
	switch {
	case err != nil:
		return err
	case w.x.inPLT(target) && w.x.probedNames[name], slices.Contains(noReturn, name):
		return nil
	case slices.Contains(returnsFirstArg, name):
		w.out = append(w.out, exitSite{fileOff, exitTailFirst})
		return nil
	case w.x.inPLT(target):
		// Through the PLT into a function of this same object (an
		// exported, interposable one: tcmalloc's slow paths): followed
		// there, as if the jump were direct.
		if addr, ok := w.x.defined[name]; ok {
			w.todo = append(w.todo, addr)
			return nil
		}
		return fmt.Errorf("tail jump at %#x to %s, whose result is unknown", here, name)
	}
	w.todo = append(w.todo, target)
	return nil
}

// neverReturns tells whether a call to target ends the path.
func (w *exitWalk) neverReturns(target uint64) bool {
	name, _ := w.x.calleeName(target)
	return slices.Contains(noReturn, name)
}

// relTarget is the target of a direct jump or call.
func relTarget(inst x86asm.Inst, here uint64) (uint64, bool) {
	rel, ok := inst.Args[0].(x86asm.Rel)
	if !ok {
		return 0, false
	}
	return uint64(int64(here) + int64(inst.Len) + int64(rel)), true
}

func isJcc(op x86asm.Op) bool {
	return op >= x86asm.JA && op <= x86asm.JS && op != x86asm.JMP
}

// code reads [vaddr, vaddr+size) and returns it with its file offset.
func (x *exitFinder) code(vaddr, size uint64) ([]byte, uint64, error) {
	for _, p := range x.f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_X == 0 || vaddr < p.Vaddr || vaddr+size > p.Vaddr+p.Filesz {
			continue
		}
		buf := make([]byte, size)
		if _, err := p.ReadAt(buf, int64(vaddr-p.Vaddr)); err != nil {
			return nil, 0, err
		}
		return buf, p.Off + vaddr - p.Vaddr, nil
	}
	return nil, 0, fmt.Errorf("code at %#x is not in an executable segment", vaddr)
}

func (x *exitFinder) inPLT(vaddr uint64) bool {
	for _, s := range x.pltSections {
		if vaddr >= s.Addr && vaddr < s.Addr+s.Size {
			return true
		}
	}
	return false
}

// pltTarget names the function a PLT entry jumps to: its first indirect
// jump through a GOT slot, and the relocation of that slot.
func (x *exitFinder) pltTarget(vaddr uint64) (string, error) {
	code, _, err := x.code(vaddr, 16)
	if err != nil {
		return "", err
	}
	for pos := 0; pos < len(code); {
		rest := code[pos:]
		if hasPrefix(rest, endbr64) {
			pos += len(endbr64)
			continue
		}
		inst, err := x86asm.Decode(rest, 64)
		if err != nil {
			break
		}
		if mem, ok := inst.Args[0].(x86asm.Mem); ok && inst.Op == x86asm.JMP && mem.Base == x86asm.RIP {
			slot := uint64(int64(vaddr) + int64(pos+inst.Len) + mem.Disp)
			if name, ok := x.plt[slot]; ok {
				return name, nil
			}
			return "", fmt.Errorf("PLT entry at %#x: GOT slot %#x has no known relocation", vaddr, slot)
		}
		pos += inst.Len
	}
	return "", fmt.Errorf("PLT entry at %#x: no jump through the GOT", vaddr)
}

// gotBindings maps GOT slots to the functions their relocations bind:
// JUMP_SLOT and GLOB_DAT by symbol, IRELATIVE (an ifunc of this object)
// by the dynamic symbol whose value is the resolver.
func gotBindings(f *elf.File) map[uint64]string {
	out := map[uint64]string{}
	syms, _ := f.DynamicSymbols()
	byValue := map[uint64]string{}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_GNU_IFUNC {
			byValue[s.Value] = s.Name
		}
	}
	for _, name := range []string{".rela.plt", ".rela.dyn"} {
		s := f.Section(name)
		if s == nil {
			continue
		}
		data, err := s.Data()
		if err != nil {
			continue
		}
		for i := 0; i+24 <= len(data); i += 24 {
			off := binary.LittleEndian.Uint64(data[i:])
			info := binary.LittleEndian.Uint64(data[i+8:])
			addend := binary.LittleEndian.Uint64(data[i+16:])
			switch typ, sym := elf.R_X86_64(info&0xffffffff), int(info>>32); typ {
			case elf.R_X86_64_JMP_SLOT, elf.R_X86_64_GLOB_DAT:
				if sym >= 1 && sym-1 < len(syms) {
					out[off] = syms[sym-1].Name
				}
			case elf.R_X86_64_IRELATIVE:
				if name, ok := byValue[addend]; ok {
					out[off] = name
				}
			}
		}
	}
	return out
}
