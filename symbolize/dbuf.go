package symbolize

import (
	"bytes"
	"encoding/binary"
)

// dbuf reads DWARF-encoded values from a byte slice. Reads past the end do
// not panic: they set err and return zero, so a truncated or corrupt
// section degrades into "no information" instead of a crash. Callers check
// err once after a group of reads.
type dbuf struct {
	data  []byte
	off   uint64
	order binary.ByteOrder
	err   bool
}

func newDbuf(data []byte, off uint64, order binary.ByteOrder) dbuf {
	b := dbuf{data: data, off: off, order: order}
	if off > uint64(len(data)) {
		b.err = true
	}
	return b
}

// take returns the next n bytes, or nil (and sets err) if there are fewer.
func (b *dbuf) take(n uint64) []byte {
	if b.err || n > uint64(len(b.data))-b.off {
		b.err = true
		return nil
	}
	p := b.data[b.off : b.off+n]
	b.off += n
	return p
}

func (b *dbuf) skip(n uint64) { b.take(n) }

func (b *dbuf) u8() uint8 {
	p := b.take(1)
	if p == nil {
		return 0
	}
	return p[0]
}

func (b *dbuf) u16() uint16 {
	p := b.take(2)
	if p == nil {
		return 0
	}
	return b.order.Uint16(p)
}

func (b *dbuf) u24() uint32 {
	p := b.take(3)
	if p == nil {
		return 0
	}
	if b.order == binary.BigEndian {
		return uint32(p[0])<<16 | uint32(p[1])<<8 | uint32(p[2])
	}
	return uint32(p[2])<<16 | uint32(p[1])<<8 | uint32(p[0])
}

func (b *dbuf) u32() uint32 {
	p := b.take(4)
	if p == nil {
		return 0
	}
	return b.order.Uint32(p)
}

func (b *dbuf) u64() uint64 {
	p := b.take(8)
	if p == nil {
		return 0
	}
	return b.order.Uint64(p)
}

// sized reads an unsigned value of 1, 2, 4 or 8 bytes (address or offset).
func (b *dbuf) sized(n uint8) uint64 {
	switch n {
	case 1:
		return uint64(b.u8())
	case 2:
		return uint64(b.u16())
	case 4:
		return uint64(b.u32())
	case 8:
		return b.u64()
	}
	b.err = true
	return 0
}

func (b *dbuf) uleb() uint64 {
	var v uint64
	var shift uint
	for {
		c := b.u8()
		if b.err {
			return 0
		}
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		shift += 7
		if c&0x80 == 0 {
			return v
		}
	}
}

func (b *dbuf) sleb() int64 {
	var v int64
	var shift uint
	for {
		c := b.u8()
		if b.err {
			return 0
		}
		if shift < 64 {
			v |= int64(c&0x7f) << shift
		}
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v
		}
	}
}

// cstr skips a NUL-terminated string and returns it without the NUL.
func (b *dbuf) cstr() []byte {
	if b.err {
		return nil
	}
	rest := b.data[b.off:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		b.err = true
		return nil
	}
	b.off += uint64(i) + 1
	return rest[:i]
}

// cstrAt returns the NUL-terminated string at off in data, "" when off is
// out of range or the string is unterminated.
func cstrAt(data []byte, off uint64) string {
	if off >= uint64(len(data)) {
		return ""
	}
	rest := data[off:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return ""
	}
	return string(rest[:i])
}
