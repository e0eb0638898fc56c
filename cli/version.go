package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

const versionManual = `NAME
    staple version - print the version of this binary

SYNOPSIS
    staple version

DESCRIPTION
    Prints staple's version, the Go toolchain it was built with, and the target platform. The version is set
    at build time (make build passes it with -ldflags); a binary built otherwise reports the module version
    from its build information, or "devel".
`

func versionCommand() command {
	return command{name: "version", summary: "print the version of this binary", run: runVersion}
}

func runVersion(_ context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "version", versionManual)
	operands, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(operands) > 0 {
		return usageError("version: unexpected argument %q", operands[0])
	}
	fmt.Fprintf(env.Stdout, "staple %s %s %s/%s\n", Version(env), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// Version returns the version to report: the one set at link time, else the main module's version from the
// build information, else "devel".
func Version(env Env) string {
	if env.Version != "" {
		return env.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
