// Package cli owns staple's command line: the subcommands, one file each, their flags, usage text and output
// formats (text and --json), and the mapping of outcomes to exit codes.
//
// Commands reach the cache only through package cache (or a running service's admin socket); they never open
// bbolt themselves. Run never exits the process and never panics on bad input: every failure comes back as an
// error whose ExitCode and Message say what main should do.
package cli
