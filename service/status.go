package service

import (
	"context"
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
	"time"

	"staple/admin"
)

// ConnInfo describes the TLS connection a status page request came on.
type ConnInfo struct {
	Version      string `json:"tls_version"`
	CipherSuite  string `json:"cipher_suite"`
	ServerName   string `json:"server_name,omitempty"`
	ALPN         string `json:"alpn,omitempty"`
	Resumed      bool   `json:"resumed"`
	AskedStatus  bool   `json:"asked_for_status"`
	Stapled      bool   `json:"stapled"`
	StapleStatus string `json:"staple_status,omitempty"`
}

type connInfoKey struct{}

// WithConnInfo returns a context carrying the connection's ConnInfo, for http.Server.ConnContext.
func WithConnInfo(ctx context.Context, ci *ConnInfo) context.Context {
	return context.WithValue(ctx, connInfoKey{}, ci)
}

// StatusPage serves the built-in status page: HTML, or JSON when the request accepts application/json.
type StatusPage struct {
	// Entries returns the certificates to show (the service's: those its sites serve); required.
	Entries func() []admin.Entry
	// Ready reports readiness; nil means always ready.
	Ready func() bool
	// Now returns the current time; nil means time.Now.
	Now     func() time.Time
	Version string
}

type statusDoc struct {
	Version      string        `json:"version"`
	Now          time.Time     `json:"now"`
	Ready        bool          `json:"ready"`
	Connection   *ConnInfo     `json:"connection,omitempty"`
	Certificates []admin.Entry `json:"certificates"`
}

func (p *StatusPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	doc := statusDoc{Version: p.Version, Now: now().UTC(), Ready: p.Ready == nil || p.Ready(), Certificates: p.Entries()}
	if doc.Certificates == nil {
		doc.Certificates = []admin.Entry{}
	}
	doc.Connection, _ = r.Context().Value(connInfoKey{}).(*ConnInfo)
	w.Header().Set("Cache-Control", "no-store")
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(doc)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	statusTemplate.Execute(w, doc)
}

func wantsJSON(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

var statusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"join": func(s []string) string { return strings.Join(s, ", ") },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>staple status</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
.good{color:#070}.revoked{color:#b00;font-weight:bold}.unknown,.none{color:#a60}
</style></head><body>
<h1>staple</h1>
<p>Version {{.Version}} · {{when .Now}} · {{if .Ready}}ready{{else}}not ready{{end}}</p>
{{with .Connection}}<h2>This connection</h2>
<table id="connection">
<tr><th>TLS</th><td>{{.Version}} {{.CipherSuite}}</td></tr>
<tr><th>Server name</th><td>{{if .ServerName}}{{.ServerName}}{{else}}(none sent){{end}}</td></tr>
<tr><th>ALPN</th><td>{{if .ALPN}}{{.ALPN}}{{else}}(none){{end}}</td></tr>
<tr><th>Resumed</th><td>{{.Resumed}}</td></tr>
<tr><th>OCSP staple</th><td>{{if .Stapled}}<span class="{{.StapleStatus}}">stapled: {{.StapleStatus}}</span>{{else if .AskedStatus}}asked for, none sent{{else}}not asked for{{end}}</td></tr>
</table>{{end}}
<h2>Certificates</h2>
<table id="certificates">
<tr><th>Key</th><th>Names</th><th>Status</th><th>thisUpdate</th><th>nextUpdate</th><th>Next refresh</th><th>Last error</th><th>Must-Staple</th></tr>
{{range .Certificates}}<tr><td><code>{{.Key}}</code></td><td>{{join .Names}}</td><td class="status {{.Status}}">{{.Status}}</td><td>{{when .ThisUpdate}}</td><td>{{when .NextUpdate}}</td><td>{{when .NextRefresh}}</td><td>{{.LastError}}</td><td>{{if .MustStaple}}yes{{else}}no{{end}}</td></tr>
{{else}}<tr><td colspan="8">No certificates are watched.</td></tr>{{end}}
</table>
</body></html>
`))
