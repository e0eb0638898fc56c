package fleet

import (
	"context"
	"time"
)

// rerun calls run until ctx ends, and again each time it returns: first 100 ms later, the wait doubling up to
// maxWait, and back to 100 ms after a run that lasted longer than reset (zero: never). ended is told why each
// run ended, except the one that ctx ended.
func rerun(ctx context.Context, maxWait, reset time.Duration, run func(context.Context) error, ended func(error)) {
	const first = 100 * time.Millisecond
	wait := first
	for ctx.Err() == nil {
		start := time.Now()
		err := run(ctx)
		if ctx.Err() != nil {
			return
		}
		ended(err)
		if reset > 0 && time.Since(start) > reset {
			wait = first
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		wait = min(2*wait, maxWait)
	}
}
