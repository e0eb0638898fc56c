package e2e

import (
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"testing"
	"text/tabwriter"
)

// The interop suite (make interop) prints, after its tests, one row per case it ran against a peer: what
// was checked, against which software, and the result. Tests add rows with outcome (interop_helpers_test.go).

// outcomeRow is one case of the table.
type outcomeRow struct {
	test, check, peer, detail string
	t                         testing.TB
}

var outcomes struct {
	mu   sync.Mutex
	rows []*outcomeRow
}

// Note sets the row's figure.
func (r *outcomeRow) Note(format string, args ...any) {
	outcomes.mu.Lock()
	r.detail = fmt.Sprintf(format, args...)
	outcomes.mu.Unlock()
}

func (r *outcomeRow) result() string {
	switch {
	case r.t.Failed():
		return "FAIL"
	case r.t.Skipped():
		return "skip"
	}
	return "pass"
}

// printSummary writes the table of outcomes, if any test recorded one, to w or, when $STAPLE_SUMMARY names
// a file, to that file (go test shows a passing package's output only with -v; make interop prints the
// file).
func printSummary(w io.Writer) {
	if path := os.Getenv("STAPLE_SUMMARY"); path != "" {
		if f, err := os.Create(path); err == nil {
			defer f.Close()
			w = f
		}
	}
	outcomes.mu.Lock()
	defer outcomes.mu.Unlock()
	if len(outcomes.rows) == 0 {
		return
	}
	rows := append([]*outcomeRow(nil), outcomes.rows...)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].test < rows[j].test })
	fmt.Fprintln(w, "\nInterop summary")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CASE\tPEER\tRESULT\tFIGURES")
	pass := 0
	for _, r := range rows {
		res := r.result()
		if res == "pass" {
			pass++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.check, r.peer, res, r.detail)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d of %d cases passed\n", pass, len(rows))
}
