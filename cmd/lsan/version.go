package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"github.com/lsan-project/lsan/bpf"
)

// version is set at build time: go build -ldflags "-X main.version=1.2.3"
// (make build sets it from git describe).
var version = "devel"

// commit is set at build time (-X main.commit=...); without it, the VCS
// stamp Go records in the binary is used.
var commit = ""

// printVersion writes what identifies this build: the version, the commit
// it was built from, the Go toolchain and the embedded BPF object.
func printVersion(w io.Writer) {
	rev, modified := commit, ""
	if info, ok := debug.ReadBuildInfo(); ok && rev == "" {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = " (modified)"
				}
			}
		}
	}
	fmt.Fprintf(w, "lsan %s\ncommit: %s%s\ngo: %s %s/%s\nbpf object: sha256:%s\n",
		version, orUnknown(rev), modified, runtime.Version(), runtime.GOOS, runtime.GOARCH, bpf.ObjectSHA256())
}

func init() {
	cli.VersionPrinter = func(c *cli.Context) { printVersion(c.App.Writer) }
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
