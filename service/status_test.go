package service

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"staple/admin"
)

func TestStatusPage(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p := &StatusPage{
		Now:     func() time.Time { return now },
		Version: "v1",
		Entries: func() []admin.Entry {
			return []admin.Entry{{Key: "0011223344556677:1000", Names: []string{"a.test", "<b>"}, Status: "revoked",
				ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(time.Hour), LastError: "http_503"}}
		},
	}
	t.Run("html", func(t *testing.T) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req = req.WithContext(WithConnInfo(req.Context(), &ConnInfo{Version: "TLS 1.3", AskedStatus: true, Stapled: true, StapleStatus: "good"}))
		p.ServeHTTP(rec, req)
		body := rec.Body.String()
		for _, want := range []string{`class="status revoked">revoked<`, "2026-01-02 04:04:05Z", "http_503", "stapled: good", "&lt;b&gt;"} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %q", want)
			}
		}
		if strings.Contains(body, "<b>") {
			t.Error("names are not escaped")
		}
	})
	t.Run("json", func(t *testing.T) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Accept", "application/json")
		p.ServeHTTP(rec, req)
		var doc statusDoc
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Certificates) != 1 || doc.Certificates[0].Status != "revoked" || !doc.Ready || doc.Connection != nil {
			t.Errorf("doc = %+v", doc)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
	})
}
