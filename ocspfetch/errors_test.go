package ocspfetch_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"staple/ocspfetch"
)

func TestReasonAndTransient(t *testing.T) {
	tests := []struct {
		err       error
		reason    string
		transient bool
	}{
		{nil, "ok", false},
		{&ocspfetch.HTTPError{StatusCode: 503}, "http_503", true},
		{&ocspfetch.HTTPError{StatusCode: 429}, "http_429", true},
		{&ocspfetch.HTTPError{StatusCode: 404}, "http_404", false},
		{&ocspfetch.ResponderStatusError{Status: 3}, "try_later", true},
		{&ocspfetch.ResponderStatusError{Status: 2}, "internal_error", true},
		{&ocspfetch.ResponderStatusError{Status: 6}, "unauthorized", false},
		{&ocspfetch.ResponderStatusError{Status: 4}, "malformed", false},
		{fmt.Errorf("x: %w", ocspfetch.ErrBadSignature), "bad_signature", false},
		{fmt.Errorf("x: %w", ocspfetch.ErrExpired), "expired", true},
		{fmt.Errorf("x: %w", ocspfetch.ErrNoNextUpdate), "no_next_update", false},
		{&ocspfetch.URLError{URL: "u", Err: context.DeadlineExceeded}, "timeout", true},
		{&ocspfetch.FetchError{Attempts: []*ocspfetch.URLError{
			{URL: "a", Err: &net.OpError{Op: "dial", Err: errors.New("refused")}},
			{URL: "b", Err: ocspfetch.ErrBadSignature},
		}}, "connection", true},
		{errors.New("something else"), "other", true},
	}
	for _, tc := range tests {
		name := "nil"
		if tc.err != nil {
			name = tc.err.Error()
		}
		t.Run(name, func(t *testing.T) {
			if got := ocspfetch.Reason(tc.err); got != tc.reason {
				t.Errorf("Reason = %q, want %q", got, tc.reason)
			}
			if got := ocspfetch.Transient(tc.err); got != tc.transient {
				t.Errorf("Transient = %v, want %v", got, tc.transient)
			}
		})
	}
}
