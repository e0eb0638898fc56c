package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"staple/certs"
)

// validFile writes a cache file holding one record of each kind (the golden records of testdata/records) and
// returns its bytes.
func validFile(tb testing.TB) []byte {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "cache.db")
	st, err := Open(path, Options{Now: func() time.Time { return t0 }})
	if err != nil {
		tb.Fatal(err)
	}
	g := goldenRecords()
	resp, err1 := DecodeResponse(g["response-revoked.bin"])
	cert, err2 := DecodeCert(g["cert-muststaple.bin"])
	hist, err3 := DecodeHistory(g["history-two.bin"])
	keys, err4 := DecodeTicketKeys(g["ticket-keys.bin"])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		tb.Fatal(err)
	}
	spki := sha256.Sum256([]byte("issuer SPKI"))
	for i := range 3 {
		key := certs.KeyFor(spki[:], big.NewInt(int64(0x1001+i)))
		err := errors.Join(st.PutCert(key, cert), st.PutResponse(key, resp), st.PutTicketKeys(keys),
			putSession(st, []byte{byte(i), 2, 3, 4}, []byte("session state"), t0.Add(time.Hour)))
		for _, a := range hist {
			err = errors.Join(err, st.AddAttempt(key, a))
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// validFileNoInline is validFile with every bucket big enough to have pages of its own. bbolt keeps a small
// bucket inline, inside its parent's page, and mangled bytes there stop the process at a later garbage
// collection ("found pointer to free object", read-only opens too): by all signs bbolt reading a mangled
// inline bucket through pointers it computes past the copy it made of it on the heap. That is bbolt's, reported,
// not staple's, and with inline buckets the fuzzer finds nothing else.
func validFileNoInline(tb testing.TB) []byte {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "cache.db")
	if err := os.WriteFile(path, validFile(tb), 0o600); err != nil {
		tb.Fatal(err)
	}
	st, err := Open(path, Options{Now: func() time.Time { return t0 }})
	if err != nil {
		tb.Fatal(err)
	}
	err = st.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			b := tx.Bucket(name)
			for i := range 24 {
				if err := b.Put([]byte(fmt.Sprintf("~padding %02d", i)), bytes.Repeat([]byte{byte(i)}, 64)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil {
		err = st.db.View(func(tx *bolt.Tx) error {
			for _, name := range allBuckets {
				if n := tx.Bucket(name).Stats().InlineBucketN; n != 0 {
					return fmt.Errorf("bucket %s is still inline", name)
				}
			}
			return nil
		})
	}
	if err := errors.Join(err, st.Close()); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzOpenFile mangles a valid cache file (patch written at offset, modulo the file's size; the golden
// records and page-sized runs of garbage seed it) and opens it as serve and the CLI do, then reads
// everything through the exported API. bbolt panics on some corrupt pages: none of that may escape Open or a
// Store method, and every failure must be one of the package's errors (or the file's own I/O error).
func FuzzOpenFile(f *testing.F) {
	valid := validFileNoInline(f)
	records, err := os.ReadDir(filepath.Join("testdata", "records"))
	if err != nil {
		f.Fatal(err)
	}
	for i, e := range records {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("testdata", "records", e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint32(2*4096+100+i*512), b)
	}
	for _, page := range []uint32{0, 1, 2, 3, 4, 5, 6, 7} {
		f.Add(page*4096, bytes.Repeat([]byte{0xff}, 12))    // a page's id, flags and count
		f.Add(page*4096+16, bytes.Repeat([]byte{0xff}, 64)) // its first elements
		f.Add(page*4096+16, []byte{0, 0, 0, 0, 0, 0, 0, 0}) // an element's flags, position and sizes
	}
	f.Add(uint32(0), []byte{})
	f.Fuzz(func(t *testing.T, offset uint32, patch []byte) {
		b := bytes.Clone(valid)
		at := int(offset % uint32(len(b)))
		copy(b[at:], patch)
		if len(patch) > 0 && patch[0] == 0 && len(patch) == 1 {
			b = b[:at] // a one-byte patch of zero truncates there
		}
		// bbolt trusts a page header's overflow count: freeing a page that claims 2^32 overflow pages loops
		// that many times (Open hangs, its freelist grows without bound). That is bbolt's, reported, not
		// staple's to guard against (a run of old bytes at a page boundary is no header), so such inputs are
		// left out to let the fuzzer look for the rest.
		for p := 0; (p+1)*4096 <= len(b); p++ {
			if field := p*4096 + 12; field >= at+len(patch) || field+4 <= at {
				continue // the patch left this page's overflow count as the valid file has it
			}
			if overflow := binary.LittleEndian.Uint32(b[p*4096+12:]); overflow > uint32(len(b)/4096) {
				t.Skip("a page header claims more overflow pages than the file has: bbolt loops on it")
			}
		}
		path := filepath.Join(fuzzDir(t), "cache.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, ro := range []bool{true, false} {
			st, err := Open(path, Options{ReadOnly: ro, LockTimeout: time.Second, Now: func() time.Time { return t0 }})
			if err != nil {
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNewerSchema) && !errors.Is(err, ErrOldSchema) && !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Open (read-only %v): an error outside the contract: %v", ro, err)
				}
				continue
			}
			readAll(t, st)
			if err := st.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
	})
}

// fuzzDir is a directory for one input's file: on /dev/shm when there is one, where the fsyncs of bbolt's
// commits cost little (four times the executions here), else the test's temporary directory.
func fuzzDir(t *testing.T) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "staple-fuzz-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

// readAll reads every record through the exported API; errors are fine, panics and errors outside the
// package's contract are not.
func readAll(t *testing.T, st *Store) {
	t.Helper()
	ok := func(err error) {
		t.Helper()
		var pe *fs.PathError // a write bbolt could not make, as on a full disk (a mangled page id can ask for EFBIG)
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrCorruptRecord) && !errors.Is(err, ErrNewerRecord) &&
			!errors.Is(err, ErrNotFound) && !errors.Is(err, ErrReadOnly) && !errors.Is(err, ErrTooLarge) && !errors.As(err, &pe) {
			t.Fatalf("an error outside the contract: %v", err)
		}
	}
	var keys []certs.Key
	ok(st.Certs(func(key certs.Key, _ Cert, _ error) error { keys = append(keys, key); return nil }))
	ok(st.Responses(func(key certs.Key, _ Response, _ error) error { keys = append(keys, key); return nil }))
	for _, k := range keys {
		_, err := st.History(k)
		ok(err)
		_, err = st.Cert(k)
		ok(err)
		_, err = st.Response(k)
		ok(err)
	}
	_, err := st.TicketKeys()
	ok(err)
	for i := range 3 {
		_, err := st.LookupSession([]byte{byte(i), 2, 3, 4}, t0)
		ok(err)
	}
	if !st.ReadOnly() {
		_, err := st.PurgeSessions(t0.Add(2 * time.Hour))
		ok(err)
	}
	// Not st.Check: bbolt's Tx.Check walks a mangled file on a goroutine of its own and can read past the
	// mapping (SIGSEGV, which no recover catches); only tests call it.
}

// TestOpenTruncatedFile: a file cut short after its two meta pages (a partial copy) is ErrCorrupt for both
// kinds of Open, not a SIGBUS that kills the process when bbolt reads its mapping past the end of the file.
func TestOpenTruncatedFile(t *testing.T) {
	valid := validFile(t)
	for _, size := range []int{2*4096 + 69, 3 * 4096, 4*4096 + 1} {
		for _, ro := range []bool{true, false} {
			t.Run(fmt.Sprintf("%d bytes, read-only %v", size, ro), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "cache.db")
				if err := os.WriteFile(path, valid[:size], 0o600); err != nil {
					t.Fatal(err)
				}
				st, err := Open(path, Options{ReadOnly: ro})
				if err == nil {
					st.Close()
				}
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
					t.Errorf("Open: %v, want ErrCorrupt naming the file", err)
				}
			})
		}
	}
}

