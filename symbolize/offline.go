package symbolize

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
)

// FromModules rebuilds the address space of a process from a recorded
// module map (Process.Modules at record time), to symbolize its
// addresses later, on any machine (lsan report). Each module is found by
// its build-id, never by path alone when a build-id was recorded:
//
//  1. the recorded path, when the file there has that build-id (the same
//     machine, or the same package installed);
//  2. DIR/.build-id/xx/yyyy.debug in Options.DebugDirs, then /usr/lib/debug;
//  3. debuginfod's client cache layout, DIR/BUILDID/debuginfo and
//     DIR/BUILDID/executable, in Options.DebugDirs and in
//     $DEBUGINFOD_CACHE_PATH (default ~/.cache/debuginfod_client).
//
// A module found nowhere still gives frames their module, offset and
// build-id, as live reports do for objects without symbols.
func (s *Symbolizer) FromModules(pid int, mods []Module) *Process {
	sorted := append([]Module(nil), mods...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Start < sorted[j].Start })
	p := &Process{pid: pid, ids: []string{}}
	for _, m := range sorted {
		mp := mapping{start: m.Start, end: m.End, offset: m.Offset, perms: "r-xp", path: m.Path, deleted: m.Deleted}
		var mod *module
		if m.ELF {
			mod = s.recordedModule(m)
		}
		p.maps = append(p.maps, mp)
		p.mods = append(p.mods, mod)
		p.bias = append(p.bias, m.Bias)
		p.ids = append(p.ids, m.BuildID)
	}
	return p
}

// recordedModule finds the object a recorded module was, or nil.
func (s *Symbolizer) recordedModule(m Module) *module {
	id, err := hex.DecodeString(m.BuildID)
	if err != nil || len(id) == 0 {
		return s.moduleAtPath(m.Path, nil)
	}
	if mod, ok := s.byID[m.BuildID]; ok {
		return mod
	}
	if mod := s.moduleAtPath(m.Path, id); mod != nil {
		return mod
	}
	search := debugSearch{dirs: s.opts.DebugDirs}
	obj, _ := search.findByBuildID(id)
	if obj == nil {
		obj = s.findInDebuginfodCache(m.BuildID, id)
	}
	if obj == nil {
		return nil
	}
	mod := newModule(obj, debugSearch{targetPath: m.Path, dirs: s.opts.DebugDirs}, &s.opts)
	s.byID[m.BuildID] = mod
	return mod
}

// moduleAtPath opens the file at path when its build-id is id (any file
// there when no build-id was recorded).
func (s *Symbolizer) moduleAtPath(path string, id []byte) *module {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	key := keyOf(st)
	mod, ok := s.byFile[key]
	if !ok {
		mod = s.openModule(path, key, path, rootFS{})
		s.byFile[key] = mod
	}
	if mod == nil || (id != nil && hex.EncodeToString(mod.obj.buildID) != hex.EncodeToString(id)) {
		return nil
	}
	return mod
}

// findInDebuginfodCache looks where debuginfod clients keep what they
// fetched: CACHE/BUILDID/debuginfo (or executable).
func (s *Symbolizer) findInDebuginfodCache(hexID string, id []byte) *elfObject {
	dirs := append([]string(nil), s.opts.DebugDirs...)
	if c := os.Getenv("DEBUGINFOD_CACHE_PATH"); c != "" {
		dirs = append(dirs, c)
	} else if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache", "debuginfod_client"))
	}
	for _, d := range dirs {
		for _, name := range []string{"debuginfo", "executable"} {
			obj, err := openELFFile(filepath.Join(d, hexID, name))
			if err != nil {
				continue
			}
			if hex.EncodeToString(obj.buildID) == hexID {
				return obj
			}
			obj.close()
		}
	}
	return nil
}
