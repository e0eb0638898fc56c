//go:build interop

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"staple/cache"
	"staple/certs"
	"staple/e2e/harness"
)

// The cache file on a bad day: unreadable, corrupt, on a full disk. serve must say so in one line that
// names the file (and what to do), move a corrupt file aside only when told to, and keep stapling from
// memory when writes fail.

// TestInteropDiskUnreadable: a cache file serve cannot open, and a data directory it cannot enter, stop serve
// with exit 1 and one line naming the path. Root reads a chmod 000 file, so as root these cases run serve as
// the unprivileged user nobody; an immutable file (chattr +i) stops even root from opening it for writing.
func TestInteropDiskUnreadable(t *testing.T) {
	f := newLabFixture(t, "@every 30s")
	makeCache(t, f)
	base := filepath.Dir(f.Dir)

	t.Run("cache file chmod 000", func(t *testing.T) {
		row := outcome(t, "disk: cache file chmod 000", "Linux permissions")
		run := asUnprivileged(t, f, base)
		path := filepath.Join(f.DataDir, "cache.db")
		if err := os.Chmod(path, 0); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(path, 0o600)
		line := run(t, "serve", "--config", f.Config)
		wantOneLine(t, line, path, "permission denied")
		row.Note("%s", line)
	})
	t.Run("data directory chmod 000", func(t *testing.T) {
		row := outcome(t, "disk: data directory chmod 000", "Linux permissions")
		run := asUnprivileged(t, f, base)
		if err := os.Chmod(f.DataDir, 0); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(f.DataDir, 0o700)
		line := run(t, "serve", "--config", f.Config)
		wantOneLine(t, line, f.DataDir, "permission denied")
		row.Note("%s", line)
	})
	t.Run("cache file immutable", func(t *testing.T) {
		row := outcome(t, "disk: cache file immutable (chattr +i)", "e2fsprogs chattr")
		harness.RequireTool(t, "chattr")
		path := filepath.Join(f.DataDir, "cache.db")
		if out, err := exec.Command("chattr", "+i", path).CombinedOutput(); err != nil {
			t.Skipf("chattr +i is not possible here (%v: %s)", err, bytes.TrimSpace(out))
		}
		defer exec.Command("chattr", "-i", path).Run()
		_, errOut, code := staple(t, "serve", "--config", f.Config)
		if code != 1 {
			t.Fatalf("exit %d, want 1; stderr:\n%s", code, errOut)
		}
		line := lastLine(t, errOut)
		wantOneLine(t, line, path, "operation not permitted")
		row.Note("%s", line)
	})
}

// asUnprivileged returns a function that runs staple and returns the last line of its stderr after checking
// that it exited 1 with that one line. As root, it runs a copy of the binary as nobody, with the fixture
// handed over to nobody; otherwise it runs the binary as the current user.
func asUnprivileged(t *testing.T, f *labFixture, base string) func(t *testing.T, args ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		return func(t *testing.T, args ...string) string {
			_, errOut, code := staple(t, args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, errOut)
			}
			return lastLine(t, errOut)
		}
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("running as root with no user nobody to drop to (chmod does not stop root): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	bin := filepath.Join(base, "staple")
	if _, err := os.Stat(bin); err != nil {
		b, err := os.ReadFile(binary)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// nobody must reach the fixture: the test's directories are 0700 and root's.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err = filepath.Walk(base, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
	return func(t *testing.T, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), harness.Timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		var errb bytes.Buffer
		cmd.Stderr = &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("staple %s as nobody: %v, want exit 1; stderr:\n%s", strings.Join(args, " "), err, errb.String())
		}
		return lastLine(t, errb.String())
	}
}

// lastLine returns the one line of stderr that is not a JSON log line, and fails unless there is exactly one
// and no stack trace.
func lastLine(t *testing.T, stderr string) string {
	t.Helper()
	var plain []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if json.Valid([]byte(l)) {
			continue
		}
		plain = append(plain, l)
	}
	if len(plain) != 1 {
		t.Fatalf("want exactly one line besides the log, got %d:\n%s", len(plain), stderr)
	}
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
		t.Fatalf("a stack trace:\n%s", stderr)
	}
	return plain[0]
}

