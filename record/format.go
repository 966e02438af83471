package record

import (
	"encoding/binary"
	"hash/crc32"
)

// The file header: magic, then the format version (uint32, little
// endian), then 4 reserved bytes (zero).
const (
	magic      = "LSANREC\n"
	Version    = 1
	headerSize = 16
	// recordHeaderSize: payload length and CRC-32C, uint32 each.
	recordHeaderSize = 8
	// maxPayload bounds one record, so that a corrupt length cannot make
	// the reader allocate gigabytes.
	maxPayload = 256 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func header() []byte {
	h := make([]byte, headerSize)
	copy(h, magic)
	binary.LittleEndian.PutUint32(h[8:], Version)
	return h
}

// The payload: DEFLATE-compressed JSON of wireSnapshot. Field names are
// short: a day of checks repeats them tens of thousands of times.
type wireSnapshot struct {
	// Session identifies the writer (one lsan run): stack keys are
	// scoped by (session, pid).
	Session    uint64            `json:"ses"`
	PID        int               `json:"pid"`
	TimeNS     int64             `json:"t"`
	Mode       string            `json:"mode"`
	Final      bool              `json:"final,omitempty"`
	Groups     []wireGroup       `json:"g"`
	Stacks     []wireStack       `json:"stacks,omitempty"`
	Modules    []wireModule      `json:"mods,omitempty"`
	Suppressed []wireSuppression `json:"sup,omitempty"`
	Stats      wireStats         `json:"stats"`
	Dropped    [6]uint64         `json:"drop"` // allocs, stacks, frees, calls, events, unreadable bytes
	SampleRate uint32            `json:"sample,omitempty"`
	MinAgeNS   int64             `json:"minage,omitempty"`
	Omitted    int               `json:"omit,omitempty"`
}

// wireGroup: kind (d, i, o), stack index, bytes, count. The index counts
// the stacks stored for (session, pid) from 0, in file order: small
// numbers, where the 64-bit stack keys took 20 digits per group.
type wireGroup struct {
	Kind  string `json:"k"`
	Stack int    `json:"s"`
	Bytes uint64 `json:"b"`
	Count int    `json:"n"`
}

// wireStack is stored the first time a (session, pid) uses the key.
type wireStack struct {
	Key       uint64      `json:"s"`
	Allocator string      `json:"a,omitempty"`
	PCs       []uint64    `json:"pc"`
	Frames    []wireFrame `json:"f,omitempty"`
}

type wireFrame struct {
	PC       uint64 `json:"pc"`
	Function string `json:"fn,omitempty"`
	Module   string `json:"m,omitempty"`
	Offset   uint64 `json:"o,omitempty"`
	BuildID  string `json:"id,omitempty"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"l,omitempty"`
	Column   int    `json:"c,omitempty"`
	Inlined  bool   `json:"inl,omitempty"`
}

// wireModule is one executable mapping; the list is stored whole when it
// differs from the previous snapshot's of the same (session, pid).
type wireModule struct {
	Path    string `json:"p"`
	BuildID string `json:"id,omitempty"`
	Start   uint64 `json:"s"`
	End     uint64 `json:"e"`
	Offset  uint64 `json:"o"`
	Bias    uint64 `json:"b"`
	ELF     bool   `json:"elf,omitempty"`
}

type wireSuppression struct {
	Pattern string `json:"p"`
	Count   int    `json:"n"`
	Bytes   uint64 `json:"b"`
}

type wireStats struct {
	Blocks       int     `json:"blocks"`
	ScannedBytes uint64  `json:"scanned,omitempty"`
	PausedMS     float64 `json:"paused,omitempty"`
	CheckMS      float64 `json:"check,omitempty"`
	Threads      int     `json:"threads,omitempty"`
	Allocs       uint64  `json:"allocs,omitempty"`
	Frees        uint64  `json:"frees,omitempty"`
	StacksCut    uint64  `json:"cut,omitempty"`
}
