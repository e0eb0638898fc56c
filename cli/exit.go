package cli

import (
	"errors"
	"fmt"
)

// Exit codes shared by every command.
const (
	ExitOK      = 0 // success; for status commands: the certificate is good
	ExitFailure = 1 // the command could not do its job (I/O, network, verification)
	ExitUsage   = 2 // bad command line: unknown command or flag, missing argument
	ExitRevoked = 3 // a verified response says revoked
	ExitUnknown = 4 // a verified response says unknown
)

// ExitError carries an exit code and, optionally, the one line to print on stderr. An ExitError with a nil
// Err prints nothing: the command has already said what it had to say.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// usageError reports a bad command line (exit 2).
func usageError(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// ExitCode returns the process exit code for an error returned by Run.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var e *ExitError
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitFailure
}

// Message returns the single line main prints on stderr for err, or "" when nothing is to be printed.
func Message(err error) string {
	if err == nil {
		return ""
	}
	var e *ExitError
	if errors.As(err, &e) && e.Err == nil {
		return ""
	}
	return err.Error()
}
