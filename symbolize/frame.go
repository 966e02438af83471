package symbolize

// Frame is one symbolized stack frame. One PC can expand into several
// Frames when the compiler inlined calls there: they come innermost first,
// and every frame but the last of such an expansion has Inlined set.
type Frame struct {
	// PC is the address that was looked up: the function's address for the
	// allocator frame, the return address minus one for the callers, so that
	// the line shown is the line of the call (as LSan and llvm-symbolizer do).
	PC uint64
	// Function is the (demangled, unless disabled) function name; "" when unknown.
	Function string
	// Module is the path of the mapped object as the target process sees it.
	Module string
	// ModuleOffset is PC's offset within Module, as printed in "(module+0xoff)".
	ModuleOffset uint64
	// BuildID is Module's GNU build-id in hex, "" when it has none or could
	// not be opened. Printed for frames without symbols, as LSan does: it
	// names the debug package to install.
	BuildID string
	// File, Line and Column locate the PC in the source; empty or 0 when unknown.
	File   string
	Line   int
	Column int
	// Inlined is true for a frame that was inlined into the frame after it.
	Inlined bool
}