// TestOpenBucketThatIsAValue: a mangled file in which one of staple's bucket names leads to a plain value
// (found by FuzzOpenFile) is ErrCorrupt, so that serve says to run with --reset-cache, and --reset-cache moves
// it aside, rather than an error from bbolt that neither names the remedy nor lets the reset happen.
func TestOpenBucketThatIsAValue(t *testing.T) {
	b := validFile(t)
	copy(b[16460:], "00\x00\x000") // the flags of a leaf element: a bucket becomes a value
	path := filepath.Join(t.TempDir(), "cache.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "--reset-cache") {
		t.Fatalf("Open: %v, want ErrCorrupt with the remedy", err)
	}
	st, err := Open(path, Options{Reset: true})
	if err != nil {
		t.Fatalf("Open with Reset: %v", err)
	}
	defer st.Close()
	if moved, err := os.ReadFile(st.ResetTo()); err != nil || !bytes.Equal(moved, b) {
		t.Errorf("the file moved aside to %q: %v", st.ResetTo(), err)
	}
}

// TestOpenMangledPageID: page ids mangled so that bbolt writes past any file size (EFBIG) or at an offset
// that overflows (found by FuzzOpenFile) make Open fail with ErrCorrupt and the remedy, not a bare write error.
func TestOpenMangledPageID(t *testing.T) {
	valid := validFile(t)
	for _, tt := range []struct {
		at    int
		patch string
	}{
		{20498, "000000\xff\xff\xff\xff"},
		{20498, "0000000000008"},
	} {
		t.Run(fmt.Sprintf("%d %q", tt.at, tt.patch), func(t *testing.T) {
			b := bytes.Clone(valid)
			copy(b[tt.at:], tt.patch)
			path := filepath.Join(t.TempDir(), "cache.db")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := Open(path, Options{Now: func() time.Time { return t0 }})
			if err == nil {
				st.Close()
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "--reset-cache") {
				t.Errorf("Open: %v, want ErrCorrupt with the remedy", err)
			}
		})
	}
}

