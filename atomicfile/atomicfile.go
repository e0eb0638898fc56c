// Package atomicfile owns staple's files read or written whole, whatever is at the path. Read reads outside
// input (certificates, keys, the configuration, a lab's index.txt, a response to import) with a bound, so that
// a FIFO or a device without end never fills memory. Write writes so that a reader sees the old content or
// the new, never a part (staple's exports for nginx and HAProxy, a lab's index.txt and keys, files the command
// line writes), and replaces only a regular file: a FIFO or a character device is written to as a stream.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Errors of Read and Write, for errors.Is.
var (
	ErrTooLarge   = errors.New("atomicfile: too large")
	ErrNotRegular = errors.New("atomicfile: neither a regular file nor a stream")
)

// Read returns the content of the file at path: a regular file, or a stream (a FIFO, a character device,
// /dev/stdin) read to its end. More than limit bytes is ErrTooLarge, found without reading more than limit+1
// bytes of a stream; a directory, a socket or a block device is ErrNotRegular. A FIFO without a writer blocks
// in the open, as a shell's redirection does: a command reading it ends on a signal all the same (package cli).
func Read(path string, limit int64) ([]byte, error) {
	if st, err := os.Stat(path); err == nil && !readable(st.Mode()) {
		return nil, fmt.Errorf("%w: %s is %s", ErrNotRegular, path, Kind(st.Mode()))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("atomicfile: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than %d", ErrTooLarge, path, st.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("atomicfile: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s holds more than %d bytes", ErrTooLarge, path, limit)
	}
	return data, nil
}

// readable reports whether Read reads what has mode m: a regular file or a stream.
func readable(m fs.FileMode) bool { return m.IsRegular() || stream(m) }

// stream reports whether m is a FIFO or a character device, which are read and written as streams.
func stream(m fs.FileMode) bool {
	return m&fs.ModeNamedPipe != 0 || m&fs.ModeCharDevice != 0
}

// Kind names the type of file of m for an error: "a regular file", "a FIFO", "a directory", …
func Kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file"
}

// Write writes data to path. What is at path decides how:
//
//   - nothing, or a regular file: through a temporary file in the same directory, with mode perm before any
//     byte is written, synced, and renamed over path; the directory is synced after, so that the rename
//     survives a crash. A reader (nginx, openssl ocsp, another staple) sees the old file or the new one, and
//     notices the change by the new inode. A symbolic link to a regular file stays: the file it names is
//     replaced. On error the temporary file is removed and path is left as it was.
//   - a FIFO or a character device (/dev/null, a terminal): data is written to it as a stream, and it stays
//     what it was. A FIFO without a reader blocks in the open, as a shell's redirection does.
//   - anything else (a directory, a socket, a block device): ErrNotRegular, and nothing is written.
func Write(path string, data []byte, perm os.FileMode) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("atomicfile: writing %s: %w", path, err)
	case stream(st.Mode()):
		return writeStream(path, data)
	case !st.Mode().IsRegular():
		return fmt.Errorf("%w: %s is %s", ErrNotRegular, path, Kind(st.Mode()))
	default:
		if path, err = filepath.EvalSymlinks(path); err != nil {
			return fmt.Errorf("atomicfile: writing %s: %w", path, err)
		}
	}
	return replace(path, data, perm)
}

func writeStream(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err == nil {
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("atomicfile: writing %s: %w", path, err)
	}
	return nil
}

func replace(path string, data []byte, perm os.FileMode) error {
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
