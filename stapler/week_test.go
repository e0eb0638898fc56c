package stapler

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/crypto/ocsp"

	"staple/internal/testpki"
	"staple/ocspfetch"
	"staple/ocspwire"
)

const day = 24 * time.Hour

// weekResponder is a responder the week can be played against: the in-process fake, or testpki's fake
// responder behind the real ocspfetch.Client.
type weekResponder interface {
	Fetcher
	setOutage(on bool)
	revoke(serial *big.Int, at time.Time)
	newestValid(serial string, now time.Time) (issued, bool)
	issuedSnapshot() []issued
	log() []request
	latency() time.Duration
	outageReason() string
}

// TestWeekOfResponder plays out nine days of a responder that signs responses valid for four days, with a
// short outage (the staple survives it), a long one (the staple expires and is not served past nextUpdate),
// a disk that refuses a write (the new staple is served all the same), and a revocation (revoked takes over
// at the next fetch). The clock is synctest's: the sweep, the retry timers and the responder all run on it.
//
// At every checkpoint (every 10 minutes, and at each response's nextUpdate and the nanosecond before) the
// staple must be exactly the newest response the responder sent that is still valid, or nothing when none is.
//
// It runs twice: against the in-process fake Fetcher, and against testpki's fake responder (its HTTP handler,
// reached through an in-memory transport so that synctest's clock drives it) fetched and verified by the
// real ocspfetch.Client.
func TestWeekOfResponder(t *testing.T) {
	ca := testpki.NewRoot(t, "week CA", testpki.ECDSAP256)
	// Answers take 1.7 s, so response times fall between the sweep's 30 s ticks and the hard expiry has to be
	// enforced by Staple itself, not by a sweep that happens to run at the same instant.
	const latency = 1700 * time.Millisecond
	setups := []struct {
		name string
		make func(t *testing.T) weekResponder
	}{
		{"fake fetcher", func(t *testing.T) weekResponder {
			f := newFakeResponder(t, ca, 4*day)
			f.latency = latency
			return weekFake{f}
		}},
		{"ocspfetch.Client and testpki responder", func(t *testing.T) weekResponder {
			return newPKIResponder(t, ca, 4*day, latency)
		}},
	}
	for _, setup := range setups {
		t.Run(setup.name, func(t *testing.T) {
			// Made outside the bubble: testpki's responder starts a listener whose goroutine blocks in
			// network I/O, which synctest does not count as durably blocked, so its clock would never move.
			fake := setup.make(t)
			synctest.Test(t, func(t *testing.T) { playWeek(t, ca, fake) })
		})
	}
}

