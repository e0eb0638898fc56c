// Package admin owns the admin HTTP API that a running staple serves on a unix socket in its data directory
// (mode 0600), and the client the command line uses to reach it: list entries, show one with its history
// and DER, refresh, remove, import, stats, health and readiness.
//
// The same Backend interface is implemented by the running service and, for inspection when no service
// runs, over a read-only cache: the CLI does not care which one answers.
package admin