func wantOneLine(t *testing.T, line string, wants ...string) {
	t.Helper()
	if !strings.HasPrefix(line, "staple: ") {
		t.Errorf("the line %q does not start with 'staple: '", line)
	}
	for _, w := range wants {
		if !strings.Contains(line, w) {
			t.Errorf("the line %q does not say %q", line, w)
		}
	}
}

// makeCache runs serve against the lab's responder until it staples, and stops it: the data directory then
// holds a cache file with the certificate and its response.
func makeCache(t *testing.T, f *labFixture) {
	t.Helper()
	resp := labResponder(t, f, time.Hour)
	srv := harness.Start(t, binary, "serve", "--config", f.Config)
	srv.WaitLog("staple serving", harness.Timeout)
	newStapleClient(t, f, "site.test").waitGoodStaple(t, f.TLSAddr, 20*time.Second)
	srv.Stop()
	resp.Kill()
}

// TestInteropDiskCorrupt: serve refuses a corrupt cache file with exit 1 and one line that names it and
// says to run with --reset-cache; with --reset-cache it moves the file aside (keeping its bytes), starts
// with an empty cache and staples. An empty file is a new cache; a file with one meta page destroyed is
// still opened (bbolt keeps two).
// A flipped bit inside a stored response is caught at start: the response is not stapled, not even while
// the responder is down, and a fresh one is fetched once it is back.
func TestInteropDiskCorrupt(t *testing.T) {
	f := newLabFixture(t, "@every 1s")
	makeCache(t, f)
	path := filepath.Join(f.DataDir, "cache.db")
	valid, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const pageSize = 4096 // bbolt's page on Linux amd64: meta pages 0 and 1, the freelist and data after
	garbage := func(b []byte, from, to int) []byte {
		b = bytes.Clone(b)
		rand.Read(b[from:min(to, len(b))])
		return b
	}
	refused := []struct {
		name    string
		content []byte
	}{
		{"random bytes", garbage(make([]byte, 64<<10), 0, 64<<10)},
		{"both meta pages garbage", garbage(valid, 0, 2*pageSize)},
		{"freelist and data pages garbage", garbage(valid, 2*pageSize, len(valid))},
		{"truncated to 5,000 bytes", valid[:5000]},
		{"truncated after its meta pages", valid[:2*pageSize+808]}, // bbolt's mapping read past the end: SIGBUS
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			row := outcome(t, "disk: corrupt cache file, "+tt.name, "bbolt")
			if err := os.WriteFile(path, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, errOut, code := staple(t, "serve", "--config", f.Config)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, errOut)
			}
			line := lastLine(t, errOut)
			wantOneLine(t, line, path, "--reset-cache")
			if got, _ := os.ReadFile(path); !bytes.Equal(got, tt.content) {
				t.Fatal("serve without --reset-cache changed the corrupt file")
			}

			resp := labResponder(t, f, time.Hour)
			srv := harness.Start(t, binary, "serve", "--config", f.Config, "--reset-cache")
			moved := srv.WaitLog("the corrupt cache file was moved aside; starting with an empty cache", harness.Timeout)
			srv.WaitLog("staple serving", harness.Timeout)
			to, _ := moved["moved_to"].(string)
			kept, err := os.ReadFile(to)
			if err != nil || !bytes.Equal(kept, tt.content) {
				t.Errorf("the file moved aside (%q) does not hold the corrupt bytes: %v", to, err)
			}
			if st, err := os.Stat(to); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("the file moved aside: mode %v (%v), want 0600", st.Mode().Perm(), err)
			}
			newStapleClient(t, f, "site.test").waitGoodStaple(t, f.TLSAddr, 20*time.Second)
			srv.Stop()
			resp.Kill()
			os.Remove(to)
			row.Note("refused: %q; --reset-cache moved it to %s and stapled", strings.TrimPrefix(line, "staple: "), filepath.Base(to))
		})
	}

	t.Run("empty file", func(t *testing.T) {
		row := outcome(t, "disk: empty cache file (0 bytes)", "bbolt")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		// bbolt makes a new database in an empty file: what a crash right after creating it leaves.
		makeCache(t, f)
		row.Note("taken as a new cache: started, fetched, stapled")
	})

	t.Run("one meta page garbage", func(t *testing.T) {
		row := outcome(t, "disk: cache file with one meta page destroyed", "bbolt")
		if err := os.WriteFile(path, garbage(valid, 0, pageSize), 0o600); err != nil {
			t.Fatal(err)
		}
		// The responder is down: the staple can only come from the file.
		srv := harness.Start(t, binary, "serve", "--config", f.Config)
		srv.WaitLog("staple serving", harness.Timeout)
		newStapleClient(t, f, "site.test").waitGoodStaple(t, f.TLSAddr, 5*time.Second)
		srv.Stop()
		row.Note("opened from the other meta page; stapled from the file with the responder down")
	})

	t.Run("a flipped bit in a stored response", func(t *testing.T) {
		row := outcome(t, "disk: a flipped bit in a stored response", "bbolt, x/crypto/ocsp")
		if err := os.WriteFile(path, valid, 0o600); err != nil {
			t.Fatal(err)
		}
		der := storedResponse(t, path)
		i := bytes.Index(valid, der)
		if i < 0 || bytes.Count(valid, der) != 1 {
			t.Fatalf("the stored response is not in the file once (%d)", bytes.Count(valid, der))
		}
		flipped := bytes.Clone(valid)
		flipped[i+len(der)-3] ^= 0x01 // in a signature
		if err := os.WriteFile(path, flipped, 0o600); err != nil {
			t.Fatal(err)
		}
		srv := harness.Start(t, binary, "serve", "--config", f.Config)
		srv.WaitLog("stored response skipped", harness.Timeout) // its record's checksum does not match
		srv.WaitLog("staple serving", harness.Timeout)
		client := newStapleClient(t, f, "site.test")
		// The responder is down: no staple, and above all not the corrupt one.
		for range 20 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r, err := client.handshake(ctx, f.TLSAddr, nil)
			cancel()
			switch {
			case err != nil:
				t.Fatal(err)
			case len(r.state.OCSPResponse) > 0:
				t.Fatalf("a staple was sent while the only response held is corrupt (verifies: %v)", r.stapleErr)
			}
		}
		resp := labResponder(t, f, time.Hour)
		mustStaple(t, "cache", "refresh", "--data-dir", f.DataDir)
		client.waitGoodStaple(t, f.TLSAddr, 20*time.Second)
		srv.Stop()
		resp.Kill()
		row.Note("the response was refused at start (no staple while the responder was down), fetched anew after")
	})
}

