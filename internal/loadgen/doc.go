// Package loadgen drives TLS servers the same way for benchmarks and load tests: full or resumed handshakes
// from a pool of workers, each asking for certificate status, counting handshakes, staples (and their
// absence), errors and latencies; and it reads a server process's own CPU time from /proc.
//
// It is a measuring tool, not a test: it never fails on a slow machine, it reports.
package loadgen