func playWeek(t *testing.T, ca *testpki.CA, fake weekResponder) {
	t0 := time.Now()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	chain := leafChain(t, ca, testpki.LeafOptions{OCSPURLs: []string{"http://ocsp.test/week"}, MustStaple: true})
	serial := chain.Leaf.SerialNumber.String()
	store := &faultyStore{Store: openStore(t, tempStorePath(t))}
	var events eventLog
	var logs logBuffer
	policy := ocspfetch.Policy{}
	s := mustNew(t, Config{Fetcher: fake, Storage: store, Policy: policy, Rand: noJitter,
		Logger: testLogger(&logs), OnEvent: events.add})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	key, err := s.Watch(chain)
	if err != nil {
		t.Fatal(err)
	}

	type phase struct {
		at     time.Duration
		action func()
	}
	phases := []phase{
		{36 * time.Hour, func() { fake.setOutage(true) }},             // outage 1: 1.5 d to 2.5 d
		{60 * time.Hour, func() { fake.setOutage(false) }},            //
		{4 * day, func() { fake.setOutage(true) }},                    // outage 2: 4 d to 6.75 d
		{6*day + 17*time.Hour, func() { store.setFail(errDiskFull) }}, // the disk fails before the recovery
		{6*day + 18*time.Hour, func() { fake.setOutage(false) }},      //
		{6*day + 20*time.Hour, func() {
			// The response fetched after the outage is served (check asserts it) but not stored.
			stored, err := store.Response(key)
			served, _ := fake.newestValid(serial, time.Now())
			if err != nil || stored.ThisUpdate.Equal(served.thisUpdate) {
				t.Errorf("the refused write reached the disk (%v)", err)
			}
			if err := s.Healthy(); !errors.Is(err, ErrUnhealthy) {
				t.Errorf("Healthy with a write pending: %v, want ErrUnhealthy", err)
			}
			if m := s.Metrics(); m.PersistBacklog != 1 {
				t.Errorf("PersistBacklog = %d, want 1", m.PersistBacklog)
			}
			store.setFail(nil)
		}},
		{6*day + 20*time.Hour + time.Minute, func() {
			stored, err := store.Response(key)
			served, _ := fake.newestValid(serial, time.Now())
			if err != nil || !stored.ThisUpdate.Equal(served.thisUpdate) {
				t.Errorf("the sweep did not write the pending response: %v", err)
			}
		}},
		{7 * day, func() { fake.revoke(chain.Leaf.SerialNumber, at(7*day)) }},
	}
	end := 9 * day

	var sawExpiredGap, sawNotReady bool
	check := func(now time.Time) {
		t.Helper()
		got := s.Staple(key)
		want, ok := fake.newestValid(serial, now)
		switch {
		case !ok && got != nil:
			t.Fatalf("%v: a staple is served with no valid response in existence", now.Sub(t0))
		case ok && !bytes.Equal(got, want.raw):
			t.Fatalf("%v: the staple is not the newest valid response (thisUpdate %v, nextUpdate %v; served %d bytes)",
				now.Sub(t0), want.thisUpdate.Sub(t0), want.nextUpdate.Sub(t0), len(got))
		case !ok:
			sawExpiredGap = true
		}
		if ready := s.Ready(); ready != ok {
			t.Fatalf("%v: Ready = %v with a valid response %v", now.Sub(t0), ready, ok)
		} else if !ready {
			sawNotReady = true
		}
	}

	// Walk the clock. Checkpoints every 10 minutes, plus each phase change and each response's expiry
	// (and the nanosecond before it), so "nothing past nextUpdate" is checked at the exact instant.
	next := 0
	for now := time.Now(); now.Before(at(end)); now = time.Now() {
		target := now.Add(10 * time.Minute)
		if next < len(phases) && at(phases[next].at).Before(target) {
			target = at(phases[next].at)
		}
		for _, r := range fake.issuedSnapshot() {
			for _, edge := range []time.Time{r.nextUpdate.Add(-time.Nanosecond), r.nextUpdate} {
				if edge.After(now) && edge.Before(target) {
					target = edge
				}
			}
		}
		time.Sleep(target.Sub(now))
		synctest.Wait()
		if next < len(phases) && !time.Now().Before(at(phases[next].at)) {
			phases[next].action()
			next++
		}
		check(time.Now())
	}
	if !sawExpiredGap || !sawNotReady {
		t.Error("the long outage never left the certificate without a valid staple: the scenario is wrong")
	}

	reqs := fake.log()
	assertRefreshTimes(t, reqs, t0, policy, fake.latency())
	assertBackoff(t, reqs, at(36*time.Hour), at(60*time.Hour), fake.latency())
	// Outage 2 outlived the staple: with nothing to staple the retries are at most BackoffUnstapled (5 min)
	// apart, so the responder's return is seen within minutes, not the hour of the cap while a staple is held.
	var expired time.Time // when the last response issued before outage 2 expired
	for _, r := range fake.issuedSnapshot() {
		if r.thisUpdate.Before(at(4*day)) && r.nextUpdate.After(expired) {
			expired = r.nextUpdate
		}
	}
	var failed []time.Time
	for _, r := range reqs {
		if r.err != nil && !r.at.Before(expired) && r.at.Before(at(6*day+18*time.Hour)) {
			failed = append(failed, r.at)
		}
	}
	if len(failed) < 10 {
		t.Errorf("%d retries in the %v with nothing to staple, want them every few minutes", len(failed), at(6*day+18*time.Hour).Sub(expired))
	}
	for i := 1; i < len(failed); i++ {
		if gap := failed[i].Sub(failed[i-1]); gap > 5*time.Minute+fake.latency() {
			t.Errorf("with nothing to staple, retry %d came %v after the previous one, want at most 5 min", i, gap)
			break
		}
	}
	if m := s.Metrics(); m.Failures[fake.outageReason()] == 0 {
		t.Errorf("failures by reason %v, want %s counted", m.Failures, fake.outageReason())
	}

	// The disk refused the response fetched at the end of outage 2; it was served at once (checked above),
	// reported, and written by a later sweep once the disk recovered.
	if n := events.count(PersistFailed); n == 0 {
		t.Error("no PersistFailed event for the refused write")
	}
	if m := s.Metrics(); m.PersistFailures == 0 || m.Revocations != 1 || m.Expirations != 1 {
		t.Errorf("metrics: %d persist failures, %d revocations, %d expirations; want >0, 1, 1",
			m.PersistFailures, m.Revocations, m.Expirations)
	}

	// Revoked took over at the first fetch after the revocation, and is what is stored.
	ev, ok := events.last(StatusChanged)
	if !ok || ev.Status != ocspwire.Revoked || !ev.HadPrevious || ev.Previous != ocspwire.Good {
		t.Errorf("last status change %+v, want good → revoked", ev)
	}
	firstAfter := firstRequestAfter(reqs, at(7*day))
	if !ev.Time.Equal(firstAfter) {
		t.Errorf("revoked was accepted at %v, the first fetch after the revocation was at %v", ev.Time.Sub(t0), firstAfter.Sub(t0))
	}
	stored, err := store.Response(key)
	if err != nil || stored.Status != ocspwire.Revoked {
		t.Errorf("stored response: %v, %v; want revoked", stored.Status, err)
	}
	if !logged(t, logs.String(), "error", "status_changed", "revoked") {
		t.Error("the revocation was not logged at error level")
	}
	if !logged(t, logs.String(), "error", "expired", "") {
		t.Error("the expiry was not logged at error level")
	}
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy at the end: %v", err)
	}
}