// storedResponse returns the DER of the one response in a cache file, read with the cache package.
func storedResponse(t *testing.T, path string) []byte {
	t.Helper()
	st, err := cache.Open(path, cache.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var der []byte
	err = st.Responses(func(_ certs.Key, r cache.Response, err error) error {
		if err != nil {
			return err
		}
		der = r.Raw
		return nil
	})
	if err != nil || der == nil {
		t.Fatalf("no response in %s: %v", path, err)
	}
	return der
}

// TestInteropDiskFull mounts a 2 MiB tmpfs as the data directory and fills it while serve runs: serve must
// keep stapling, including the newer responses fetched while its writes fail, report unhealthy on the admin
// socket (/healthz) and count the failed writes; once space returns it must become healthy again and have
// the newest response on disk.
func TestInteropDiskFull(t *testing.T) {
	row := outcome(t, "disk: full data directory (2 MiB tmpfs)", "Linux tmpfs")
	f := newLabFixture(t, "@every 1s")
	if err := os.MkdirAll(f.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", f.DataDir, "tmpfs", 0, "size=2m,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): the full disk needs root or CAP_SYS_ADMIN", err)
	}
	// Registered before the processes start, so that it runs after their cleanup has killed them.
	t.Cleanup(func() { syscall.Unmount(f.DataDir, syscall.MNT_DETACH) })

	const validity = 10 * time.Second // a new response every 5 s
	labResponder(t, f, validity)
	metricsAddr := "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))
	writeServeConfig(t, f, serveConfig{sweep: "@every 1s", top: []string{fmt.Sprintf("metrics_listen = %q", metricsAddr)}})
	srv := harness.Start(t, binary, "serve", "--config", f.Config)
	srv.WaitLog("staple serving", harness.Timeout)
	client := newStapleClient(t, f, "site.test")
	first := client.waitGoodStaple(t, f.TLSAddr, 20*time.Second)
	socket := filepath.Join(f.DataDir, "admin.sock")
	harness.WaitFor(t, 10*time.Second, func() bool { code, _ := adminGet(t, socket, "/healthz"); return code == 200 }, "healthy before the disk fills")

	filler := filepath.Join(f.DataDir, "filler")
	filled := fill(t, filler)
	t.Logf("filled the data directory with %s", mib(filled))

	// Newer responses keep coming (the responder re-signs every 5 s); each must be stapled though the disk
	// refuses it. Every handshake meanwhile carries a valid staple.
	var handshakes, newer int
	newest := first
	unhealthy := ""
	deadline := time.Now().Add(40 * time.Second)
	for newer < 2 || unhealthy == "" {
		if time.Now().After(deadline) {
			t.Fatalf("in 40 s with a full disk: %d newer staples, healthz %q", newer, unhealthy)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := client.handshake(ctx, f.TLSAddr, nil)
		cancel()
		switch {
		case err != nil:
			t.Fatal(err)
		case r.stapleErr != nil:
			t.Fatalf("with a full disk: %v", r.stapleErr)
		case r.staple == nil:
			t.Fatal("with a full disk: a handshake without a staple")
		}
		handshakes++
		if r.staple.ThisUpdate.After(newest.ThisUpdate) {
			newest = r.staple
			newer++
		}
		if code, body := adminGet(t, socket, "/healthz"); code == 503 {
			unhealthy = strings.TrimSpace(body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	failures, err := scrapeMetric(metricsAddr, "staple_persist_failures_total")
	if err != nil || failures == 0 {
		t.Errorf("staple_persist_failures_total = %v (%v), want failed writes counted", failures, err)
	}
	if !strings.Contains(unhealthy, "not yet stored") {
		t.Errorf("healthz with a full disk: %q, want it to say responses are not yet stored", unhealthy)
	}
	t.Logf("full disk: %d handshakes all stapled, %d newer responses stapled; healthz %q; %v failed writes", handshakes, newer, unhealthy, failures)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	var recovered time.Duration
	began := time.Now()
	harness.WaitFor(t, 30*time.Second, func() bool { code, _ := adminGet(t, socket, "/healthz"); return code == 200 }, "healthy once space returned")
	recovered = time.Since(began)
	client.waitGoodStaple(t, f.TLSAddr, 5*time.Second)
	alive(t, srv)
	noPanic(t, srv)
	srv.Stop()

	// The response served while the disk was full reached it after.
	st, err := cache.Open(filepath.Join(f.DataDir, "cache.db"), cache.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var stored time.Time
	st.Responses(func(_ certs.Key, r cache.Response, err error) error {
		if err == nil {
			stored = r.ThisUpdate
		}
		return nil
	})
	if stored.Before(newest.ThisUpdate) {
		t.Errorf("on disk after recovery: thisUpdate %v, older than the %v served while the disk was full", stored, newest.ThisUpdate)
	}
	row.Note("%d handshakes all stapled while full, %d newer responses served from memory, %v failed writes, healthz 503 (%q), healthy %v after space returned",
		handshakes, newer, failures, unhealthy, recovered.Round(100*time.Millisecond))
}

// fill writes to path until the filesystem is full and returns how much it wrote.
func fill(t *testing.T, path string) int64 {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var n int64
	for _, size := range []int{64 << 10, 4 << 10, 512, 1} {
		chunk := make([]byte, size)
		for {
			w, err := fh.Write(chunk)
			n += int64(w)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil || st.Bavail != 0 {
		t.Fatalf("after filling: %d blocks free (%v)", st.Bavail, err)
	}
	return n
}
