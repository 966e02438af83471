package scanner

import "errors"

// Fork snapshots are implemented for x86-64 only (forkUnavailable says so
// first); these keep the package building elsewhere.

const stubCodeSize = 0

func stubImage() []byte { return nil }

func (f *freezer) forkCopy(t *frozenThread, site stubSite) (int, error) {
	return 0, errors.New("fork snapshots are implemented for x86-64 only")
}

func killCopy(child int) {}

func (f *freezer) reapLeftIntermediates(threads []*frozenThread) {}
