//go:build deps

package main
import (
	_ "github.com/cilium/ebpf"
	_ "github.com/cilium/ebpf/link"
	_ "github.com/urfave/cli/v2"
	_ "golang.org/x/sys/unix"
	_ "golang.org/x/arch/x86/x86asm"
	_ "github.com/ianlancetaylor/demangle"
	_ "github.com/google/pprof/profile"
	_ "github.com/go-delve/delve/pkg/dwarf/godwarf"
	_ "github.com/go-delve/delve/pkg/dwarf/line"
	_ "github.com/ulikunitz/xz"
)
func main() {}
