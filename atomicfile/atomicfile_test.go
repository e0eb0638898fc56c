package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.der")
	for _, tt := range []struct {
		data []byte
		perm os.FileMode
	}{{[]byte("first"), 0o644}, {[]byte("second, longer"), 0o600}} {
		if err := Write(path, tt.data, tt.perm); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != string(tt.data) {
			t.Errorf("content %q, %v; want %q", got, err, tt.data)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != tt.perm {
			t.Errorf("mode %v, want %v", fi.Mode().Perm(), tt.perm)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the directory, want only the one written", len(entries))
	}
}

func TestWriteFailureLeavesTheFile(t *testing.T) {
	dir := t.TempDir()
	if err := Write(filepath.Join(dir, "missing", "x"), []byte("x"), 0o644); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a write into a missing directory: %v, want ErrNotExist", err)
	}
	path := filepath.Join(dir, "kept")
	os.WriteFile(path, []byte("old"), 0o644)
	if err := Write(path+"/", []byte("new"), 0o644); err == nil {
		t.Error("a write to a path with a trailing slash succeeded")
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("the old file became %q", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files left, want the old one alone", len(entries))
	}
}
