package scanner

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

var (
	errESRCH = unix.ESRCH
	// errNoRemoteRead means this way of reading is not allowed here
	// (seccomp, LSM): the caller falls back to another one.
	errNoRemoteRead = errors.New("remote read not permitted")
)

// maxIovecs is how many remote ranges one process_vm_readv call takes
// (IOV_MAX).
const maxIovecs = 1024

// remoteMemory reads the target's memory.
type remoteMemory interface {
	// readv reads the remote ranges, in order, into consecutive bytes of
	// dst, and stops at the first byte it cannot read. It returns how many
	// bytes it read: fewer than asked means the byte right after them
	// could not be read. An error means no byte could be read for a reason
	// other than an unreadable address.
	readv(dst []byte, remote []span) (int, error)
	close() error
}

// vmReader reads with process_vm_readv. It is safe for concurrent use.
type vmReader struct {
	pid int
}

func (r *vmReader) readv(dst []byte, remote []span) (int, error) {
	if len(remote) == 0 {
		return 0, nil
	}
	iovs := make([]unix.RemoteIovec, len(remote))
	var total uint64
	for i, s := range remote {
		iovs[i] = unix.RemoteIovec{Base: uintptr(s.start), Len: int(s.size())}
		total += s.size()
	}
	local := []unix.Iovec{{Base: &dst[0]}}
	local[0].SetLen(int(total))
	for {
		n, err := unix.ProcessVMReadv(r.pid, local, iovs, 0)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EFAULT), errors.Is(err, unix.EIO), errors.Is(err, unix.ENOMEM):
			// The first page could not be read (unmapped, PROT_NONE,
			// I/O memory, a file hole past EOF).
			return 0, nil
		case errors.Is(err, unix.ESRCH):
			return 0, fmt.Errorf("read memory of pid %d: %w", r.pid, ErrTargetExited)
		case errors.Is(err, unix.EPERM), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EACCES):
			return 0, fmt.Errorf("process_vm_readv pid %d: %w (%w)", r.pid, errNoRemoteRead, err)
		default:
			return 0, fmt.Errorf("process_vm_readv pid %d: %w", r.pid, err)
		}
	}
}

func (r *vmReader) close() error { return nil }

// memFileReader reads through /proc/PID/mem, which works where
// process_vm_readv is filtered out (container seccomp profiles). It is
// safe for concurrent use (pread).
type memFileReader struct {
	pid int
	f   *os.File
}

func openMemFile(pid int) (*memFileReader, error) {
	f, err := os.Open(fmt.Sprintf("%s/%d/mem", procRoot, pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open memory of pid %d: %w", pid, ErrTargetExited)
		}
		return nil, fmt.Errorf("open memory of pid %d: %w", pid, err)
	}
	return &memFileReader{pid: pid, f: f}, nil
}

func (r *memFileReader) readv(dst []byte, remote []span) (int, error) {
	fd := int(r.f.Fd())
	done := 0
	for _, s := range remote {
		want := int(s.size())
		got := 0
		for got < want {
			n, err := unix.Pread(fd, dst[done+got:done+want], int64(s.start)+int64(got))
			if err != nil {
				if errors.Is(err, unix.EINTR) {
					continue
				}
				if errors.Is(err, unix.EIO) || errors.Is(err, unix.EFAULT) || errors.Is(err, unix.ENOMEM) {
					return done + got, nil
				}
				if errors.Is(err, unix.ESRCH) {
					return done + got, fmt.Errorf("read memory of pid %d: %w", r.pid, ErrTargetExited)
				}
				return done + got, fmt.Errorf("read /proc/%d/mem at %#x: %w", r.pid, s.start+uint64(got), err)
			}
			if n == 0 {
				// The process has no memory any more: it exited.
				if done+got == 0 && processGone(r.pid) {
					return 0, fmt.Errorf("read memory of pid %d: %w", r.pid, ErrTargetExited)
				}
				return done + got, nil
			}
			got += n
		}
		done += want
	}
	return done, nil
}

func (r *memFileReader) close() error { return r.f.Close() }

// piece is a part of a requested range that was read: the bytes
// buf[off:off+end-start] hold target memory [start, end).
type piece struct {
	start, end uint64
	off        int
	tag        int32 // the requesting range's tag
}

// taggedSpan is a range to read with a tag passed through to its pieces
// (the block's index, or -1 for a root).
type taggedSpan struct {
	span
	tag int32
}

// memSource is the way target memory is read, shared by the readers of
// one check. It switches once to its fallback when the first way is not
// permitted.
type memSource struct {
	mu       sync.Mutex
	mem      remoteMemory
	fallback func() (remoteMemory, error)
}

func (m *memSource) current() remoteMemory {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mem
}

