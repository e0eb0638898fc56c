// Command staple is an OCSP stapling cache and responder-fetcher: it keeps fresh, verified OCSP responses for
// certificates, staples them in its own TLS server, and hands them to nginx, HAProxy and Apache.
//
// main only wires the process to the cli package: arguments, standard streams, signals and the exit code.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"staple/cli"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3"; when empty, the module's build
// information is used.
var version string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if msg := cli.Message(err); msg != "" {
		fmt.Fprintln(os.Stderr, "staple: "+msg)
	}
	os.Exit(cli.ExitCode(err))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return cli.Run(ctx, cli.Env{Stdout: stdout, Stderr: stderr, Version: version}, args)
}
