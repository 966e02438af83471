package unwind

import (
	"fmt"
	"os"
	"sync"
	"syscall"
)

// FileID names a file by what the kernel knows it by, so that every
// process mapping it (through any path, container root or map_files link)
// shares one table.
type FileID struct {
	Dev, Ino uint64
}

// IDOf stats path for its FileID.
func IDOf(path string) (FileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return FileID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return FileID{}, fmt.Errorf("stat %s: no device and inode", path)
	}
	return FileID{Dev: st.Dev, Ino: st.Ino}, nil
}

// Cache builds each file's table once, and keeps it on disk (DiskDir)
// for the next run.
type Cache struct {
	mu     sync.Mutex
	tables map[FileID]*Table
	errs   map[FileID]error
	dir    string
}

// NewCache returns an empty cache backed by DiskDir.
func NewCache() *Cache {
	return &Cache{tables: map[FileID]*Table{}, errs: map[FileID]error{}, dir: DiskDir()}
}

// Get returns the table of the file at path, building it on first use.
// A file that failed once is not read again.
func (c *Cache) Get(path string) (*Table, FileID, error) {
	id, err := IDOf(path)
	if err != nil {
		return nil, id, fmt.Errorf("unwind tables of %s: %w", path, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.tables[id]; ok {
		return t, id, nil
	}
	if err, ok := c.errs[id]; ok {
		return nil, id, err
	}
	if t := loadDisk(c.dir, path); t != nil {
		c.tables[id] = t
		return t, id, nil
	}
	t, err := Open(path)
	if err != nil {
		c.errs[id] = err
		return nil, id, err
	}
	storeDisk(c.dir, path, t)
	c.tables[id] = t
	return t, id, nil
}
