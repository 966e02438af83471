package scanner

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// LSan's globals are the writable PT_LOAD segments of every loaded module,
// [vaddr, vaddr+memsz) after relocation: the data the file maps and the
// bss that follows it in anonymous memory. They are read from each
// module's program headers, so that an anonymous mapping next to a
// module is never taken for its bss.

// moduleInfo is what a check needs of one loaded module.
type moduleInfo struct {
	segments []span // writable PT_LOAD segments, relocated
	tlsSize  uint64 // PT_TLS memsz, aligned
}

// loadedModules reads the program headers of every file mapped with an
// ELF header at offset 0 and returns the modules' writable segments and the
// static TLS they need in all.
func loadedModules(pid int, maps []mapping) (segments []span, tlsSize uint64) {
	seen := map[string]bool{}
	for _, m := range maps {
		if m.offset != 0 || m.anonymous() || m.path == "" || m.path[0] != '/' || seen[m.path] {
			continue
		}
		seen[m.path] = true
		info, err := readModule(pid, m)
		if err != nil {
			continue // not an ELF file (a mapped data file), or gone
		}
		segments = append(segments, info.segments...)
		tlsSize += info.tlsSize
	}
	return normalize(segments), tlsSize
}

// readModule reads the program headers of the module whose first mapping
// is m. The file is opened through map_files (the very file mapped, even if
// replaced or deleted since), else through the process's root.
func readModule(pid int, m mapping) (moduleInfo, error) {
	ef, f, err := openModule(pid, m)
	if err != nil {
		return moduleInfo{}, err
	}
	defer f.Close()
	var info moduleInfo
	bias, ok := loadBias(ef, m.start)
	if !ok {
		return info, fmt.Errorf("%s: no PT_LOAD at offset 0", m.path)
	}
	for _, p := range ef.Progs {
		switch {
		case p.Type == elf.PT_LOAD && p.Flags&elf.PF_W != 0 && p.Memsz > 0:
			info.segments = append(info.segments, span{bias + p.Vaddr, bias + p.Vaddr + p.Memsz})
		case p.Type == elf.PT_TLS:
			align := max(p.Align, 1)
			info.tlsSize += (p.Memsz + align - 1) / align * align
		}
	}
	return info, nil
}

// loadBias is where the module was loaded: its first mapping (file offset
// 0) maps the PT_LOAD segment that covers offset 0.
func loadBias(ef *elf.File, firstMapping uint64) (uint64, bool) {
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && p.Off == 0 {
			return firstMapping - (p.Vaddr &^ (pageSize - 1)), true
		}
	}
	return 0, false
}

// Static TLS around a thread pointer (x86-64, TLS variant II): the
// modules' TLS blocks and glibc's surplus lie below it, the thread
// descriptor (struct pthread) above. LSan scans exactly
// [tp + descriptor - static size, tp + descriptor); so does lsan, with the
// sizes read from the target's glibc (see glibcTLSLayout). Elsewhere (musl,
// static binaries) the modules' TLS blocks and a musl-sized descriptor.
const (
	fallbackTLSSlack  = 64
	fallbackThreadTCB = 512
)

// tlsLayout is the static TLS size and the thread descriptor's size.
type tlsLayout struct {
	staticSize, descriptor uint64
}

// staticTLS returns the static TLS range of each live thread, clipped to
// the mapping that holds it.
func staticTLS(maps []mapping, threads []threadRoot, layout tlsLayout) []span {
	var out []span
	for _, t := range threads {
		if !t.hasRegs || t.tp == 0 {
			continue
		}
		mi := mappingAt(maps, t.tp)
		if mi < 0 || !scannable(maps[mi]) {
			continue
		}
		m := maps[mi]
		end := min(m.end, t.tp+layout.descriptor)
		lo := m.start
		if below := layout.staticSize - layout.descriptor; t.tp-m.start > below {
			lo = t.tp - below
		}
		out = append(out, span{lo, end})
	}
	return normalize(out)
}

// findTLSLayout reads the static TLS layout of the target: glibc's own
// figures when its dynamic linker and libc are mapped, else an estimate
// from the modules' PT_TLS sizes.
func findTLSLayout(pid int, rd *reader, maps []mapping, modulesTLS uint64) tlsLayout {
	if l, ok := glibcTLSLayout(pid, rd, maps); ok {
		return l
	}
	return tlsLayout{staticSize: modulesTLS + fallbackTLSSlack + fallbackThreadTCB, descriptor: fallbackThreadTCB}
}

