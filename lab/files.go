package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// writeFileAtomic writes data to path through a temporary file in the same directory, synced and renamed
// into place, so a reader (openssl ocsp, a staple responder) sees the old file or the new one, never half of
// one, and notices the change by the new inode.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("lab: writing %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("lab: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// ErrLocked is returned when another process holds the lab's lock for longer than the lock timeout.
var ErrLocked = errors.New("lab: the lab is locked by another process")

// lockTimeout bounds how long an issue or revoke waits for another staple process to finish its own.
const lockTimeout = 10 * time.Second

// lockPoll is how often a waiting process tries the lock again.
const lockPoll = 20 * time.Millisecond
