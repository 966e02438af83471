package symbolize

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Kallsyms symbolizes kernel addresses with /proc/kallsyms: the kernel's
// and every loaded module's text symbols. A frame's Module is "vmlinux" or
// the module's name, ModuleOffset the PC's offset from the start of that
// module's lowest text symbol, and FuncOffset (see KernelFrame) the
// offset within the function, as the kernel prints "func+0x1a".
type Kallsyms struct {
	syms []ksym // text symbols sorted by address
	// base: lowest text address of each module, for ModuleOffset.
	base map[string]uint64
}

type ksym struct {
	addr   uint64
	name   string
	module string
}

// KernelFrame is a symbolized kernel address.
type KernelFrame struct {
	Frame
	// FuncOffset is PC - the function's address.
	FuncOffset uint64
}

// LoadKallsyms reads /proc/kallsyms. It fails when the addresses are
// hidden (all zero: kernel.kptr_restrict, or no CAP_SYSLOG).
func LoadKallsyms() (*Kallsyms, error) {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return nil, fmt.Errorf("read kernel symbols: %w", err)
	}
	defer f.Close()
	k, err := ParseKallsyms(f)
	if err != nil {
		return nil, fmt.Errorf("read /proc/kallsyms: %w", err)
	}
	if len(k.syms) > 0 && k.syms[len(k.syms)-1].addr == 0 {
		return nil, fmt.Errorf("/proc/kallsyms hides the kernel's addresses (kernel.kptr_restrict=%s): lsan needs CAP_SYSLOG", readTrimmed("/proc/sys/kernel/kptr_restrict"))
	}
	return k, nil
}

func readTrimmed(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// ParseKallsyms parses the /proc/kallsyms format: "ADDR TYPE NAME
// [\t[MODULE]]" per line. Only text symbols (t, T, w, W) are kept: a
// stack holds code addresses. Malformed lines are an error naming them.
func ParseKallsyms(r io.Reader) (*Kallsyms, error) {
	k := &Kallsyms{base: map[string]uint64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s, err := parseKsymLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if s == nil {
			continue
		}
		k.syms = append(k.syms, *s)
		if b, ok := k.base[s.module]; !ok || s.addr < b {
			k.base[s.module] = s.addr
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(k.syms, func(i, j int) bool { return k.syms[i].addr < k.syms[j].addr })
	return k, nil
}

// parseKsymLine returns nil for a line that is not a text symbol.
func parseKsymLine(text string) (*ksym, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	fields := strings.Fields(text)
	if len(fields) < 3 {
		return nil, fmt.Errorf("want ADDRESS TYPE NAME, got %q", text)
	}
	addr, err := strconv.ParseUint(fields[0], 16, 64)
	if err != nil {
		return nil, fmt.Errorf("address %q: not hexadecimal", fields[0])
	}
	if len(fields[1]) != 1 {
		return nil, fmt.Errorf("symbol type %q: want one letter", fields[1])
	}
	switch fields[1][0] {
	case 't', 'T', 'w', 'W':
	default:
		return nil, nil
	}
	module := "vmlinux"
	if len(fields) >= 4 {
		m := fields[3]
		if len(m) < 3 || m[0] != '[' || m[len(m)-1] != ']' {
			return nil, fmt.Errorf("module %q: want [NAME]", m)
		}
		module = m[1 : len(m)-1]
	}
	return &ksym{addr: addr, name: fields[2], module: module}, nil
}

// Lookup symbolizes one kernel address: the nearest text symbol at or
// below it. An address below every symbol gets no function and no module.
func (k *Kallsyms) Lookup(pc uint64) KernelFrame {
	i := sort.Search(len(k.syms), func(i int) bool { return k.syms[i].addr > pc }) - 1
	if i < 0 {
		return KernelFrame{Frame: Frame{PC: pc}}
	}
	s := k.syms[i]
	return KernelFrame{
		Frame:      Frame{PC: pc, Function: s.name, Module: s.module, ModuleOffset: pc - k.base[s.module]},
		FuncOffset: pc - s.addr,
	}
}

// Len is the number of text symbols loaded.
func (k *Kallsyms) Len() int { return len(k.syms) }
