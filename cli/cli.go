package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// Env is what a command may touch of the process: its output streams and facts fixed at build time.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	// Version is the version set at link time; empty means "take it from the build information".
	Version string
	// Now returns the current time; nil means time.Now. Tests fix it for golden output.
	Now func() time.Time
	// Rand returns a uniform number in [0, 1) for the jitter of refresh times; nil means math/rand. Tests fix
	// it for golden output.
	Rand func() float64
}

func (e Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// command is one subcommand. A command with subcommands (cache, lab) dispatches in its run function.
type command struct {
	name    string
	summary string // one line for the command list
	run     func(ctx context.Context, env Env, args []string) error
}

// commands lists the subcommands in the order the usage text shows them.
func commands() []command {
	return []command{
		serveCommand(),
		fetchCommand(),
		checkCommand(),
		cacheCommand(),
		labCommand(),
		responderCommand(),
		versionCommand(),
	}
}

const mainUsage = `NAME
    staple - OCSP stapling cache and responder-fetcher

SYNOPSIS
    staple COMMAND [FLAGS] [ARGS]
    staple COMMAND -h

DESCRIPTION
    staple keeps a fresh, verified OCSP response for every certificate it watches, staples it in its own
    TLS server from the first handshake after start, and hands the same responses to nginx, HAProxy and
    Apache as files or through a caching OCSP responder. It also runs an offline CA lab with a responder
    that can misbehave on purpose, and lets an operator inspect and edit its cache from the shell.

COMMANDS
%s
EXIT STATUS
    0 success (for status commands: good), 1 failure, 2 usage error, 3 revoked, 4 unknown.

SIGNALS
    SIGINT and SIGTERM end a command within 2 s (exit 1), even one waiting on a FIFO or a device given as
    a file; serve and responder first drain (see their manuals). Files given are read with a bound.

Run 'staple COMMAND -h' for the manual of one command.
`

func usage(w io.Writer) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "    %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprintf(w, mainUsage, b.String())
}

// stopGrace is how long a command may go on once its context has ended (SIGINT, SIGTERM) before Run returns
// without it; a command that drains (serve, responder) adds its drain (see drains).
const stopGrace = 2 * time.Second

// Run runs the command named by args[0] with the rest of args. Once ctx ends (main's SIGINT or SIGTERM), the
// command has stopGrace to return, more the drain it announced; past that Run returns without it, so that
// main exits even while the command is blocked where no context reaches: opening a FIFO that has no writer
// (to read a certificate) or no reader (to export a response).
func Run(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 {
		usage(env.Stderr)
		return &ExitError{Code: ExitUsage}
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		usage(env.Stdout)
		return nil
	case "-version", "--version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name == name {
			return runStoppable(ctx, c, env, args[1:])
		}
	}
	if strings.HasPrefix(name, "-") {
		return usageError("unknown flag %s before the command (run 'staple -h')", name)
	}
	return usageError("unknown command %q (run 'staple -h' for the list)", name)
}

// runStoppable runs c, and returns without it once ctx has ended for longer than its grace.
func runStoppable(ctx context.Context, c command, env Env, args []string) error {
	drain := new(atomic.Int64)
	done := make(chan error, 1)
	go func() { done <- c.run(context.WithValue(ctx, drainKey{}, drain), env, args) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	grace := time.NewTimer(stopGrace + time.Duration(drain.Load()))
	defer grace.Stop()
	select {
	case err := <-done:
		return err
	case <-grace.C:
		return fmt.Errorf("%s: %v: stopped before it finished", c.name, context.Cause(ctx))
	}
}

type drainKey struct{}

// drains tells Run that the command, once ctx ends, takes up to d to drain before it returns.
func drains(ctx context.Context, d time.Duration) {
	if p, ok := ctx.Value(drainKey{}).(*atomic.Int64); ok {
		p.Store(int64(d))
	}
}

// flagSet is a command's flags with its manual, printed (followed by the flag defaults) for -h.
type flagSet struct {
	*flag.FlagSet
	manual string
	out    io.Writer
}

// newFlagSet returns the flag set of command name. The flag package prints nothing itself: parse turns a bad
// flag into one line.
func newFlagSet(env Env, name, manual string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // the flag package calls Usage on every error; the manual is for -h only
	return &flagSet{FlagSet: fs, manual: manual, out: env.Stdout}
}

func (fs *flagSet) printManual() {
	fmt.Fprint(fs.out, strings.TrimLeft(fs.manual, "\n"))
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	if b.Len() > 0 {
		fmt.Fprintf(fs.out, "\nFLAGS\n%s", b.String())
	}
}

// parse parses args allowing flags and operands in any order ("fetch a.pem --json" as well as
// "fetch --json a.pem"); "--" ends the flags. It returns the operands. -h prints the manual and returns
// errHelp; a bad flag returns a usage error naming the command.
func (fs *flagSet) parse(args []string) ([]string, error) {
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.printManual()
				return nil, errHelp
			}
			return nil, usageError("%s: %v (run 'staple %s -h')", fs.Name(), err, fs.Name())
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return operands, nil
		}
		// fs.Parse stops at the first operand or after "--".
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(operands, rest...), nil
		}
		operands = append(operands, rest[0])
		args = rest[1:]
	}
}

// errHelp is returned after -h printed the manual; Run turns it into exit 0.
var errHelp = &ExitError{Code: ExitOK}