// assertRefreshTimes checks that each successful fetch after the first came at the policy's refresh time of
// the response before it (no jitter), within one sweep (plus the responder's latency: times are those of the
// answers), unless that refresh failed (an outage).
func assertRefreshTimes(t *testing.T, reqs []request, t0 time.Time, p ocspfetch.Policy, latency time.Duration) {
	t.Helper()
	var prevOK *request
	for i := range reqs {
		r := &reqs[i]
		if r.err != nil {
			continue
		}
		if prevOK != nil {
			resp := &ocspfetch.Response{ThisUpdate: prevOK.thisUpdate, NextUpdate: prevOK.nextUpdate}
			due := p.RefreshAt(resp, prevOK.at, nil)
			failedBetween := false
			for _, q := range reqs {
				if q.err != nil && q.at.After(prevOK.at) && q.at.Before(r.at) {
					failedBetween = true
				}
			}
			if !failedBetween && (r.at.Before(due.Add(latency)) || r.at.After(due.Add(30*time.Second+latency))) {
				t.Errorf("fetch at %v, the policy's refresh time was %v", r.at.Sub(t0), due.Sub(t0))
			}
			if failedBetween && r.at.Before(due) {
				t.Errorf("fetch at %v before the refresh time %v", r.at.Sub(t0), due.Sub(t0))
			}
		}
		prevOK = r
	}
}

