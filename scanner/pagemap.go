package scanner

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Pages that were never touched read as zeroes and hold no pointer, but
// reading them costs time and makes the kernel map the zero page into the
// target's page tables: a 64 GiB sparse mapping would cost seconds and
// hundreds of MiB of the target's page tables. /proc/PID/pagemap says which
// pages are present (or swapped out); only those are read in large ranges.

const (
	// sparseMin: ranges at least this large are checked against the
	// pagemap before they are read.
	sparseMin     = 256 << 10
	pmPresent     = uint64(1) << 63
	pmSwapped     = uint64(1) << 62
	pmBatchPages  = 1 << 16 // pagemap entries read per pread (512 KiB)
	pmEntryLength = 8
)

// pageMap tells which pages of the target are populated.
type pageMap interface {
	// populated appends to out the parts of s whose pages are present or
	// swapped out.
	populated(s span, out []span) ([]span, error)
}

// procPagemap reads /proc/PID/pagemap.
type procPagemap struct {
	f   *os.File
	buf []uint64
}

func openPagemap(pid int) (*procPagemap, error) {
	f, err := os.Open(fmt.Sprintf("%s/%d/pagemap", procRoot, pid))
	if err != nil {
		return nil, err
	}
	return &procPagemap{f: f, buf: make([]uint64, pmBatchPages)}, nil
}

func (p *procPagemap) close() error { return p.f.Close() }

func (p *procPagemap) populated(s span, out []span) ([]span, error) {
	first, last := s.start/pageSize, (s.end+pageSize-1)/pageSize
	for page := first; page < last; {
		n := int(min(uint64(len(p.buf)), last-page))
		raw := unsafe.Slice((*byte)(unsafe.Pointer(&p.buf[0])), n*pmEntryLength)
		got, err := unix.Pread(int(p.f.Fd()), raw, int64(page*pmEntryLength))
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return out, fmt.Errorf("read pagemap: %w", err)
		}
		if got < pmEntryLength {
			return out, errors.New("read pagemap: short read")
		}
		n = got / pmEntryLength
		for i, e := range p.buf[:n] {
			if e&(pmPresent|pmSwapped) == 0 {
				continue
			}
			a := (page + uint64(i)) * pageSize
			r := span{max(a, s.start), min(a+pageSize, s.end)}
			if k := len(out); k > 0 && out[k-1].end == r.start {
				out[k-1].end = r.end
			} else {
				out = append(out, r)
			}
		}
		page += uint64(n)
	}
	return out, nil
}

// keepPopulated replaces each large range by its populated parts. On a
// pagemap error the range is kept whole. skipped counts what was left out.
func keepPopulated(pm pageMap, rs []span, skipped *uint64) []span {
	if pm == nil {
		return rs
	}
	var out []span
	for _, r := range rs {
		if r.size() < sparseMin {
			out = append(out, r)
			continue
		}
		before := len(out)
		var err error
		out, err = pm.populated(r, out)
		if err != nil {
			out = append(out[:before], r)
			continue
		}
		*skipped += r.size() - totalSize(out[before:])
	}
	return out
}
