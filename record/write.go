package record

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"slices"
	"sync"

	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/symbolize"
)

// Writer appends snapshots to a recording file.
type Writer struct {
	mu        sync.Mutex
	f         *os.File
	path      string
	session   uint64
	needsHead bool
	// stored: stack keys already in the file and their index, per pid;
	// modules: the last module list stored, per pid.
	stored  map[int]map[uint64]int
	modules map[int][]wireModule
}

// Create opens path for appending snapshots, creating it if needed. An
// existing file must be a recording of this version: a new run appends
// to it as another session.
func Create(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open recording: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open recording: %w", err)
	}
	if st.Size() > 0 {
		if err := cutTornTail(path); err != nil {
			f.Close()
			return nil, err
		}
	}
	var id [8]byte
	rand.Read(id[:])
	return &Writer{f: f, path: path, session: binary.LittleEndian.Uint64(id[:]), needsHead: st.Size() == 0,
		stored: map[int]map[uint64]int{}, modules: map[int][]wireModule{}}, nil
}

// cutTornTail checks that path is a recording and removes what a killed
// writer left after its last complete record: records appended after a
// torn one could not be read.
func cutTornTail(path string) error {
	rec, err := ReadFile(path)
	if err != nil {
		return err
	}
	if rec.Ignored == 0 {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("open recording: %w", err)
	}
	if err := os.Truncate(path, st.Size()-rec.Ignored); err != nil {
		return fmt.Errorf("cut the torn tail of %s: %w", path, err)
	}
	return nil
}

func checkHeader(h []byte, name string) error {
	if string(h[:len(magic)]) != magic {
		return fmt.Errorf("%s: not an lsan recording (no LSANREC header)", name)
	}
	if v := binary.LittleEndian.Uint32(h[8:]); v != Version {
		return fmt.Errorf("%s: recording format version %d, this lsan reads version %d", name, v, Version)
	}
	return nil
}

// Close closes the file.
func (w *Writer) Close() error { return w.f.Close() }

// Write appends one check: r's groups (all of them: give the report
// before any top-N limit), the stacks not stored before, and mods when
// they changed. withFrames stores the groups' symbolized frames too
// (r.Groups[i].Stack), for reading where the binaries are absent.
func (w *Writer) Write(r *report.Report, mods []symbolize.Module, withFrames bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	ws, commit := w.wire(r, mods, withFrames)
	rec, err := encode(ws)
	if err != nil {
		return err
	}
	if w.needsHead {
		rec = append(header(), rec...)
	}
	// One write(2) on an O_APPEND file: the record lands whole or, if
	// lsan dies in the middle, as a torn tail the reader skips.
	if _, err := w.f.Write(rec); err != nil {
		return fmt.Errorf("append to recording %s: %w", w.path, err)
	}
	w.needsHead = false
	commit()
	return nil
}

// wire builds the payload; commit marks its stacks and modules stored,
// once the write succeeded.
func (w *Writer) wire(r *report.Report, mods []symbolize.Module, withFrames bool) (*wireSnapshot, func()) {
	ws := &wireSnapshot{
		Session: w.session, PID: r.PID, TimeNS: r.Time.UnixNano(), Mode: string(r.Mode), Final: r.Final,
		Groups: make([]wireGroup, 0, len(r.Groups)), Stats: statsToWire(r.Stats), Dropped: droppedToWire(r.Dropped),
		SampleRate: r.SampleRate, MinAgeNS: int64(r.MinAge), Omitted: r.Omitted,
	}
	stored := w.stored[r.PID]
	if stored == nil {
		stored = map[uint64]int{}
	}
	var newKeys []uint64
	for _, g := range r.Groups {
		idx, ok := stored[g.Key]
		if !ok {
			if i := slices.Index(newKeys, g.Key); i >= 0 {
				idx, ok = len(stored)+i, true
			}
		}
		if ok {
			ws.Groups = append(ws.Groups, wireGroup{Kind: kindToWire(g.Kind), Stack: idx, Bytes: g.Bytes, Count: g.Count})
			continue
		}
		ws.Groups = append(ws.Groups, wireGroup{Kind: kindToWire(g.Kind), Stack: len(stored) + len(newKeys), Bytes: g.Bytes, Count: g.Count})
		newKeys = append(newKeys, g.Key)
		st := wireStack{Key: g.Key, Allocator: g.Allocator, PCs: g.PCs}
		if withFrames {
			st.Frames = framesToWire(g.Stack)
		}
		ws.Stacks = append(ws.Stacks, st)
	}
	for _, s := range r.Suppressed {
		ws.Suppressed = append(ws.Suppressed, wireSuppression{s.Pattern, s.Count, s.Bytes})
	}
	wm := modulesToWire(mods)
	newMods := !slices.Equal(wm, w.modules[r.PID])
	if newMods {
		ws.Modules = wm
	}
	return ws, func() {
		for _, k := range newKeys {
			stored[k] = len(stored)
		}
		w.stored[r.PID] = stored
		if newMods {
			w.modules[r.PID] = wm
		}
	}
}

// encode makes one record: length, CRC-32C, compressed JSON.
func encode(ws *wireSnapshot) ([]byte, error) {
	js, err := json.Marshal(ws)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot: %w", err)
	}
	var buf bytes.Buffer
	buf.Write(make([]byte, recordHeaderSize))
	zw, _ := flate.NewWriter(&buf, flate.BestCompression)
	zw.Write(js)
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress snapshot: %w", err)
	}
	out := buf.Bytes()
	payload := out[recordHeaderSize:]
	if len(payload) > maxPayload {
		return nil, errors.New("snapshot too large for a record")
	}
	binary.LittleEndian.PutUint32(out[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(out[4:], crc32.Checksum(payload, castagnoli))
	return out, nil
}

func kindToWire(k report.Kind) string {
	switch k {
	case report.Direct:
		return "d"
	case report.Indirect:
		return "i"
	}
	return "o"
}

func statsToWire(s report.Stats) wireStats {
	return wireStats{Blocks: s.Blocks, ScannedBytes: s.ScannedBytes, PausedMS: s.PausedMS, CheckMS: s.CheckMS,
		Threads: s.Threads, Allocs: s.Allocs, Frees: s.Frees, StacksCut: s.StacksCut}
}

func droppedToWire(d report.Dropped) [6]uint64 {
	return [6]uint64{d.Allocs, d.Stacks, d.Frees, d.Calls, d.Events, d.UnreadableBytes}
}

func framesToWire(fs []symbolize.Frame) []wireFrame {
	out := make([]wireFrame, len(fs))
	for i, f := range fs {
		out[i] = wireFrame{PC: f.PC, Function: f.Function, Module: f.Module, Offset: f.ModuleOffset, BuildID: f.BuildID,
			File: f.File, Line: f.Line, Column: f.Column, Inlined: f.Inlined}
	}
	return out
}

func modulesToWire(mods []symbolize.Module) []wireModule {
	out := make([]wireModule, 0, len(mods))
	for _, m := range mods {
		out = append(out, wireModule{Path: m.Path, BuildID: m.BuildID, Start: m.Start, End: m.End, Offset: m.Offset, Bias: m.Bias, ELF: m.ELF})
	}
	return out
}
