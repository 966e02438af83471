// Package procmaps parses /proc/PID/maps, the kernel's list of a process's
// memory mappings. It is the one parser every part of lsan uses (the
// tracer looking for the allocator, the scanner choosing what to read,
// the symbolizer finding modules, the launcher finding the loader).
//
//	maps, err := procmaps.Read(pid)
//	for _, m := range maps {
//		if m.Executable() && m.FileBacked() { ... m.Path ... }
//	}
//
// Each line is split into its six fields by position, never by searching
// for a field's text: an inode number such as 7 also appears inside the
// address, and paths may hold spaces. A path the kernel marks
// " (deleted)" comes back without the mark, with Deleted set.
//
// Guarantees: Parse never panics on any input (FuzzParse); mappings come
// back in address order.
package procmaps
