// Go test program for package symbolize (same protocol as prog.c): Go's
// linker writes DWARF 5 line tables with inline (DW_FORM_string) paths.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
)

//go:noinline
func where() uintptr {
	pcs := make([]uintptr, 1)
	runtime.Callers(1, pcs) // LINE:go_callers
	return pcs[0]
}

func main() {
	fmt.Printf("callers %#x\n", where())
	fmt.Println("ready")
	io.ReadAll(os.Stdin)
}
