package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"staple/internal/bench"
)

type machine struct {
	cpu, kernel, goVersion, nginx, openssl, fs string
	cores                                      int
	loadBefore, loadAfter                      string
	date                                       time.Time
}

func describeMachine(workDir, nginx, openssl string) machine {
	m := machine{cores: runtime.NumCPU(), goVersion: runtime.Version(), loadBefore: loadAvg(), date: time.Now().UTC()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	m.nginx = firstLine(exec.Command(nginx, "-v"))
	m.openssl = firstLine(exec.Command(openssl, "version"))
	var st unix.Statfs_t
	if unix.Statfs(workDir, &st) == nil {
		m.fs = "disk"
		if st.Type == unix.TMPFS_MAGIC {
			m.fs = "tmpfs"
		}
	}
	return m
}

func firstLine(cmd *exec.Cmd) string {
	b, _ := cmd.CombinedOutput()
	line, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte("\n"))
	return strings.TrimSpace(string(line))
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// render writes BENCHMARKS.md: the method, the machine, the tables of medians and ratios, and the goals.
func render(r *bench.Report, m machine, s settings, elapsed, total time.Duration) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, `# Benchmarks

Written by `+"`make bench`"+` (internal/bench/benchrun) on %s: measured in %v%s. Run it again on your machine: the
figures that travel are the ratios, each against a baseline measured in the same run.

## Method

- Every server runs as its own process, pinned with taskset to one CPU (CPU 1): `+"`staple serve`"+` with
  GOMAXPROCS=1, nginx with `+"`worker_processes 1`"+` (master and worker on that CPU), the bare Go server with
  GOMAXPROCS=1, `+"`staple responder`"+`, `+"`openssl ocsp -index`"+`. The load generator runs on the other CPU, in
  Go for every server: TLS through internal/loadgen, OCSP GETs through a raw HTTP/1.x client.
- Server CPU is the server process's own user+system time (with its children: nginx's worker) read from
  /proc/PID/stat before and after each run, divided by the operations the client saw complete.
- The targets of a case are run one after the other in a round, the order reversed every other round
  (A B C, C B A, …), after one warm-up run each; %d rounds of %v. Tables give medians; ratios are the
  medians of the per-round ratios, which cancel most of the drift of a shared machine.
- Full handshakes: no session cache on the client (so no ticket is offered or sent), status requested
  (Go's client always asks), the client's key exchange pinned to X25519 with P-256 also listed (Go would
  otherwise offer X25519MLKEM768, which a Go server takes and OpenSSL 3.0 does not know; OpenSSL wants the
  certificate's curve listed for ECDSA in TLS 1.2), certificate verification off on the client (it
  measures the server). Every full handshake must carry the staple, or the run fails.
- nginx staples from `+"`ssl_stapling_file`"+` (the DER response fetched from the lab's responder), the Go
  server from a static `+"`tls.Certificate.OCSPStaple`"+`, `+"`staple serve`"+` from its cache (fetched once at start
  from `+"`staple responder`"+`).
- The lab (`+"`staple lab`"+`): an ECDSA P-256 root and issuing CA, a delegated ECDSA OCSP signer, one
  ECDSA P-256 and one RSA-2048 leaf.
- Builds: `+"`staple serve`"+` is the default pure Go build (`+"`make build`"+`); `+"`(boringcrypto)`"+` is the same source
  built with GOEXPERIMENT=boringcrypto (BoringSSL's FIPS module through cgo); `+"`(-tags openssl)`"+` hands RSA
  signatures to the system's libcrypto through cgo (certs/internal/opensslkey), so it is measured with the RSA
  certificate only. The bare Go server is internal/bench/staticserver.
- OCSP GETs are driven by a raw HTTP/1.x client in Go, not wrk: openssl ocsp 3.0 answers one request per
  connection and spins, answering nobody, on a connection closed before its request arrived, which wrk
  does at the end of every run.
- The work directory (lab, caches, configurations) is on %s.
- BENCHTIME sets the run length (BENCHTIME=10s make bench), BENCHTIME=quick a short try; BENCH_ROUNDS the
  rounds. The profiles behind the findings come from the same servers in one process, the server side
  labelled: `+"`go test -tags bench -run '^$' -bench '^BenchmarkServe$/ecdsa/tls13$' -benchtime 5000x -cpuprofile cpu.out ./internal/bench/`"+`
  then `+"`go tool pprof -tagfocus side=server -top cpu.out`"+` (internal/bench/profile_test.go).%s

## Machine

| | |
|---|---|
| CPU | %s, %d logical CPUs |
| kernel | %s |
| Go | %s |
| nginx | %s |
| openssl | %s |
| load average (1, 5, 15 min) | %s before, %s after |

## Results

`, m.date.Format("2006-01-02 15:04 UTC"), elapsed.Round(time.Second), totalNote(total), s.rounds, s.window, m.fs, quickNote(s), m.cpu, m.cores, m.kernel,
		m.goVersion, strings.TrimPrefix(m.nginx, "nginx version: "), m.openssl, m.loadBefore, m.loadAfter)
	r.WriteTables(&b)
	return b.String()
}

func totalNote(total time.Duration) string {
	if total <= 0 {
		return ""
	}
	return fmt.Sprintf(", the whole make bench (installs and builds included) in %v", total.Round(time.Second))
}

func quickNote(s settings) string {
	if !s.quick {
		return ""
	}
	return "\n- **This was a quick run (BENCHTIME=quick): fewer, shorter rounds and smaller sweep and cache. Not for quoting.**"
}
