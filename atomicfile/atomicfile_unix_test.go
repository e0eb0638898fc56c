//go:build unix

package atomicfile

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWriteByKind is the rule of Write over what is at the path: a regular file is replaced (a new inode), a
// symbolic link keeps naming the file it named, a FIFO and a character device are written to and stay what
// they were, and a directory or a socket is refused with nothing written.
func TestWriteByKind(t *testing.T) {
	dir := t.TempDir()
	t.Run("regular file", func(t *testing.T) {
		path := filepath.Join(dir, "regular")
		os.WriteFile(path, []byte("old"), 0o644)
		before, _ := os.Stat(path)
		if err := Write(path, []byte("new"), 0o644); err != nil {
			t.Fatal(err)
		}
		after, _ := os.Stat(path)
		if got, _ := os.ReadFile(path); string(got) != "new" || os.SameFile(before, after) {
			t.Errorf("content %q, same inode %v: want new content in a new inode", got, os.SameFile(before, after))
		}
	})
	t.Run("symbolic link", func(t *testing.T) {
		target, link := filepath.Join(dir, "target"), filepath.Join(dir, "link")
		os.WriteFile(target, []byte("old"), 0o644)
		os.Symlink(target, link)
		if err := Write(link, []byte("new"), 0o644); err != nil {
			t.Fatal(err)
		}
		if st, _ := os.Lstat(link); st.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("the link became %v", st.Mode())
		}
		if got, _ := os.ReadFile(target); string(got) != "new" {
			t.Errorf("the target holds %q, want new", got)
		}
	})
	t.Run("FIFO", func(t *testing.T) {
		path := mkfifo(t, dir, "fifo-out")
		got := make(chan []byte)
		go func() {
			b, _ := os.ReadFile(path) // the reader the write waits for
			got <- b
		}()
		if err := Write(path, []byte("streamed"), 0o644); err != nil {
			t.Fatal(err)
		}
		if b := <-got; string(b) != "streamed" {
			t.Errorf("the reader got %q", b)
		}
		if st, _ := os.Lstat(path); st.Mode()&fs.ModeNamedPipe == 0 {
			t.Errorf("the FIFO became %v", st.Mode())
		}
	})
	t.Run("character device", func(t *testing.T) {
		path := mknull(t, dir)
		if err := Write(path, []byte("discarded"), 0o644); err != nil {
			t.Fatal(err)
		}
		if st, _ := os.Lstat(path); st.Mode()&fs.ModeCharDevice == 0 {
			t.Errorf("the device became %v", st.Mode())
		}
	})
	t.Run("directory and socket", func(t *testing.T) {
		sock := filepath.Join(dir, "sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		for _, path := range []string{t.TempDir(), sock} {
			if err := Write(path, []byte("x"), 0o644); !errors.Is(err, ErrNotRegular) {
				t.Errorf("Write(%s): %v, want ErrNotRegular", path, err)
			}
		}
		if st, _ := os.Lstat(sock); st.Mode()&fs.ModeSocket == 0 {
			t.Errorf("the socket became %v", st.Mode())
		}
	})
	if entries, _ := filepath.Glob(filepath.Join(dir, ".*.tmp-*")); len(entries) != 0 {
		t.Errorf("temporary files left: %v", entries)
	}
}

// TestReadBounded reads every kind of input with a bound: a regular file over the limit, a device without
// end, and a FIFO whose writer never stops all fail with ErrTooLarge having read at most limit+1 bytes; a FIFO
// read to its end and a file within the limit are read whole; a directory is ErrNotRegular.
func TestReadBounded(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	os.WriteFile(small, []byte("hello"), 0o644)
	if got, err := Read(small, 5); err != nil || string(got) != "hello" {
		t.Errorf("Read(small, 5) = %q, %v", got, err)
	}
	if _, err := Read(small, 4); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Read(small, 4): %v, want ErrTooLarge", err)
	}
	if _, err := Read("/dev/zero", 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Read(/dev/zero): %v, want ErrTooLarge", err)
	}
	if _, err := Read(dir, 1<<20); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Read(a directory): %v, want ErrNotRegular", err)
	}
	if _, err := Read(filepath.Join(dir, "missing"), 1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read(missing): %v, want ErrNotExist", err)
	}

	endless := mkfifo(t, dir, "endless")
	go func() {
		f, err := os.OpenFile(endless, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		block := make([]byte, 64<<10)
		for {
			if _, err := f.Write(block); err != nil {
				return // the reader closed its end: EPIPE
			}
		}
	}()
	if _, err := Read(endless, 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Read(a FIFO fed without end): %v, want ErrTooLarge", err)
	}

	finite := mkfifo(t, dir, "finite")
	go func() {
		if f, err := os.OpenFile(finite, os.O_WRONLY, 0); err == nil {
			f.Write([]byte("through a FIFO"))
			f.Close()
		}
	}()
	if got, err := Read(finite, 1<<20); err != nil || string(got) != "through a FIFO" {
		t.Errorf("Read(a FIFO) = %q, %v", got, err)
	}
}

func mkfifo(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mknull makes a character device like /dev/null (1, 3) in dir; a test that needs one skips without the
// privilege to make it.
func mknull(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "null")
	if err := syscall.Mknod(path, syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Skipf("cannot make a device node: %v", err)
	}
	return path
}
