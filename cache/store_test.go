package cache

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"staple/atomicfile"
	"staple/certs"
	"staple/ocspwire"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testKey(issuer string, serial int64) certs.Key {
	return certs.KeyFor([]byte("spki of "+issuer), big.NewInt(serial))
}

func testResponse(thisUpdate time.Time, size int) Response {
	raw := bytes.Repeat([]byte{0x30}, size)
	return Response{
		Raw:        raw,
		Status:     ocspwire.Good,
		ProducedAt: thisUpdate,
		ThisUpdate: thisUpdate,
		NextUpdate: thisUpdate.Add(96 * time.Hour),
		Expires:    thisUpdate.Add(96 * time.Hour),
		RefreshAt:  thisUpdate.Add(48 * time.Hour),
		Fetched:    thisUpdate.Add(time.Second),
		URL:        "http://ocsp.test/",
		ETag:       `"abc"`,
	}
}

func openTest(t *testing.T, path string, o Options) *Store {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return t0 }
	}
	s, err := Open(path, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "cache.db")
	s := openTest(t, path, Options{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("file mode %v, want 0600", mode)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if mode := di.Mode().Perm(); mode != 0o700 {
		t.Errorf("directory mode %v, want 0700", mode)
	}
	if err := s.Check(); err != nil {
		t.Errorf("Check on a new file: %v", err)
	}
}

func TestOpenTightensMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	s := openTest(t, path, Options{})
	s.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	openTest(t, path, Options{})
	fi, _ := os.Stat(path)
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("file mode %v after reopening, want 0600", mode)
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	openTest(t, path, Options{})
	for _, ro := range []bool{false, true} {
		t.Run(fmt.Sprintf("readonly=%v", ro), func(t *testing.T) {
			s, err := Open(path, Options{ReadOnly: ro, LockTimeout: 20 * time.Millisecond})
			if err == nil {
				s.Close()
				t.Fatal("second Open succeeded while the file is held")
			}
			if !errors.Is(err, ErrLocked) {
				t.Errorf("error %v, want ErrLocked", err)
			}
		})
	}
}

func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing.db"), Options{ReadOnly: true}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only open of a missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("read-only open created the file")
	}

	path := filepath.Join(dir, "cache.db")
	key := testKey("ca", 7)
	w := openTest(t, path, Options{})
	if err := w.PutResponse(key, testResponse(t0, 100)); err != nil {
		t.Fatal(err)
	}
	w.Close()

	r := openTest(t, path, Options{ReadOnly: true})
	if _, err := r.Response(key); err != nil {
		t.Errorf("Response through a read-only store: %v", err)
	}
	if err := r.PutResponse(key, testResponse(t0.Add(time.Hour), 100)); !errors.Is(err, ErrReadOnly) {
		t.Errorf("PutResponse on a read-only store: %v, want ErrReadOnly", err)
	}
	// Two readers share the lock.
	openTest(t, path, Options{ReadOnly: true})
}

func TestOpenCorruptAndReset(t *testing.T) {
	tests := []struct {
		name    string
		content func(t *testing.T, path string)
	}{
		{"garbage", func(t *testing.T, path string) {
			os.WriteFile(path, bytes.Repeat([]byte("not a bbolt file "), 1000), 0o600)
		}},
		{"truncated", func(t *testing.T, path string) {
			os.WriteFile(path, []byte{1, 2, 3}, 0o600)
		}},
		{"mangled meta pages", func(t *testing.T, path string) {
			s := openTest(t, path, Options{})
			s.PutResponse(testKey("ca", 1), testResponse(t0, 500))
			s.Close()
			b, _ := os.ReadFile(path)
			for i := 16; i < 2*4096 && i < len(b); i += 7 {
				b[i] ^= 0x5a
			}
			os.WriteFile(path, b, 0o600)
		}},
		{"foreign bbolt file", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err })
			db.Close()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cache.db")
			tt.content(t, path)
			before, _ := os.ReadFile(path)
			_, err := Open(path, Options{LockTimeout: time.Second})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v, want ErrCorrupt", err)
			}
			s := openTest(t, path, Options{Reset: true})
			if s.ResetTo() == "" {
				t.Fatal("ResetTo is empty after a reset")
			}
			moved, err := os.ReadFile(s.ResetTo())
			if err != nil || !bytes.Equal(moved, before) {
				t.Errorf("the old file was not kept intact at %s: %v", s.ResetTo(), err)
			}
			if err := s.Responses(func(certs.Key, Response, error) error { return errors.New("not empty") }); err != nil {
				t.Errorf("the reset cache is not empty: %v", err)
			}
		})
	}
}

func TestResetKeepsEveryOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	var moved []string
	for i := range 3 {
		os.WriteFile(path, []byte{byte(i)}, 0o600)
		to, err := Reset(path, t0)
		if err != nil {
			t.Fatal(err)
		}
		moved = append(moved, to)
	}
	for i, p := range moved {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(b, []byte{byte(i)}) {
			t.Errorf("reset %d: %s holds %v, %v", i, p, b, err)
		}
	}
	if to, err := Reset(path, t0); to != "" || err != nil {
		t.Errorf("Reset of a missing file = %q, %v; want \"\", nil", to, err)
	}
}

func setSchema(t *testing.T, path string, v uint32) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error { return putSchemaVersion(tx.Bucket(bucketMeta), int(v)) })
	if err != nil {
		t.Fatal(err)
	}
}

func TestSchemaVersions(t *testing.T) {
	tests := []struct {
		name     string
		version  uint32
		readOnly bool
		want     error
	}{
		{"newer", SchemaVersion + 1, false, ErrNewerSchema},
		{"newer read-only", SchemaVersion + 1, true, ErrNewerSchema},
		{"older read-only", SchemaVersion - 1, true, ErrOldSchema},
		{"older without a migration", SchemaVersion - 1, false, ErrCorrupt},
		{"current", SchemaVersion, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cache.db")
			openTest(t, path, Options{}).Close()
			setSchema(t, path, tt.version)
			s, err := Open(path, Options{ReadOnly: tt.readOnly})
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, tt.want) && !(tt.want == nil && err == nil) {
				t.Errorf("Open: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestMigrationSteps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	openTest(t, path, Options{}).Close()
	setSchema(t, path, 0)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Schema 0 had no history bucket; the step from 0 fills a marker so the test sees it ran.
	db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketHistory) })
	var ran []int
	steps := []migration{{from: 0, run: func(tx *bolt.Tx) error {
		ran = append(ran, 0)
		return tx.Bucket(bucketMeta).Put([]byte("migrated"), []byte{1})
	}}}
	if err := db.Update(func(tx *bolt.Tx) error { return initialize(tx, steps, t0) }); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	db.View(func(tx *bolt.Tx) error {
		v, _ := schemaVersion(tx.Bucket(bucketMeta))
		if v != SchemaVersion {
			t.Errorf("schema %d after migrating, want %d", v, SchemaVersion)
		}
		if tx.Bucket(bucketHistory) == nil {
			t.Error("the history bucket was not created")
		}
		if tx.Bucket(bucketMeta).Get([]byte("migrated")) == nil {
			t.Error("the migration step's write is missing")
		}
		return nil
	})
	if len(ran) != 1 {
		t.Errorf("steps ran %v, want the step from 0 once", ran)
	}

	failing := []migration{{from: 0, run: func(*bolt.Tx) error { return errors.New("step failed") }}}
	db.Update(func(tx *bolt.Tx) error { return putSchemaVersion(tx.Bucket(bucketMeta), 0) })
	if err := db.Update(func(tx *bolt.Tx) error { return initialize(tx, failing, t0) }); err == nil {
		t.Error("a failing migration step did not fail initialize")
	}
	db.View(func(tx *bolt.Tx) error {
		if v, _ := schemaVersion(tx.Bucket(bucketMeta)); v != 0 {
			t.Errorf("schema %d after a failed migration, want 0 (rolled back)", v)
		}
		return nil
	})
}

