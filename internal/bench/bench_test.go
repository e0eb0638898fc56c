package bench

import (
	"bytes"
	"context"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		name string
		xs   []float64
		want float64
	}{
		{"odd", []float64{3, 1, 2}, 2},
		{"even", []float64{4, 1, 3, 2}, 2.5},
		{"one", []float64{7}, 7},
		{"NaN left out", []float64{math.NaN(), 5, 1, 3}, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Median(tt.xs); got != tt.want {
				t.Errorf("Median(%v) = %v, want %v", tt.xs, got, tt.want)
			}
		})
	}
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
}

func TestRoundRatios(t *testing.T) {
	got := RoundRatios([]float64{2, 6, 9}, []float64{1, 3})
	if !slices.Equal(got, []float64{2, 2}) {
		t.Errorf("RoundRatios = %v", got)
	}
}

// Interleave warms every target up once, then alternates the order of the targets from round to round.
func TestInterleaveOrder(t *testing.T) {
	var calls []string
	target := func(name string) Target {
		return Target{Name: name, Run: func(_ context.Context, d time.Duration) (Sample, error) {
			calls = append(calls, name+"/"+d.String())
			return Sample{Ops: 10, Elapsed: time.Second, CPU: 5 * time.Millisecond}, nil
		}}
	}
	series, err := Interleave(context.Background(), 3, time.Second, time.Millisecond, []Target{target("a"), target("b"), target("c")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a/1ms", "b/1ms", "c/1ms", "a/1s", "b/1s", "c/1s", "c/1s", "b/1s", "a/1s", "a/1s", "b/1s", "c/1s"}
	if !slices.Equal(calls, want) {
		t.Errorf("calls %v\nwant  %v", calls, want)
	}
	if len(series) != 3 || len(series[0].Samples) != 3 || series[1].Name != "b" {
		t.Fatalf("series %+v", series)
	}
	if got := series[0].CPUs()[0]; got != 500 {
		t.Errorf("CPU per op %v µs, want 500", got)
	}
	if got := series[0].Rates()[0]; got != 10 {
		t.Errorf("rate %v, want 10", got)
	}
}

func TestFormats(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{thousands(1234567), "1,234,567"}, {thousands(999), "999"}, {thousands(-1000), "-1,000"},
		{fmtMicros(12.34), "12.3"}, {fmtMicros(1234.4), "1,234"}, {fmtRatio(0.876), "0.88×"},
		{fmtRatio(math.NaN()), "–"}, {fmtPercent(0.456), "46%"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// The tables are Markdown whose columns line up, so that the printed table reads as plain text too.
func TestWriteTables(t *testing.T) {
	r := &Report{}
	tab := Table{Title: "T", Header: []string{"case", "value"}}
	tab.Row("long case name", "1")
	tab.Row("x", "1,000")
	r.Add(tab)
	r.Goal(Goal{Name: "g", Want: "≤ 1", Got: "2", Met: false})
	var b bytes.Buffer
	r.WriteTables(&b)
	out := b.String()
	for _, want := range []string{"### T", "| long case name |     1 |", "| x              | 1,000 |", "**not met**"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// tree starts with the process itself.
func TestTreeAndCPU(t *testing.T) {
	pids := tree(os.Getpid())
	if len(pids) == 0 || pids[0] != os.Getpid() {
		t.Fatalf("tree = %v", pids)
	}
	if got := SelfCPU(); got <= 0 {
		t.Errorf("SelfCPU = %v", got)
	}
}
