package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/lsan-project/lsan/bpf"
)

// funcFlags name allocator functions lsan does not know (a pool
// allocator's), to be tracked, scanned and reported like malloc's.
func funcFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "alloc-fn", Usage: "also track the blocks `FUNC` returns: [OBJECT:]NAME[:SIZE_ARG[,COUNT_ARG]], argument positions from 1, size 1 by default (repeatable)"},
		&cli.StringSliceFlag{Name: "free-fn", Usage: "also track the blocks `FUNC` releases: [OBJECT:]NAME[:PTR_ARG], pointer 1 by default (repeatable)"},
		&cli.StringSliceFlag{Name: "realloc-fn", Usage: "also track `FUNC` as a realloc: [OBJECT:]NAME[:PTR_ARG,SIZE_ARG], 1,2 by default (repeatable)"},
	}
}

// userFuncs parses --alloc-fn, --free-fn and --realloc-fn.
func userFuncs(c *cli.Context) ([]bpf.AllocatorFunc, error) {
	var out []bpf.AllocatorFunc
	for _, role := range []bpf.FuncRole{bpf.RoleAlloc, bpf.RoleFree, bpf.RoleRealloc} {
		flag := string(role) + "-fn"
		for _, spec := range c.StringSlice(flag) {
			fn, err := bpf.ParseFunc(role, spec)
			if err != nil {
				return nil, usageError{fmt.Errorf("--%s %w", flag, err)}
			}
			out = append(out, fn)
		}
	}
	if err := bpf.CheckFuncs(out); err != nil {
		return nil, usageError{err}
	}
	return out, nil
}