func TestResponses(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	key := testKey("ca", 1)
	if _, err := s.Response(key); !errors.Is(err, ErrNotFound) {
		t.Errorf("Response of an absent key: %v, want ErrNotFound", err)
	}
	r1 := testResponse(t0, 1500)
	r1.Status = ocspwire.Revoked
	r1.RevokedAt = time.Unix(0, 0).UTC() // "never issued" uses the epoch: not the zero time
	r1.HasReason, r1.RevocationReason = true, 6
	if err := s.PutResponse(key, r1); err != nil {
		t.Fatal(err)
	}
	got, err := s.Response(key)
	if err != nil {
		t.Fatal(err)
	}
	assertResponse(t, got, r1)

	older := testResponse(t0.Add(-time.Hour), 10)
	if err := s.PutResponse(key, older); !errors.Is(err, ErrOlder) {
		t.Errorf("PutResponse of an older response: %v, want ErrOlder", err)
	}
	newer := testResponse(t0.Add(time.Hour), 20)
	if err := s.PutResponse(key, newer); err != nil {
		t.Errorf("PutResponse of a newer response: %v", err)
	}
	// At one thisUpdate, a revocation is the newer news and a good answer the older.
	revoked := testResponse(t0.Add(time.Hour), 21)
	revoked.Status = ocspwire.Revoked
	if err := s.PutResponse(key, revoked); err != nil {
		t.Errorf("PutResponse of a revocation stamped as the good answer held: %v", err)
	}
	if err := s.PutResponse(key, newer); !errors.Is(err, ErrOlder) {
		t.Errorf("PutResponse of a good answer stamped as the revocation held: %v, want ErrOlder", err)
	}
	if err := s.PutResponse(key, Response{}); err == nil {
		t.Error("PutResponse accepted an empty response")
	}
	if err := s.PutResponse(key, testResponse(t0.Add(2*time.Hour), MaxResponseSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("PutResponse of an oversized response: %v, want ErrTooLarge", err)
	}
	if err := s.DeleteResponse(key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Response(key); !errors.Is(err, ErrNotFound) {
		t.Errorf("Response after DeleteResponse: %v", err)
	}
}

func assertResponse(t *testing.T, got, want Response) {
	t.Helper()
	if !bytes.Equal(got.Raw, want.Raw) || got.Status != want.Status || got.URL != want.URL || got.ETag != want.ETag ||
		got.LastModified != want.LastModified || got.HasReason != want.HasReason || got.RevocationReason != want.RevocationReason {
		t.Errorf("response fields differ:\n got %+v\nwant %+v", got, want)
	}
	for _, p := range []struct {
		name      string
		got, want time.Time
	}{
		{"ProducedAt", got.ProducedAt, want.ProducedAt}, {"ThisUpdate", got.ThisUpdate, want.ThisUpdate},
		{"NextUpdate", got.NextUpdate, want.NextUpdate}, {"Expires", got.Expires, want.Expires},
		{"RefreshAt", got.RefreshAt, want.RefreshAt}, {"RevokedAt", got.RevokedAt, want.RevokedAt},
		{"Fetched", got.Fetched, want.Fetched},
	} {
		if !p.got.Equal(p.want) || p.got.IsZero() != p.want.IsZero() {
			t.Errorf("%s = %v, want %v", p.name, p.got, p.want)
		}
	}
}

func TestResponsesWalkSurvivesBadRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	s := openTest(t, path, Options{})
	good := []certs.Key{testKey("a", 1), testKey("a", 3), testKey("b", 2)}
	for _, k := range good {
		if err := s.PutResponse(k, testResponse(t0, 64)); err != nil {
			t.Fatal(err)
		}
	}
	bad := EncodeKey(testKey("a", 2))
	newer := EncodeKey(testKey("a", 4))
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketResponses)
		b.Put(bad, []byte{recordVersion, 0, 0})
		b.Put(newer, append([]byte{recordVersion + 1}, encodeResponse(testResponse(t0, 8))[1:]...))
		return b.Put([]byte("short key"), encodeResponse(testResponse(t0, 8)))
	})
	if err != nil {
		t.Fatal(err)
	}
	var seen []certs.Key
	var corrupt, newerSeen int
	err = s.Responses(func(k certs.Key, r Response, err error) error {
		switch {
		case errors.Is(err, ErrNewerRecord):
			newerSeen++
		case errors.Is(err, ErrCorruptRecord):
			corrupt++
		case err != nil:
			t.Errorf("unexpected error %v", err)
		default:
			seen = append(seen, k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(good) || corrupt != 2 || newerSeen != 1 {
		t.Errorf("walk saw %d good, %d corrupt, %d newer; want %d, 2, 1", len(seen), corrupt, newerSeen, len(good))
	}
}

func TestDiskKeysSortBySerial(t *testing.T) {
	serials := []int64{0, 1, 2, 255, 256, 65535, 1 << 40}
	var prev []byte
	for _, n := range serials {
		k := testKey("ca", n)
		dk := EncodeKey(k)
		if len(dk) != KeyLen {
			t.Fatalf("disk key of %d bytes", len(dk))
		}
		if prev != nil && bytes.Compare(prev, dk) >= 0 {
			t.Errorf("serial %d does not sort after its predecessor", n)
		}
		prev = dk
		back, err := DecodeKey(dk)
		if err != nil || back != k {
			t.Errorf("serial %d: DecodeKey = %v, %v; want %v", n, back, err, k)
		}
	}
	big20 := new(big.Int).SetBytes(bytes.Repeat([]byte{0xff}, 32))
	k := certs.KeyFor([]byte("spki"), big20)
	if back, err := DecodeKey(EncodeKey(k)); err != nil || back != k {
		t.Errorf("32-byte serial: %v, %v", back, err)
	}
}

func TestCerts(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	key := testKey("ca", 5)
	c := Cert{Leaf: []byte("leaf der"), Issuer: []byte("issuer der"), URLs: []string{"http://a/", "http://b/"},
		MustStaple: true, Added: t0}
	if err := s.PutCert(key, c); err != nil {
		t.Fatal(err)
	}
	got, err := s.Cert(key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Leaf, c.Leaf) || !bytes.Equal(got.Issuer, c.Issuer) || len(got.URLs) != 2 ||
		got.URLs[1] != "http://b/" || !got.MustStaple || !got.Added.Equal(t0) {
		t.Errorf("Cert = %+v, want %+v", got, c)
	}
	n := 0
	s.Certs(func(k certs.Key, _ Cert, err error) error {
		if err != nil || k != key {
			t.Errorf("Certs yielded %v, %v", k, err)
		}
		n++
		return nil
	})
	if n != 1 {
		t.Errorf("Certs yielded %d, want 1", n)
	}
	if err := s.PutCert(key, Cert{Leaf: []byte("x")}); err == nil {
		t.Error("PutCert accepted a record without an issuer")
	}
	s.PutResponse(key, testResponse(t0, 10))
	s.AddAttempt(key, Attempt{Time: t0, Reason: "ok"})
	if err := s.Remove(key); err != nil {
		t.Fatal(err)
	}
	_, errC := s.Cert(key)
	_, errR := s.Response(key)
	h, _ := s.History(key)
	if !errors.Is(errC, ErrNotFound) || !errors.Is(errR, ErrNotFound) || len(h) != 0 {
		t.Errorf("after Remove: cert %v, response %v, %d attempts", errC, errR, len(h))
	}
}

func TestHistoryKeepsTheLastAttempts(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	key := testKey("ca", 9)
	for i := range MaxHistory + 5 {
		a := Attempt{Time: t0.Add(time.Duration(i) * time.Minute), Reason: "timeout", Error: "deadline exceeded",
			URL: "http://ocsp.test/", Latency: time.Duration(i) * time.Millisecond}
		if i%2 == 0 {
			a = Attempt{Time: a.Time, Reason: "ok", Status: ocspwire.Revoked, URL: a.URL, Latency: a.Latency}
		}
		if err := s.AddAttempt(key, a); err != nil {
			t.Fatal(err)
		}
	}
	h, err := s.History(key)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != MaxHistory {
		t.Fatalf("%d attempts kept, want %d", len(h), MaxHistory)
	}
	if first := h[0]; !first.Time.Equal(t0.Add(5*time.Minute)) || first.Reason != "timeout" || first.Latency != 5*time.Millisecond {
		t.Errorf("oldest kept attempt %+v, want the 6th", first)
	}
	if last := h[MaxHistory-1]; !last.OK() || last.Status != ocspwire.Revoked {
		t.Errorf("newest attempt %+v, want ok/revoked", last)
	}
	long := Attempt{Time: t0, Reason: "other", Error: string(bytes.Repeat([]byte("é"), 2000))}
	if err := s.AddAttempt(key, long); err != nil {
		t.Errorf("AddAttempt with a long error: %v", err)
	}
	if h, err := s.History(key); err != nil || len(h[len(h)-1].Error) > maxShortText {
		t.Errorf("long error text not cut: %v", err)
	}
}

// putSession stores one session through PutSessions, the store's one way to write sessions.
func putSession(s *Store, id, data []byte, expires time.Time) error {
	return s.PutSessions(func(yield func(id, data []byte, expires time.Time) bool) { yield(id, data, expires) })
}

func TestSessions(t *testing.T) {
	now := t0
	s := openTest(t, filepath.Join(t.TempDir(), "cache.db"), Options{Now: func() time.Time { return now }})
	id, data := []byte("session-id"), []byte("session secret")
	if got, err := s.LookupSession(id, now); got != nil || err != nil {
		t.Errorf("LookupSession of an absent id: %q, %v", got, err)
	}
	if err := putSession(s, id, data, now.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LookupSession(id, now.Add(5*time.Minute-time.Second)); err != nil || !bytes.Equal(got, data) {
		t.Errorf("LookupSession before expiry = %q, %v", got, err)
	}
	if got, err := s.LookupSession(id, now.Add(5*time.Minute)); got != nil || err != nil {
		t.Errorf("LookupSession at expiry: %q, %v; want none", got, err)
	}
	putSession(s, []byte("long"), data, now.Add(time.Hour))
	putSession(s, []byte("short"), data, now.Add(time.Minute))
	n, err := s.PurgeSessions(now.Add(10 * time.Minute))
	if err != nil || n != 2 {
		t.Errorf("PurgeSessions = %d, %v; want 2 (session-id and short)", n, err)
	}
	if got, err := s.LookupSession([]byte("long"), now); got == nil || err != nil {
		t.Errorf("the live session was purged: %v", err)
	}
	if err := putSession(s, bytes.Repeat([]byte{1}, MaxSessionIDSize+1), data, now); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a session with a huge id: %v, want ErrTooLarge", err)
	}
	if err := putSession(s, nil, data, now); err == nil {
		t.Error("a session with an empty id was accepted")
	}
}

// TestPutSessions stores sessions in one batch, looks them up with LookupSession, and checks that a batch
// with a session it refuses stores none of them.
func TestPutSessions(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	batch := func(data ...[]byte) func(yield func(id, data []byte, expires time.Time) bool) {
		return func(yield func(id, data []byte, expires time.Time) bool) {
			for i, d := range data {
				if !yield([]byte{'a' + byte(i)}, d, t0.Add(time.Duration(i+1)*time.Minute)) {
					return
				}
			}
		}
	}
	if err := s.PutSessions(batch([]byte("one"), []byte("two"))); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LookupSession([]byte("b"), t0.Add(time.Minute)); err != nil || string(got) != "two" {
		t.Errorf("LookupSession = %q, %v; want the second session", got, err)
	}
	for _, id := range []string{"a", "c"} { // "a" expired at t0+1m; "c" was never stored
		if got, err := s.LookupSession([]byte(id), t0.Add(time.Minute)); got != nil || err != nil {
			t.Errorf("LookupSession(%q) = %q, %v; want nil, nil", id, got, err)
		}
	}
	huge := make([]byte, MaxSessionSize+1)
	if err := s.CheckSession([]byte("id"), huge); !errors.Is(err, ErrTooLarge) {
		t.Errorf("CheckSession of a huge session: %v, want ErrTooLarge", err)
	}
	if err := s.PutSessions(batch([]byte("new"), huge)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("PutSessions with a huge session: %v, want ErrTooLarge", err)
	}
	if got, _ := s.LookupSession([]byte("a"), t0); string(got) != "one" {
		t.Errorf("after a refused batch the first session is %q, want the one stored before", got)
	}
}

func TestTicketKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	s := openTest(t, path, Options{})
	if _, err := s.TicketKeys(); !errors.Is(err, ErrNotFound) {
		t.Errorf("TicketKeys of a new cache: %v, want ErrNotFound", err)
	}
	k := TicketKeys{Current: bytes.Repeat([]byte{1}, 48), Previous: bytes.Repeat([]byte{2}, 48), Rotated: t0}
	if err := s.PutTicketKeys(k); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTest(t, path, Options{ReadOnly: true})
	got, err := s.TicketKeys()
	if err != nil || !bytes.Equal(got.Current, k.Current) || !bytes.Equal(got.Previous, k.Previous) || !got.Rotated.Equal(t0) {
		t.Errorf("TicketKeys after reopening = %+v, %v", got, err)
	}
}

func TestClosedStore(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "cache.db"), Options{})
	s.Close()
	if _, err := s.Response(testKey("ca", 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Response after Close: %v, want ErrClosed", err)
	}
	if err := s.PutResponse(testKey("ca", 1), testResponse(t0, 4)); !errors.Is(err, ErrClosed) {
		t.Errorf("PutResponse after Close: %v, want ErrClosed", err)
	}
}

// TestOpenReadOnlyEmptyFile: an empty file (created, never written) is no cache yet for the CLI, not bbolt's
// "bad file descriptor" from trying to write a new database through a read-only descriptor.
func TestOpenReadOnlyEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("read-only Open of an empty file: %v, want fs.ErrNotExist naming it", err)
	}
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("read-write Open of an empty file: %v", err)
	}
	st.Close()
}

// TestOpenNotAFile: a FIFO where the cache file should be is refused at once, read-only or not, instead of
// blocking in bbolt's open until something writes to it.
func TestOpenNotAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skip(err)
	}
	for _, ro := range []bool{true, false} {
		if _, err := Open(path, Options{ReadOnly: ro}); !errors.Is(err, atomicfile.ErrNotRegular) {
			t.Errorf("Open(a FIFO, ReadOnly %v): %v, want atomicfile.ErrNotRegular", ro, err)
		}
	}
}
