package bpf

import (
	"crypto/sha256"
	"encoding/hex"
)

// ObjectSHA256 identifies the compiled BPF object embedded in this build
// (bpf2go's .o), for `lsan --version`: two builds with the same value
// load the same BPF programs.
func ObjectSHA256() string {
	sum := sha256.Sum256(_TracerBytes)
	return hex.EncodeToString(sum[:])
}
