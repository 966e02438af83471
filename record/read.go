package record

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"time"

	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/symbolize"
)

// Snapshot is one recorded check.
type Snapshot struct {
	// Report is the check as it was reported, before any top-N limit:
	// groups with their PCs and allocator; each group's Stack holds the
	// frames stored with --record-symbols (nil otherwise).
	Report *report.Report
	// Modules is the process's module map at that check.
	Modules []symbolize.Module
	// Session identifies the lsan run that wrote it.
	Session uint64
}

// Recording is what a file holds.
type Recording struct {
	Snapshots []Snapshot
	// Ignored counts the bytes at the end that did not form a complete,
	// intact record (a writer killed mid-write); Why says what was wrong.
	Ignored int64
	Why     string
}

// ReadFile reads a recording.
func ReadFile(path string) (*Recording, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read recording: %w", err)
	}
	return Parse(data, path)
}

// Read reads a recording from r.
func Read(r io.Reader, name string) (*Recording, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read recording %s: %w", name, err)
	}
	return Parse(data, name)
}

// scope keys what snapshots share: one writer's view of one process.
type scope struct {
	session uint64
	pid     int
}

// Parse decodes a whole recording. A bad header is an error; a bad record
// ends the reading there (everything before it is returned).
func Parse(data []byte, name string) (*Recording, error) {
	if len(data) < headerSize {
		return nil, fmt.Errorf("%s: not an lsan recording (too short)", name)
	}
	if err := checkHeader(data[:headerSize], name); err != nil {
		return nil, err
	}
	rec := &Recording{}
	stacks := map[scope][]wireStack{}
	modules := map[scope][]symbolize.Module{}
	off := headerSize
	for off < len(data) {
		payload, why := nextRecord(data[off:])
		if why != "" {
			rec.Ignored, rec.Why = int64(len(data)-off), fmt.Sprintf("%s at byte %d", why, off)
			break
		}
		ws, err := decode(payload)
		if err != nil {
			rec.Ignored, rec.Why = int64(len(data)-off), fmt.Sprintf("%v at byte %d", err, off)
			break
		}
		off += recordHeaderSize + len(payload)
		rec.Snapshots = append(rec.Snapshots, resolve(ws, stacks, modules))
	}
	return rec, nil
}

// nextRecord returns the payload of the record at the start of b, or why
// there is none.
func nextRecord(b []byte) ([]byte, string) {
	if len(b) < recordHeaderSize {
		return nil, "torn record header"
	}
	n := binary.LittleEndian.Uint32(b)
	if n > maxPayload {
		return nil, "record length out of range"
	}
	if uint64(len(b)-recordHeaderSize) < uint64(n) {
		return nil, "torn record"
	}
	payload := b[recordHeaderSize : recordHeaderSize+int(n)]
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, "checksum mismatch"
	}
	return payload, ""
}

// maxInflated bounds a record's JSON, against compression bombs.
const maxInflated = 1 << 30

func decode(payload []byte) (*wireSnapshot, error) {
	zr := flate.NewReader(bytes.NewReader(payload))
	defer zr.Close()
	js, err := io.ReadAll(io.LimitReader(zr, maxInflated))
	if err != nil {
		return nil, fmt.Errorf("bad compressed record: %v", err)
	}
	var ws wireSnapshot
	if err := json.Unmarshal(js, &ws); err != nil {
		return nil, fmt.Errorf("bad record: %v", err)
	}
	return &ws, nil
}

// resolve turns a record into a Snapshot, with the stacks and modules
// earlier records of its scope stored.
func resolve(ws *wireSnapshot, stacks map[scope][]wireStack, modules map[scope][]symbolize.Module) Snapshot {
	sc := scope{ws.Session, ws.PID}
	known := append(stacks[sc], ws.Stacks...)
	stacks[sc] = known
	if ws.Modules != nil {
		modules[sc] = modulesFromWire(ws.Modules)
	}
	r := &report.Report{
		PID: ws.PID, Time: time.Unix(0, ws.TimeNS), Mode: report.Mode(ws.Mode), Final: ws.Final,
		Stats: statsFromWire(ws.Stats), Dropped: droppedFromWire(ws.Dropped), SampleRate: ws.SampleRate,
		MinAge: time.Duration(ws.MinAgeNS), Omitted: ws.Omitted,
	}
	for _, g := range ws.Groups {
		var st wireStack // an index out of range (a corrupt file): no stack
		if g.Stack >= 0 && g.Stack < len(known) {
			st = known[g.Stack]
		}
		r.Groups = append(r.Groups, report.Group{Kind: kindFromWire(g.Kind), Key: st.Key, Bytes: g.Bytes, Count: g.Count,
			Allocator: st.Allocator, PCs: st.PCs, Stack: framesFromWire(st.Frames)})
	}
	for _, s := range ws.Suppressed {
		r.Suppressed = append(r.Suppressed, report.SuppressedRule{Pattern: s.Pattern, Count: s.Count, Bytes: s.Bytes})
	}
	return Snapshot{Report: r, Modules: modules[sc], Session: ws.Session}
}

func kindFromWire(k string) report.Kind {
	switch k {
	case "d":
		return report.Direct
	case "i":
		return report.Indirect
	}
	return report.Outstanding
}

func statsFromWire(s wireStats) report.Stats {
	return report.Stats{Blocks: s.Blocks, ScannedBytes: s.ScannedBytes, PausedMS: s.PausedMS, CheckMS: s.CheckMS,
		Threads: s.Threads, Allocs: s.Allocs, Frees: s.Frees, StacksCut: s.StacksCut}
}

func droppedFromWire(d [6]uint64) report.Dropped {
	return report.Dropped{Allocs: d[0], Stacks: d[1], Frees: d[2], Calls: d[3], Events: d[4], UnreadableBytes: d[5]}
}

func framesFromWire(fs []wireFrame) []symbolize.Frame {
	if len(fs) == 0 {
		return nil
	}
	out := make([]symbolize.Frame, len(fs))
	for i, f := range fs {
		out[i] = symbolize.Frame{PC: f.PC, Function: f.Function, Module: f.Module, ModuleOffset: f.Offset, BuildID: f.BuildID,
			File: f.File, Line: f.Line, Column: f.Column, Inlined: f.Inlined}
	}
	return out
}

func modulesFromWire(ms []wireModule) []symbolize.Module {
	out := make([]symbolize.Module, len(ms))
	for i, m := range ms {
		out[i] = symbolize.Module{Path: m.Path, BuildID: m.BuildID, Start: m.Start, End: m.End, Offset: m.Offset, Bias: m.Bias, ELF: m.ELF}
	}
	return out
}
