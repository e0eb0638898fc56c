package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// Table is one table of the report, in Markdown.
type Table struct {
	Title  string
	Note   string // what was measured and how, under the title
	Header []string
	Rows   [][]string
}

// Goal is one of issue 8's goals and what this run measured for it.
type Goal struct {
	Name string // "ECDSA, TLS 1.3: staple serve CPU per handshake vs nginx"
	Want string // "≤ 0.90×"
	Got  string // "0.84×"
	Met  bool
}

// Report is everything a run measured.
type Report struct {
	Tables []Table
	Goals  []Goal
	Notes  []string // findings worth a line of their own
}

func (r *Report) Add(t Table)    { r.Tables = append(r.Tables, t) }
func (r *Report) Goal(g Goal)    { r.Goals = append(r.Goals, g) }
func (r *Report) Note(s string)  { r.Notes = append(r.Notes, s) }
func (t *Table) Row(c ...string) { t.Rows = append(t.Rows, c) }

// WriteTables writes the tables and the goals in Markdown.
func (r *Report) WriteTables(w io.Writer) {
	for _, t := range r.Tables {
		fmt.Fprintf(w, "### %s\n\n", t.Title)
		if t.Note != "" {
			fmt.Fprintf(w, "%s\n\n", t.Note)
		}
		writeMarkdownTable(w, t.Header, t.Rows)
		fmt.Fprintln(w)
	}
	if len(r.Goals) > 0 {
		fmt.Fprintf(w, "### Goals\n\n")
		rows := make([][]string, 0, len(r.Goals))
		for _, g := range r.Goals {
			mark := "met"
			if !g.Met {
				mark = "**not met**"
			}
			rows = append(rows, []string{g.Name, g.Want, g.Got, mark})
		}
		writeMarkdownTable(w, []string{"goal", "wanted", "measured", ""}, rows)
		fmt.Fprintln(w)
	}
	if len(r.Notes) > 0 {
		for _, n := range r.Notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
		fmt.Fprintln(w)
	}
}

// writeMarkdownTable pads the columns so that the table also reads as plain text.
func writeMarkdownTable(w io.Writer, header []string, rows [][]string) {
	width := make([]int, len(header))
	for i, h := range header {
		width[i] = runeLen(h)
	}
	for _, r := range rows {
		for i, c := range r {
			if i < len(width) {
				width[i] = max(width[i], runeLen(c))
			}
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i := range header {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			pad := strings.Repeat(" ", width[i]-runeLen(c))
			if i == 0 {
				b.WriteString(" " + c + pad + " |")
			} else {
				b.WriteString(" " + pad + c + " |")
			}
		}
		fmt.Fprintln(w, b.String())
	}
	line(header)
	sep := make([]string, len(header))
	for i := range header {
		if i == 0 {
			sep[i] = strings.Repeat("-", width[i])
		} else {
			sep[i] = strings.Repeat("-", width[i]-1) + ":"
		}
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
}

func runeLen(s string) int { return len([]rune(s)) }

// Number formats: rates and microseconds with thousands separators, ratios with two decimals.

func fmtRate(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return thousands(int64(math.Round(x)))
}

func fmtMicros(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	if x < 100 {
		return fmt.Sprintf("%.1f", x)
	}
	return thousands(int64(math.Round(x)))
}

func fmtRatio(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", x)
}

func fmtPercent(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100*x)
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
