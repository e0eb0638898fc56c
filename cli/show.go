package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"staple/admin"
	"staple/ocspwire"
)

// writeDetail prints everything about one entry: the facts, the fetch history and the response decoded as
// `openssl ocsp -resp_text` would.
func writeDetail(w io.Writer, d admin.Detail) {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	row := func(k, v string) {
		if v != "" && v != "-" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("Key", d.Key)
	row("Names", strings.Join(d.Names, ", "))
	row("Status", d.Status)
	if d.Reason != "" || !d.RevokedAt.IsZero() {
		row("Revoked at", stamp(d.RevokedAt))
		row("Reason", d.Reason)
	}
	row("Must-Staple", yesNo(d.MustStaple))
	row("Watched", yesNo(d.Watched))
	if d.Fleet {
		served := strings.Join(d.ServedBy, ", ")
		switch {
		case d.ServedByError != "":
			served = "unknown: " + d.ServedByError
		case served == "":
			served = "no node (the fleet's leader removes it once unserved for unserved_after)"
		}
		row("Served by", served)
	}
	row("Produced at", stamp(d.ProducedAt))
	row("This update", stamp(d.ThisUpdate))
	row("Next update", stamp(d.NextUpdate))
	row("Stapled until", stamp(d.Expires))
	row("Next refresh", stamp(d.NextRefresh))
	row("Fetched", stamp(d.Fetched))
	row("Responder", d.Responder)
	row("OCSP URLs", strings.Join(d.URLs, " "))
	row("Last error", d.LastError)
	if d.Failures > 0 {
		row("Failures", fmt.Sprintf("%d in a row", d.Failures))
	}
	tw.Flush()

	fmt.Fprintf(w, "\nHistory (oldest first, last %d):\n", len(d.History))
	if len(d.History) == 0 {
		fmt.Fprintln(w, "  (no fetch recorded)")
	} else {
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  TIME\tRESULT\tSTATUS\tLATENCY\tRESPONDER\tERROR")
		for _, a := range d.History {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", stamp(a.Time), a.Result, dash(a.Status), a.Latency.Round(1e6), dash(a.URL), dash(oneLine(a.Error, 80)))
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	if len(d.DER) == 0 {
		fmt.Fprintln(w, "No response is cached.")
		return
	}
	text, err := ocspwire.Text(d.DER)
	if err != nil {
		fmt.Fprintf(w, "The cached response does not decode: %v\n", err)
		return
	}
	fmt.Fprint(w, text)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
