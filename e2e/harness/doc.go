// Package harness runs the processes of the end-to-end tests (package e2e): staple itself and the peers it
// is tested against (openssl, nginx, HAProxy, etcd, …), each in its own process group killed when its test
// ends, with its output kept for the failure message and read line by line to wait for a log message; and
// free ports, required tools, and waiting for a condition. What only staple's tests need (building and
// running the binary, a lab fixture, s_client, the table of interop outcomes) is in package e2e's own files.
package harness
