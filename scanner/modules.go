package scanner

import (
	"debug/elf"
	"fmt"
	"os"
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
	f, err := os.Open(fmt.Sprintf("%s/%d/map_files/%x-%x", procRoot, pid, m.start, m.end))
	if err != nil {
		f, err = os.Open(fmt.Sprintf("%s/%d/root%s", procRoot, pid, m.path))
	}
	if err != nil {
		return moduleInfo{}, err
	}
	defer f.Close()
	ef, err := elf.NewFile(f)
	if err != nil {
		return moduleInfo{}, err
	}
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
// modules' TLS blocks lie below it, the thread descriptor above. glibc
// adds a surplus for modules loaded later with initial-exec TLS (1664
// bytes plus rtld.optional_static_tls, 512 by default).
const (
	staticTLSSurplus = 1664 + 512 + 256
	threadDescriptor = 4 << 10
)

// staticTLS returns the static TLS range of each live thread, clipped to
// the mapping that holds it.
func staticTLS(maps []mapping, threads []threadRoot, modulesTLS uint64) []span {
	below := modulesTLS + staticTLSSurplus
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
		lo := m.start
		if t.tp-m.start > below {
			lo = t.tp - below
		}
		out = append(out, span{lo, min(m.end, t.tp+threadDescriptor)})
	}
	return normalize(out)
}
