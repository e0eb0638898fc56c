// Command benchrun is make bench: it measures staple side by side with nginx, a bare crypto/tls server and
// openssl ocsp on this machine, writes BENCHMARKS.md and prints its tables.
//
//	go run ./internal/bench/benchrun -staple bin/staple -static bin/bench-staticserver [-staple-boring bin/staple-boring]
//
// BENCHTIME sets the length of one run (default 2s; "quick" for a short try: 1 s runs, 3 rounds, smaller sweep
// and cache); BENCH_ROUNDS the number of interleaved rounds (default 5).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"staple/internal/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type settings struct {
	window                         time.Duration
	rounds, workers, httpWorkers   int
	sweep, warmEntries, warmRounds int
	quick                          bool
}

func parseSettings() (settings, error) {
	s := settings{window: 2 * time.Second, rounds: 5, workers: 16, httpWorkers: 16, sweep: 10000, warmEntries: 100000, warmRounds: 3}
	switch bt := os.Getenv("BENCHTIME"); bt {
	case "":
	case "quick":
		s = settings{window: time.Second, rounds: 3, workers: 16, httpWorkers: 16, sweep: 1000, warmEntries: 10000, warmRounds: 2, quick: true}
	default:
		d, err := time.ParseDuration(bt)
		if err != nil || d < 100*time.Millisecond {
			return s, fmt.Errorf("BENCHTIME=%q: want a duration of at least 100ms (3s, 10s) or quick", bt)
		}
		s.window = d
	}
	if r := os.Getenv("BENCH_ROUNDS"); r != "" {
		n, err := strconv.Atoi(r)
		if err != nil || n < 1 {
			return s, fmt.Errorf("BENCH_ROUNDS=%q: want a positive number", r)
		}
		s.rounds = n
	}
	return s, nil
}

func run() error {
	staple := flag.String("staple", "bin/staple", "the staple binary to measure")
	boring := flag.String("staple-boring", "", "staple built with GOEXPERIMENT=boringcrypto (empty: not measured)")
	withOpenSSL := flag.String("staple-openssl", "", "staple built with -tags openssl (empty: not measured)")
	static := flag.String("static", "bin/bench-staticserver", "the bare crypto/tls server (internal/bench/staticserver)")
	nginx := flag.String("nginx", "/usr/sbin/nginx", "nginx")
	openssl := flag.String("openssl", "openssl", "openssl")
	out := flag.String("out", "BENCHMARKS.md", "the report to write")
	dir := flag.String("dir", "", "work directory (default: a new one under /dev/shm, else $TMPDIR); kept with -keep")
	keep := flag.Bool("keep", false, "keep the work directory")
	serverCPU := flag.Int("server-cpu", 1, "CPU the servers are pinned to")
	clientCPU := flag.Int("client-cpu", 0, "CPU the load generator is pinned to")
	only := flag.String("only", "", "comma-separated phases to run (tls, sweep, warm); default all")
	makeStarted := flag.Int64("make-started", 0, "when make bench started (Unix seconds), to report its whole duration")
	flag.Parse()

	set, err := parseSettings()
	if err != nil {
		return err
	}
	if runtime.NumCPU() < 2 {
		*serverCPU, *clientCPU = -1, -1 // one CPU: nothing to pin apart
	}
	if *clientCPU >= 0 {
		if err := pinSelf(*clientCPU); err != nil {
			return err
		}
		runtime.GOMAXPROCS(1)
	}
	bins := map[string]*string{"staple": staple, "static": static}
	if *boring != "" {
		bins["staple-boring"] = boring
	}
	if *withOpenSSL != "" {
		bins["staple-openssl"] = withOpenSSL
	}
	for name, p := range bins {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("-%s: %w (make bench builds it)", name, err)
		}
		*p = abs
	}
	work := *dir
	if work == "" {
		base := ""
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			base = "/dev/shm"
		}
		if work, err = os.MkdirTemp(base, "staple-bench-"); err != nil {
			return err
		}
		if !*keep {
			defer os.RemoveAll(work)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	machine := describeMachine(work, *nginx, *openssl)
	procs := &bench.Procs{}
	defer procs.StopAll()
	logf := func(s string) { fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), s) }
	env := &bench.Env{Dir: work, Staple: *staple, StapleBoring: *boring, StapleOpenSSL: *withOpenSSL, StaticServer: *static, Nginx: *nginx,
		OpenSSL: *openssl, ServerCPU: *serverCPU, Procs: procs}
	r := &bench.Run{Env: env, Load: bench.Load{Window: set.window, Warmup: set.window / 4, Workers: set.workers}, Rounds: set.rounds,
		HTTPWorkers: set.httpWorkers, Report: &bench.Report{}, Log: logf}
	phases := map[string]bool{"tls": true, "sweep": true, "warm": true}
	if *only != "" {
		phases = map[string]bool{}
		for _, p := range strings.Split(*only, ",") {
			phases[strings.TrimSpace(p)] = true
		}
	}

	logf(fmt.Sprintf("work directory %s; runs of %v, %d rounds", work, set.window, set.rounds))
	respAddr, err := bench.FreeAddr()
	if err != nil {
		return err
	}
	logf("making the lab")
	if r.Lab, err = bench.MakeLab(filepath.Join(work, "lab"), "http://"+respAddr, set.sweep); err != nil {
		return err
	}
	if r.StapleResponder, err = env.StartStapleResponder("staple-responder", r.Lab, respAddr); err != nil {
		return err
	}
	for _, leaf := range r.Lab.Leaves {
		if err := bench.FetchStaple(ctx, leaf, work); err != nil {
			return err
		}
	}
	if phases["tls"] {
		if err := r.Handshakes(ctx); err != nil {
			return err
		}
	}
	if phases["sweep"] {
		if err := r.Sweep(ctx, set.warmRounds); err != nil {
			return err
		}
	}
	if phases["warm"] {
		if err := r.WarmStart(ctx, set.warmEntries, set.warmRounds); err != nil {
			return err
		}
	}
	procs.StopAll()
	machine.loadAfter = loadAvg()
	elapsed := time.Since(start)
	var total time.Duration
	if *makeStarted > 0 {
		total = time.Since(time.Unix(*makeStarted, 0))
	}
	doc := render(r.Report, machine, set, elapsed, total)
	if err := os.WriteFile(*out, []byte(doc), 0o644); err != nil {
		return err
	}
	fmt.Println()
	r.Report.WriteTables(os.Stdout)
	fmt.Printf("measured in %v%s; written to %s\n", elapsed.Round(time.Second), totalNote(total), *out)
	return ctx.Err()
}

// pinSelf pins every thread of this process to cpu; threads started later inherit it.
func pinSelf(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("pinning the load generator to CPU %d: %w", cpu, errors.Join(errs...))
	}
	return nil
}