// TestRecordThatIsABucket: a mangled file in which the key of a record leads to a nested bucket (found by
// FuzzOpenFile: a leaf element's flags turned into a bucket's). Reads see no record, PurgeSessions skips it and
// purges the rest, and a write or delete of that key is ErrCorrupt with the remedy, not bbolt's bare
// "incompatible value" that names neither the file nor what to do.
func TestRecordThatIsABucket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	if err := os.WriteFile(path, validFile(t), 0o600); err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256([]byte("issuer SPKI"))
	key := certs.KeyFor(spki[:], big.NewInt(0x1001))
	session := []byte{0, 2, 3, 4}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, r := range []struct{ bucket, key []byte }{
			{bucketCerts, EncodeKey(key)}, {bucketResponses, EncodeKey(key)}, {bucketHistory, EncodeKey(key)},
			{bucketSessions, session}, {bucketTicketKeys, ticketKeysKey},
		} {
			b := tx.Bucket(r.bucket)
			if err := b.Delete(r.key); err != nil {
				return err
			}
			if _, err := b.CreateBucket(r.key); err != nil {
				return err
			}
		}
		return nil
	})
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}

	st, err := Open(path, Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Response(key); !errors.Is(err, ErrNotFound) {
		t.Errorf("Response: %v, want ErrNotFound", err)
	}
	if got, err := st.LookupSession(session, t0); got != nil || err != nil {
		t.Errorf("LookupSession: %q, %v; want none", got, err)
	}
	if n, err := st.PurgeSessions(t0.Add(2 * time.Hour)); err != nil || n != 2 {
		t.Errorf("PurgeSessions: %d, %v; want the 2 expired sessions purged", n, err)
	}
	g := goldenRecords()
	resp, err1 := DecodeResponse(g["response-revoked.bin"])
	keys, err2 := DecodeTicketKeys(g["ticket-keys.bin"])
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	for name, write := range map[string]func() error{
		"PutResponse":   func() error { return st.PutResponse(key, resp) },
		"PutFetched":    func() error { return st.PutFetched(key, resp, Attempt{Time: t0, Reason: "ok"}) },
		"AddAttempt":    func() error { return st.AddAttempt(key, Attempt{Time: t0, Reason: "ok"}) },
		"Remove":        func() error { return st.Remove(key) },
		"RemoveAll":     func() error { return st.RemoveAll([]certs.Key{key}) },
		"PutEntries":    func() error { return st.PutEntries([]Entry{{Key: key, Response: &resp}}) },
		"PutSessions":   func() error { return putSession(st, session, []byte("state"), t0.Add(time.Hour)) },
		"PutTicketKeys": func() error { return st.PutTicketKeys(keys) },
	} {
		if err := write(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "--reset-cache") {
			t.Errorf("%s: %v, want ErrCorrupt naming the file and the remedy", name, err)
		}
	}
}