// switchFrom moves to the fallback if failed is still the current way.
func (m *memSource) switchFrom(failed remoteMemory, cause error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mem != failed {
		return nil // another reader switched already
	}
	if m.fallback == nil {
		return cause
	}
	fb, err := m.fallback()
	m.fallback = nil
	if err != nil {
		return fmt.Errorf("%w; fallback: %w", cause, err)
	}
	m.mem.close()
	m.mem = fb
	return nil
}

func (m *memSource) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mem == nil {
		return nil
	}
	return m.mem.close()
}

// reader reads batches of ranges, skips what cannot be read, and counts.
// One reader is used by one goroutine at a time; fork gives another
// goroutine its own.
type reader struct {
	src    *memSource
	remote []span

	readBytes       uint64 // bytes read
	unreadableBytes uint64 // bytes asked for but not readable
}

func newReader(mem remoteMemory, fallback func() (remoteMemory, error)) *reader {
	return &reader{src: &memSource{mem: mem, fallback: fallback}}
}

// fork returns a reader on the same memory with its own counters.
func (r *reader) fork() *reader { return &reader{src: r.src} }

// join adds a fork's counters to r.
func (r *reader) join(f *reader) {
	r.readBytes += f.readBytes
	r.unreadableBytes += f.unreadableBytes
}

// read fills buf with the ranges of batch, laid out one after the other
// (their total size must fit in buf), and returns the pieces it could
// read. A page that cannot be read is skipped and reading goes on after
// it, so one bad page loses only itself.
func (r *reader) read(buf []byte, batch []taggedSpan, pieces []piece) ([]piece, error) {
	offs := make([]int, len(batch)+1)
	for i, s := range batch {
		offs[i+1] = offs[i] + int(s.size())
	}
	if offs[len(batch)] > len(buf) {
		return pieces, fmt.Errorf("internal: batch of %d bytes for a %d-byte buffer", offs[len(batch)], len(buf))
	}
	i := 0          // first range not fully handled
	var skip uint64 // bytes of batch[i] already handled
	for i < len(batch) {
		r.remote = r.remote[:0]
		r.remote = append(r.remote, span{batch[i].start + skip, batch[i].end})
		for j := i + 1; j < len(batch) && len(r.remote) < maxIovecs; j++ {
			r.remote = append(r.remote, batch[j].span)
		}
		n, err := r.readv(buf[offs[i]+int(skip):], r.remote)
		if err != nil {
			return pieces, err
		}
		r.readBytes += uint64(n)
		// Hand out what was read, range by range.
		left := uint64(n)
		for _, rem := range r.remote {
			take := min(left, rem.size())
			if take > 0 {
				pieces = append(pieces, piece{
					start: rem.start,
					end:   rem.start + take,
					off:   offs[i] + int(rem.start-batch[i].start),
					tag:   batch[i].tag,
				})
			}
			left -= take
			if take < rem.size() {
				// The byte at rem.start+take could not be read: skip its
				// page and go on after it.
				bad := rem.start + take
				next := (bad | (pageSize - 1)) + 1
				if next >= batch[i].end || next < bad {
					r.unreadableBytes += batch[i].end - bad
					i++
					skip = 0
				} else {
					r.unreadableBytes += next - bad
					skip = next - batch[i].start
				}
				break
			}
			i++
			skip = 0
		}
	}
	return pieces, nil
}

// readv reads with the current method and switches to the fallback when
// the current one is not permitted.
func (r *reader) readv(dst []byte, remote []span) (int, error) {
	mem := r.src.current()
	n, err := mem.readv(dst, remote)
	if err == nil || !errors.Is(err, errNoRemoteRead) {
		return n, err
	}
	if err := r.src.switchFrom(mem, err); err != nil {
		return 0, err
	}
	return r.src.current().readv(dst, remote)
}

func (r *reader) close() error { return r.src.close() }

// newProcessReader reads the memory of pid with process_vm_readv, or
// /proc/PID/mem when that is not permitted or forced.
func newProcessReader(pid int, forceProcMem bool) (*reader, error) {
	if forceProcMem {
		m, err := openMemFile(pid)
		if err != nil {
			return nil, err
		}
		return newReader(m, nil), nil
	}
	return newReader(&vmReader{pid: pid}, func() (remoteMemory, error) { return openMemFile(pid) }), nil
}

// wordsOf views a byte slice whose start is 8-byte aligned as words,
// dropping a partial last word.
func wordsOf(b []byte) []uint64 {
	if len(b) < 8 {
		return nil
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), len(b)/8)
}

// alignedBuffer returns n bytes (a multiple of 8) starting on an 8-byte
// boundary, so that they can be viewed as words.
func alignedBuffer(n int) []byte {
	words := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
}
