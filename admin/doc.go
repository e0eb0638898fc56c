// Package admin owns the admin HTTP API that a running staple serves on a unix socket in its data directory
// (mode 0600), and the client the command line uses to reach it: list entries, show one with its history
// and DER, refresh, remove, import, stats, health and readiness.
//
// Backend has two implementations and no engine of its own: Engine, over a stapler in this process (the
// service's, or the one the command line runs over the store when no service does), and Client, over the
// socket. Entries are built from the engine's view in one place (EntryOf), so a command prints the same
// whichever answers (docs/architecture.md says where a running service's answer differs, and why).
package admin
