package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Sample is what one timed run of one target measured.
type Sample struct {
	Ops     int64         // handshakes or requests completed
	Elapsed time.Duration // wall time of the run
	CPU     time.Duration // the server's own CPU time during the run
	Errors  int64
}

// Rate returns operations per second of wall time.
func (s Sample) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Ops) / s.Elapsed.Seconds()
}

// CPUPerOp returns the server's CPU time per operation, in microseconds.
func (s Sample) CPUPerOp() float64 {
	if s.Ops == 0 {
		return math.NaN()
	}
	return float64(s.CPU.Microseconds()) / float64(s.Ops)
}

// Util returns the server's CPU use during the run, as a fraction of one CPU.
func (s Sample) Util() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return s.CPU.Seconds() / s.Elapsed.Seconds()
}

// ErrNothingDone: a run completed no operation and saw no error. On a shared machine the load generator can
// be starved for a whole run; Interleave runs it again.
var ErrNothingDone = errors.New("bench: no operation completed and no error seen (the load generator was starved?)")

// Target is one server measured the same way as the others of its case.
type Target struct {
	Name string
	// Run applies the load for d and returns what it measured.
	Run func(ctx context.Context, d time.Duration) (Sample, error)
}

// Series is every run of one target, in round order.
type Series struct {
	Name    string
	Samples []Sample
}

// Interleave runs every target for window once per round, for rounds rounds, after one warm-up run of each
// for warmup that is not kept (none when warmup is zero). The order alternates (A B C, then C B A, …) so
// that neither drift in the machine's load nor a target's position in the round favours one of them.
func Interleave(ctx context.Context, rounds int, window, warmup time.Duration, targets []Target, progress func(string)) ([]Series, error) {
	out := make([]Series, len(targets))
	for i, t := range targets {
		out[i].Name = t.Name
	}
	if warmup > 0 {
		for _, t := range targets {
			if _, err := t.Run(ctx, warmup); err != nil {
				return nil, fmt.Errorf("%s (warm-up): %w", t.Name, err)
			}
		}
	}
	for r := range rounds {
		order := make([]int, len(targets))
		for i := range order {
			order[i] = i
		}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, i := range order {
			s, err := targets[i].Run(ctx, window)
			for retry := 0; errors.Is(err, ErrNothingDone) && retry < 3 && ctx.Err() == nil; retry++ {
				if progress != nil {
					progress(fmt.Sprintf("round %d/%d %s: nothing completed, running it again", r+1, rounds, targets[i].Name))
				}
				s, err = targets[i].Run(ctx, window)
			}
			if err != nil {
				return nil, fmt.Errorf("%s (round %d): %w", targets[i].Name, r+1, err)
			}
			out[i].Samples = append(out[i].Samples, s)
			if progress != nil {
				progress(fmt.Sprintf("round %d/%d %-28s %9.0f/s %8.1f µs CPU/op (%.0f%% CPU)", r+1, rounds, targets[i].Name, s.Rate(), s.CPUPerOp(), 100*s.Util()))
			}
		}
	}
	return out, nil
}

// Median returns the median of xs (the mean of the middle two for an even count); NaN for none.
func Median(xs []float64) float64 {
	var s []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			s = append(s, x)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Rates returns the rate of each sample.
func (s Series) Rates() []float64 { return each(s.Samples, Sample.Rate) }

// CPUs returns the CPU per operation of each sample.
func (s Series) CPUs() []float64 { return each(s.Samples, Sample.CPUPerOp) }

// Utils returns the CPU use of each sample.
func (s Series) Utils() []float64 { return each(s.Samples, Sample.Util) }

// Errors returns the errors of every sample.
func (s Series) Errors() int64 {
	var n int64
	for _, x := range s.Samples {
		n += x.Errors
	}
	return n
}

func each(samples []Sample, f func(Sample) float64) []float64 {
	out := make([]float64, len(samples))
	for i, s := range samples {
		out[i] = f(s)
	}
	return out
}

// RoundRatios returns a[i]/b[i] for each round: the two were measured next to each other, under the same
// load, so the median of these ratios is steadier than the ratio of the medians.
func RoundRatios(a, b []float64) []float64 {
	n := min(len(a), len(b))
	out := make([]float64, n)
	for i := range n {
		out[i] = a[i] / b[i]
	}
	return out
}
