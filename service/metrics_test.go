package service

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"staple/admin"
)

func TestMetricsExposition(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := NewMetrics(func() []admin.Entry {
		return []admin.Entry{{Key: "k1", Names: []string{"a.test"}, Status: "good", NextUpdate: now.Add(90 * time.Second), MustStaple: true}}
	}, func() bool { return true }, func() time.Time { return now })
	m.Fetched("ok", 20*time.Millisecond)
	m.Fetched("http_503", time.Second)
	m.PersistFailed()
	m.StatusChanged("revoked")
	m.Handshake(true, "")
	m.Handshake(true, NoStapleNoResponse)
	m.Handshake(false, "")

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	for _, want := range []string{
		`staple_certificate_status{key="k1",name="a.test",status="good"} 1`,
		`staple_certificate_next_update_seconds{key="k1",name="a.test"} 90`,
		`staple_certificate_must_staple{key="k1",name="a.test"} 1`,
		`staple_fetch_failures_total{reason="http_503"} 1`,
		`staple_fetch_duration_seconds_count{result="ok"} 1`,
		`staple_persist_failures_total 1`,
		`staple_status_changes_total{status="revoked"} 1`,
		`staple_handshakes_total{outcome="stapled",reason=""} 1`,
		`staple_handshakes_total{outcome="not_stapled",reason="no_response"} 1`,
		`staple_handshakes_total{outcome="not_requested",reason=""} 1`,
		`staple_ready 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func BenchmarkMetricsHandshake(b *testing.B) {
	m := NewMetrics(func() []admin.Entry { return nil }, nil, nil)
	b.ReportAllocs()
	for b.Loop() {
		m.Handshake(true, "")
	}
}
