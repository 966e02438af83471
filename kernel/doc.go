// Package kernel is `lsan kernel`: periodic reports of the live kernel
// objects ktrace records, grouped by kernel stack, with the kernel memory
// each process allocated that is still live.
//
// Entry point:
//
//	write, _ := kernel.Writer(os.Stdout, "json")
//	err := kernel.Run(ctx, kernel.Config{Interval: 10 * time.Second, Write: write})
//
// Guarantees: the tracer is detached on every path (an error, a signal,
// the last check); every report says what was dropped since the start
// and which tracepoints this kernel lacks; a stack cut short starts with
// the tracepoint's call_site. docs/kernel.md has the design and formats.
package kernel
