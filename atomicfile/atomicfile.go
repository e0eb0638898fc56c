// Package atomicfile writes files so that a reader sees the old content or the new, never a part: staple's
// exports for nginx and HAProxy, a lab's index.txt and keys, and files the command line writes.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write writes data to path through a temporary file in the same directory, with mode perm before any byte
// is written, synced, and renamed over path; the directory is synced after, so that the rename survives a
// crash. A reader (nginx, openssl ocsp, another staple) sees the old file or the new one, and notices the
// change by the new inode. On error the temporary file is removed and path is left as it was.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("atomicfile: writing %s: %w", path, err)
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomicfile: writing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