// glibcTLSLayout reads, as LSan does, the static TLS size that
// _dl_get_tls_static_info (ld.so) returns and the descriptor size libc
// publishes for debuggers (_thread_db_sizeof_pthread). The first is a
// variable in ld.so's memory: its address is decoded from the function's
// first instruction, `mov disp(%rip), %rax`.
func glibcTLSLayout(pid int, rd *reader, maps []mapping) (tlsLayout, bool) {
	ld, okLD := firstMappingOf(maps, "ld-linux")
	libc, okLibc := firstMappingOf(maps, "libc.so")
	if !okLD || !okLibc {
		return tlsLayout{}, false
	}
	sizeAddr, ok := ripLoadTarget(pid, ld, "_dl_get_tls_static_info")
	if !ok {
		return tlsLayout{}, false
	}
	words, valid, err := readWordsAt(rd, []uint64{sizeAddr})
	if err != nil || !valid[0] {
		return tlsLayout{}, false
	}
	desc, ok := symbolWord(pid, libc, "_thread_db_sizeof_pthread")
	if !ok {
		return tlsLayout{}, false
	}
	desc &= 0xffffffff // a 32-bit const
	static := words[0]
	if desc == 0 || desc > 1<<16 || static < desc || static > 1<<30 {
		return tlsLayout{}, false
	}
	return tlsLayout{staticSize: static, descriptor: desc}, true
}

// firstMappingOf finds the first (offset 0) mapping of the module whose
// file name starts with prefix.
func firstMappingOf(maps []mapping, prefix string) (mapping, bool) {
	for _, m := range maps {
		if m.offset == 0 && strings.HasPrefix(filepath.Base(m.path), prefix) {
			return m, true
		}
	}
	return mapping{}, false
}

// openModule opens the file of a module's first mapping.
func openModule(pid int, m mapping) (*elf.File, *os.File, error) {
	f, err := os.Open(fmt.Sprintf("%s/%d/map_files/%x-%x", procRoot, pid, m.start, m.end))
	if err != nil {
		f, err = os.Open(fmt.Sprintf("%s/%d/root%s", procRoot, pid, m.path))
	}
	if err != nil {
		return nil, nil, err
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return ef, f, nil
}

// dynamicSymbol finds a symbol of a module's dynamic symbol table.
func dynamicSymbol(ef *elf.File, name string) (elf.Symbol, bool) {
	syms, err := ef.DynamicSymbols()
	if err != nil {
		return elf.Symbol{}, false
	}
	for _, s := range syms {
		if s.Name == name {
			return s, true
		}
	}
	return elf.Symbol{}, false
}

// ripLoadTarget returns the runtime address that function fn of module m
// loads from with its first instruction, a RIP-relative mov.
func ripLoadTarget(pid int, m mapping, fn string) (uint64, bool) {
	ef, f, err := openModule(pid, m)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sym, ok := dynamicSymbol(ef, fn)
	bias, okBias := loadBias(ef, m.start)
	if !ok || !okBias {
		return 0, false
	}
	code, err := readVaddr(ef, sym.Value, 16)
	if err != nil {
		return 0, false
	}
	inst, err := x86asm.Decode(code, 64)
	if err != nil || inst.Op != x86asm.MOV {
		return 0, false
	}
	mem, ok := inst.Args[1].(x86asm.Mem)
	if !ok || mem.Base != x86asm.RIP {
		return 0, false
	}
	return bias + sym.Value + uint64(inst.Len) + uint64(mem.Disp), true
}

// symbolWord reads the 8 bytes at a dynamic symbol of module m from its
// file (a constant).
func symbolWord(pid int, m mapping, name string) (uint64, bool) {
	ef, f, err := openModule(pid, m)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sym, ok := dynamicSymbol(ef, name)
	if !ok {
		return 0, false
	}
	b, err := readVaddr(ef, sym.Value, 8)
	if err != nil || len(b) < 8 {
		return 0, false
	}
	return leUint64(b), true
}

// readVaddr reads n bytes at virtual address vaddr of an ELF file.
func readVaddr(ef *elf.File, vaddr uint64, n int) ([]byte, error) {
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && vaddr >= p.Vaddr && vaddr+uint64(n) <= p.Vaddr+p.Filesz {
			buf := make([]byte, n)
			_, err := p.ReadAt(buf, int64(vaddr-p.Vaddr))
			return buf, err
		}
	}
	return nil, fmt.Errorf("address %#x not in the file", vaddr)
}
