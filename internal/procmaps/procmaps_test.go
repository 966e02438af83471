package procmaps

import (
	"os"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Mapping
	}{
		// The inode (7) also appears inside the address: the path must
		// still be the whole last field.
		{"7f7f00000000-7f7f00007000 r-xp 00000000 00:2f 7                          /tmp/x/libc.so.6",
			Mapping{Start: 0x7f7f00000000, End: 0x7f7f00007000, Perms: "r-xp", Dev: "00:2f", Inode: 7, Path: "/tmp/x/libc.so.6"}},
		{"55d4c2a03000-55d4c2a04000 rw-p 00003000 fd:01 1234 /opt/my app/bin with spaces (deleted)",
			Mapping{Start: 0x55d4c2a03000, End: 0x55d4c2a04000, Perms: "rw-p", Offset: 0x3000, Dev: "fd:01", Inode: 1234, Path: "/opt/my app/bin with spaces", Deleted: true}},
		{"7ffc00000000-7ffc00100000 rw-p 00000000 00:00 0                          [stack]",
			Mapping{Start: 0x7ffc00000000, End: 0x7ffc00100000, Perms: "rw-p", Dev: "00:00", Path: "[stack]"}},
		{"7f0000001000-7f0000002000 rw-p 00000000 00:00 0 ",
			Mapping{Start: 0x7f0000001000, End: 0x7f0000002000, Perms: "rw-p", Dev: "00:00"}},
		{"7f0000001000-7f0000002000 rw-s 00000000 00:01 44 /memfd:pool (deleted)",
			Mapping{Start: 0x7f0000001000, End: 0x7f0000002000, Perms: "rw-s", Dev: "00:01", Inode: 44, Path: "/memfd:pool", Deleted: true}},
	} {
		got, err := ParseLine(tc.line)
		if err != nil || got != tc.want {
			t.Errorf("%q:\n got %+v, %v\nwant %+v", tc.line, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "zz-10 rw-p 0 0 0", "10-5 rw-p 0 00:00 0", "10-20 rw-p 0 00:00", "10-20 rw-p x 00:00 0"} {
		if _, err := ParseLine(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestReadSelf: this process's own mappings parse, and its executable is
// among them.
func TestReadSelf(t *testing.T) {
	maps, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	found := false
	for _, m := range maps {
		found = found || m.Path == exe
	}
	if !found {
		t.Errorf("%s not among %d mappings", exe, len(maps))
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add("7f7f00000000-7f7f00007000 r-xp 00000000 00:2f 7 /tmp/x/libc.so.6")
	f.Add("55d4c2a03000-55d4c2a04000 rw-p 00003000 fd:01 1234 /a b (deleted)")
	f.Add("1-2 r 3 4 5")
	f.Fuzz(func(t *testing.T, line string) {
		m, err := ParseLine(line)
		if err != nil {
			return
		}
		if m.End < m.Start || (m.Deleted && strings.HasSuffix(line, DeletedSuffix) == false) {
			t.Errorf("%q: %+v", line, m)
		}
	})
}
