package procmaps

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseLineFields(t *testing.T) {
	tests := []struct {
		line string
		want Mapping
	}{
		{
			// Inode 7 also appears in the address: the path must still be
			// the sixth field.
			"7f0000007000-7f0000008000 r-xp 00007000 00:2d 7                          /tmp/t/libc.so.6",
			Mapping{Start: 0x7f0000007000, End: 0x7f0000008000, Perms: "r-xp", Offset: 0x7000, Dev: "00:2d", Inode: 7, Path: "/tmp/t/libc.so.6"},
		},
		{
			"55d0a0000000-55d0a0001000 r--p 00000000 fd:01 1234   /opt/my app/bin with  spaces (deleted)",
			Mapping{Start: 0x55d0a0000000, End: 0x55d0a0001000, Perms: "r--p", Dev: "fd:01", Inode: 1234, Path: "/opt/my app/bin with  spaces", Deleted: true},
		},
		{
			"7ffd1000-7ffd2000 rw-p 00000000 00:00 0                          [stack]",
			Mapping{Start: 0x7ffd1000, End: 0x7ffd2000, Perms: "rw-p", Dev: "00:00", Path: "[stack]"},
		},
		{
			"1000-2000 rw-s 00000000 00:00 0",
			Mapping{Start: 0x1000, End: 0x2000, Perms: "rw-s", Dev: "00:00"},
		},
	}
	for _, tt := range tests {
		got, err := ParseLine(tt.line)
		if err != nil {
			t.Fatalf("ParseLine(%q): %v", tt.line, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseLine(%q) = %+v, want %+v", tt.line, got, tt.want)
		}
	}
}

func TestParseLineRejects(t *testing.T) {
	for _, line := range []string{
		"zz-10 rw-p 0 0 0",
		"10-20 rw-p 0 0",
		"20-10 rw-p 0 00:00 0",
		"10 rw-p 0 00:00 0",
		"10-20 rw-p xyz 00:00 0",
		"10-20 rw-p 0 00:00 -1",
	} {
		if _, err := ParseLine(line); err == nil {
			t.Errorf("ParseLine(%q) succeeded, want an error", line)
		}
	}
}

func TestParseSortsAndReportsBadLines(t *testing.T) {
	in := "3000-4000 r--p 0 00:00 0\nbroken\n1000-2000 r--p 0 00:00 0 /a b\n"
	maps, err := Parse([]byte(in))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v, want one naming line 2", err)
	}
	if len(maps) != 2 || maps[0].Start != 0x1000 || maps[0].Path != "/a b" || maps[1].Start != 0x3000 {
		t.Fatalf("maps = %+v", maps)
	}
	if At(maps, 0x1fff) != 0 || At(maps, 0x2000) != -1 || At(maps, 0x3000) != 1 {
		t.Fatalf("At gives wrong indices")
	}
}

// TestReadSelf checks the parser against the kernel's own output: the test
// binary must be found, executable and file-backed, by its real path.
func TestReadSelf(t *testing.T) {
	maps, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range maps {
		if m.Path == exe && m.Executable() && m.FileBacked() {
			return
		}
	}
	t.Fatalf("no executable mapping of %s in %d mappings", exe, len(maps))
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("7f0000007000-7f0000008000 r-xp 00007000 00:2d 7   /tmp/t/libc.so.6\n"))
	f.Add([]byte("1000-2000 rw-p 0 00:00 0 /a b (deleted)\n\n3000-4000 ---p 0 0:0 0"))
	f.Fuzz(func(t *testing.T, data []byte) {
		maps, _ := Parse(data)
		for i, m := range maps {
			if m.End < m.Start {
				t.Fatalf("mapping %d ends before it starts: %+v", i, m)
			}
			if i > 0 && maps[i-1].Start > m.Start {
				t.Fatalf("mappings out of order at %d", i)
			}
			if m.Deleted != strings.HasSuffix(m.Printed(), DeletedSuffix) {
				t.Fatalf("Printed and Deleted disagree: %+v", m)
			}
			if strings.Contains(m.Path, "\n") {
				t.Fatalf("path holds a newline: %q", m.Path)
			}
		}
	})
}
