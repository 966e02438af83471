// Package target decides, before lsan attaches, whether a process ID names
// something lsan can check, and says in one line what is wrong when it
// does not: a kernel thread, a zombie, lsan itself, a thread of another
// process, a process already under a tracer, or missing privileges (which
// capability, which system setting).
//
//	if err := target.Check(pid, target.NeedPtrace); err != nil {
//		fmt.Fprintln(os.Stderr, "lsan:", err) // exit 1
//	}
//
// It only reads /proc and /sys; it never stops or signals the target.
// The kernel remains the judge: a check here that passes may still fail
// at attach (the target can exit in between), and the attach path keeps
// its own error messages.
package target
