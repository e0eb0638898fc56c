package config

import (
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyLines maps each key path of a TOML document ("listen", "fetch.timeout", "site[1].cert") to the line it
// is on, so that errors found after decoding (a missing file, a bad URL) can name the line as decoding errors
// do. Array tables are numbered from 1, as people count them. A document that does not parse gives an
// empty map: the decoder reports the syntax error itself.
func keyLines(doc []byte) map[string]int {
	lines := map[string]int{}
	p := unstable.Parser{}
	p.Reset(doc)
	prefix := ""
	counts := map[string]int{}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table:
			prefix = joinKey(keyParts(e))
			lines[prefix] = lineOf(&p, e)
		case unstable.ArrayTable:
			name := joinKey(keyParts(e))
			counts[name]++
			prefix = name + "[" + strconv.Itoa(counts[name]) + "]"
			lines[prefix] = lineOf(&p, e)
		case unstable.KeyValue:
			path := joinKey(keyParts(e))
			if prefix != "" {
				path = prefix + "." + path
			}
			lines[path] = lineOf(&p, e)
		}
	}
	return lines
}

func keyParts(n *unstable.Node) []string {
	var parts []string
	it := n.Key()
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}

func joinKey(parts []string) string { return strings.Join(parts, ".") }

// lineOf returns the line of the first key part of an expression.
func lineOf(p *unstable.Parser, n *unstable.Node) int {
	it := n.Key()
	if it.Next() {
		if r := it.Node().Raw; r.Length > 0 {
			return p.Shape(r).Start.Line
		}
	}
	if n.Raw.Length > 0 {
		return p.Shape(n.Raw).Start.Line
	}
	return 0
}