// assertBackoff checks the retries of an outage: 1, 2, 4, … minutes apart, capped at an hour, and a success
// within the hour after the responder came back. Each retry is armed when the previous answer arrived, so the
// gaps between answers are the backoff plus the latency.
func assertBackoff(t *testing.T, reqs []request, from, to time.Time, latency time.Duration) {
	t.Helper()
	var failed []time.Time
	for _, r := range reqs {
		if r.err != nil && !r.at.Before(from) && r.at.Before(to) {
			failed = append(failed, r.at)
		}
	}
	if len(failed) < 8 {
		t.Fatalf("%d failed fetches in the outage, want the backoff sequence", len(failed))
	}
	want := time.Minute
	for i := 1; i < len(failed); i++ {
		if gap := failed[i].Sub(failed[i-1]); gap != want+latency {
			t.Errorf("retry %d came %v after the previous one, want %v", i, gap, want+latency)
		}
		want = min(2*want, time.Hour)
	}
	if ok := firstRequestAfter(reqs, to); ok.Sub(to) > time.Hour+latency {
		t.Errorf("first fetch after the outage came %v after it ended", ok.Sub(to))
	}
}

func firstRequestAfter(reqs []request, t time.Time) time.Time {
	for _, r := range reqs {
		if r.err == nil && !r.at.Before(t) {
			return r.at
		}
	}
	return time.Time{}
}

// logged reports whether a JSON log line has the level, the event and (when not empty) the status.
func logged(t *testing.T, logs, level, event, status string) bool {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		if line["level"] == level && line["event"] == event && (status == "" || line["status"] == status) {
			return true
		}
	}
	return false
}

// weekFake adapts the in-process fake to weekResponder.
type weekFake struct{ *fakeResponder }

func (f weekFake) setOutage(on bool) {
	if on {
		f.setDown(outage)
	} else {
		f.setDown(nil)
	}
}
func (f weekFake) latency() time.Duration { return f.fakeResponder.latency }
func (f weekFake) outageReason() string   { return "http_503" }

// pkiResponder is testpki's fake responder fetched by the real ocspfetch.Client. The client's transport calls
// the responder's HTTP handler in process, in the caller's goroutine, so everything runs on synctest's clock
// (the responder reads it through ResponderOptions.Now). It records every exchange.
type pkiResponder struct {
	*ocspfetch.Client
	r     *testpki.Responder
	delay time.Duration
	exchanges
}

func newPKIResponder(t *testing.T, ca *testpki.CA, validity, delay time.Duration) *pkiResponder {
	p := &pkiResponder{delay: delay}
	// The responder's own listener is not used: its goroutines live outside the bubble.
	p.r = testpki.NewResponder(t, ca, testpki.ResponderOptions{Now: time.Now, Validity: validity})
	p.Client = &ocspfetch.Client{Transport: p}
	return p
}

func (p *pkiResponder) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case <-time.After(p.delay):
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	rec := httptest.NewRecorder()
	p.r.Server.Config.Handler.ServeHTTP(rec, req)
	res := rec.Result()
	res.Request = req
	now := time.Now()
	if res.StatusCode != http.StatusOK {
		p.record(request{at: now, err: &ocspfetch.HTTPError{URL: req.URL.String(), StatusCode: res.StatusCode}}, nil)
		return res, nil
	}
	body := rec.Body.Bytes()
	parsed, err := ocsp.ParseResponse(body, nil)
	if err != nil {
		p.record(request{at: now, err: err}, nil)
		return res, nil
	}
	sent := issued{raw: bytes.Clone(body), serial: parsed.SerialNumber.String(), thisUpdate: parsed.ThisUpdate,
		nextUpdate: parsed.NextUpdate, status: ocspwire.Status(parsed.Status)}
	p.record(request{at: now, serial: sent.serial, thisUpdate: sent.thisUpdate, nextUpdate: sent.nextUpdate}, &sent)
	return res, nil
}

func (p *pkiResponder) Fetch(ctx context.Context, leaf, issuer *x509.Certificate) (*ocspfetch.Response, error) {
	return p.Client.Fetch(ctx, leaf, issuer)
}

func (p *pkiResponder) setOutage(on bool) {
	if on {
		p.r.Fail(testpki.Fault500)
	} else {
		p.r.Fail(testpki.FaultNone)
	}
}
func (p *pkiResponder) revoke(serial *big.Int, at time.Time) { p.r.Revoke(serial, at, 1) }
func (p *pkiResponder) latency() time.Duration               { return p.delay }
func (p *pkiResponder) outageReason() string                 { return "http_500" }
