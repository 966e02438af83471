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

// maxTailDepth bounds how deep tail jumps into internal functions are
// followed.
const maxTailDepth = 2

// exitFinder finds the exits of the functions of one ELF file.
type exitFinder struct {
	f *elf.File
	// probed holds the addresses of the allocating functions lsan probes
	// in this file, probedNames those probed in any object: a tail jump
	// into one ends at its exits.
	probed      map[uint64]bool
	probedNames map[string]bool
	fdes        frame.FrameDescriptionEntries
	plt         map[uint64]string // GOT slot -> the function it is bound to
	pltSections []*elf.Section
}

// newExitFinder prepares the analysis of f's functions: probed are the
// allocating functions probed in f, by address; names those probed in any
// object.
func newExitFinder(f *elf.File, probed map[uint64]string, names map[string]bool) (*exitFinder, error) {
	x := &exitFinder{f: f, probed: map[uint64]bool{}, probedNames: names}
	for addr := range probed {
		x.probed[addr] = true
	}
	if s := f.Section(".eh_frame"); s != nil {
		data, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("read .eh_frame: %w", err)
		}
		fdes, err := frame.Parse(data, binary.LittleEndian, 0, 8, s.Addr)
		if err != nil {
			return nil, fmt.Errorf("parse .eh_frame: %w", err)
		}
		x.fdes = fdes
	}
	for _, name := range []string{".plt", ".plt.sec", ".plt.got"} {
		if s := f.Section(name); s != nil {
			x.pltSections = append(x.pltSections, s)
		}
	}
	x.plt = gotBindings(f)
	return x, nil
}

// exits returns the exit sites of the function at vaddr with size bytes
// (0: its extent comes from its frame description entry).
func (x *exitFinder) exits(vaddr, size uint64) ([]exitSite, error) {
	var out []exitSite
	if err := x.walk(vaddr, size, 0, map[uint64]bool{}, &out); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b exitSite) int { return int(int64(a.offset) - int64(b.offset)) })
	return slices.Compact(out), nil
}

func (x *exitFinder) walk(vaddr, size uint64, depth int, seen map[uint64]bool, out *[]exitSite) error {
	if seen[vaddr] {
		return nil
	}
	seen[vaddr] = true
	if size == 0 {
		fde, err := x.fdes.FDEForPC(vaddr)
		if err != nil || fde.Begin() != vaddr {
			return fmt.Errorf("no extent known for code at %#x", vaddr)
		}
		size = fde.End() - vaddr
	}
	code, off, err := x.code(vaddr, size)
	if err != nil {
		return err
	}
	for pos := 0; pos < len(code); {
		rest := code[pos:]
		if hasPrefix(rest, endbr64) {
			pos += len(endbr64)
			continue
		}
		inst, err := x86asm.Decode(rest, 64)
		if err != nil {
			return fmt.Errorf("undecodable instruction at %#x", vaddr+uint64(pos))
		}
		here := vaddr + uint64(pos)
		if err := x.visit(inst, here, off+uint64(pos), vaddr, size, depth, seen, out); err != nil {
			return err
		}
		pos += inst.Len
	}
	return nil
}

// visit looks at one instruction of the function [start, start+size).
func (x *exitFinder) visit(inst x86asm.Inst, here, fileOff, start, size uint64, depth int, seen map[uint64]bool, out *[]exitSite) error {
	switch {
	case inst.Op == x86asm.RET:
		*out = append(*out, exitSite{fileOff, exitReturn})
		return nil
	case inst.Op == x86asm.JMP || isJcc(inst.Op):
	default:
		return nil
	}
	rel, ok := inst.Args[0].(x86asm.Rel)
	if !ok {
		return fmt.Errorf("indirect jump at %#x", here)
	}
	target := uint64(int64(here) + int64(inst.Len) + int64(rel))
	if target >= start && target < start+size {
		return nil // within the function
	}
	switch {
	case x.probed[target]:
		return nil // ends at that function's exits
	case x.inPLT(target):
		name, err := x.pltTarget(target)
		if err != nil {
			return err
		}
		if x.probedNames[name] {
			return nil
		}
		if slices.Contains(returnsFirstArg, name) {
			*out = append(*out, exitSite{fileOff, exitTailFirst})
			return nil
		}
		return fmt.Errorf("tail jump at %#x to %s, whose result is unknown", here, name)
	case depth < maxTailDepth:
		return x.walk(target, 0, depth+1, seen, out)
	}
	return fmt.Errorf("tail jumps nested too deep at %#x", here)
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
