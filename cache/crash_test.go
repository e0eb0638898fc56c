package cache

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const crashChildEnv = "STAPLE_CACHE_CRASH_CHILD"

// TestCrashSafety kills a writer with SIGKILL 20 times in the middle of its writes. The writer is this test
// binary re-executed (TestCrashChild); it prints "ack N" after each write that returned success. After every
// kill the file must open, pass bbolt's consistency check, and hold every acknowledged write of every round.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary 20 times")
	}
	path := filepath.Join(t.TempDir(), "cache.db")
	var acked []int
	for round := range 20 {
		start := round * 1_000_000
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path+","+strconv.Itoa(start))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after a different number of acknowledged writes each round, so the kill lands at different
		// points of a write.
		want := 3 + round*2
		sc := bufio.NewScanner(out)
		got := 0
		for got < want && sc.Scan() {
			n, ok := strings.CutPrefix(sc.Text(), "ack ")
			if !ok {
				continue
			}
			i, err := strconv.Atoi(n)
			if err != nil {
				t.Fatalf("child said %q", sc.Text())
			}
			acked = append(acked, i)
			got++
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Acknowledgements already written to the pipe count too.
		for sc.Scan() {
			if n, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
				i, _ := strconv.Atoi(n)
				acked = append(acked, i)
			}
		}
		cmd.Wait()
		if got < want {
			t.Fatalf("round %d: the child stopped after %d writes", round, got)
		}

		s, err := Open(path, Options{LockTimeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("round %d: reopening after SIGKILL: %v", round, err)
		}
		if err := s.Check(); err != nil {
			t.Errorf("round %d: %v", round, err)
		}
		for _, i := range acked {
			if _, err := s.Response(testKey("crash", int64(i))); err != nil {
				t.Errorf("round %d: acknowledged write %d is missing: %v", round, i, err)
			}
		}
		if h, err := s.History(testKey("crash", int64(acked[len(acked)-1]))); err != nil || len(h) == 0 {
			t.Errorf("round %d: history of the last acknowledged write: %d attempts, %v", round, len(h), err)
		}
		s.Close()
	}
	t.Logf("%d acknowledged writes survived 20 SIGKILLs", len(acked))
}

// TestCrashChild is the writer of TestCrashSafety; it does nothing unless run by it.
func TestCrashChild(t *testing.T) {
	arg := os.Getenv(crashChildEnv)
	if arg == "" {
		t.Skip("run by TestCrashSafety")
	}
	path, startText, _ := strings.Cut(arg, ",")
	start, _ := strconv.Atoi(startText)
	s, err := Open(path, Options{LockTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	for i := start; ; i++ {
		key := testKey("crash", int64(i))
		r := testResponse(t0.Add(time.Duration(i)*time.Second), 1500)
		if err := s.PutResponse(key, r); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		if err := s.AddAttempt(key, Attempt{Time: r.Fetched, Reason: "ok", URL: r.URL}); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stdout, "ack %d\n", i)
	}
}
