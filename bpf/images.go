package bpf

import (
	"debug/elf"
)

// image is one program image of one process: a forked child runs its
// parent's, an execve starts a new one (a new generation).
type image struct {
	pid        int
	generation uint16
}

// FuncAddr is where the allocator function that made b lies in b's
// process, the first frame of b's stack; 0 when unknown.
func (t *Tracer) FuncAddr(b Block) uint64 {
	addrs := t.funcAddrsOf(image{b.PID, b.generation})
	if int(b.Fn) < len(addrs) {
		return addrs[b.Fn]
	}
	return 0
}

// funcAddrsOf locates the probed functions in an image other than the one
// lsan attached to: another program (after execve) may map the same
// library elsewhere. Located once per image, while the process lives.
func (t *Tracer) funcAddrsOf(im image) []uint64 {
	if im == (image{t.opts.PID, 0}) {
		return t.fnAddrs
	}
	if addrs, ok := t.imageFuncs[im]; ok {
		return addrs
	}
	addrs := t.locateFuncs(im.pid)
	t.imageFuncs[im] = addrs
	return addrs
}

func (t *Tracer) locateFuncs(pid int) []uint64 {
	objs, err := mappedObjects(pid)
	if err != nil {
		return nil
	}
	byPath := map[string]*MappedObject{}
	for _, o := range objs {
		byPath[o.Path] = o
	}
	biases := map[*MappedObject]uint64{}
	addrs := make([]uint64, len(t.funcs))
	for i, fn := range t.funcs {
		b, ok := t.allocator.Bindings[fn.Name]
		if !ok || t.fnAddrs[i] == 0 {
			continue
		}
		obj := byPath[b.Object.Path]
		if obj == nil {
			continue
		}
		bias, ok := biases[obj]
		if !ok {
			bias, ok = t.biasOf(obj, b.Object)
			if !ok {
				continue
			}
			biases[obj] = bias
		}
		addrs[i] = b.Value + bias
	}
	return addrs
}

// biasOf computes the load bias of obj, a mapping of the file that
// discovery found as probed, from that file's program headers.
func (t *Tracer) biasOf(obj, probed *MappedObject) (uint64, bool) {
	of := t.objectFiles[probed.OpenPath]
	if of == nil {
		return 0, false
	}
	f, err := elf.NewFile(of.file)
	if err != nil {
		return 0, false
	}
	bias, err := loadBias(obj, f)
	return bias, err == nil
}
