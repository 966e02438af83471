package scanner

import (
	"errors"
	"time"
)

// forkCopy is implemented for x86-64 only (forkUnavailable says so first).
func (f *freezer) forkCopy(t *frozenThread, g exitGadget) (int, error) {
	return 0, errors.New("fork snapshots are implemented for x86-64 only")
}

func (f *freezer) reapCopy(child int, g exitGadget) time.Duration { return 0 }
