package ocspfetch_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"staple/internal/testpki"
	"staple/ocspfetch"
	"staple/ocspwire"
)

// exampleT stands in for the *testing.T that testpki wants, in examples.
var exampleT testing.TB = &testing.T{}

func ExampleVerify() {
	ca := testpki.NewRoot(exampleT, "Example CA", testpki.ECDSAP256)
	leaf := ca.Issue(exampleT, testpki.LeafOptions{})
	der := ca.Respond(exampleT, leaf.Cert, testpki.ResponseOptions{Status: ocspwire.Revoked, Reason: 1})

	r, err := ocspfetch.Verify(der, leaf.Cert, ca.Cert, testpki.Epoch(), ocspfetch.VerifyOptions{})
	if err != nil {
		fmt.Println("rejected:", ocspfetch.Reason(err))
		return
	}
	fmt.Println(r.Status, ocspwire.ReasonName(r.RevocationReason), r.NextUpdate.Format(time.RFC3339))

	// One day later the same bytes have expired.
	_, err = ocspfetch.Verify(der, leaf.Cert, ca.Cert, testpki.Epoch().Add(24*time.Hour), ocspfetch.VerifyOptions{})
	fmt.Println("a day later:", ocspfetch.Reason(err))
	// Output:
	// revoked keyCompromise 2026-01-01T23:00:00Z
	// a day later: expired
}

func ExampleClient_Fetch() {
	ca := testpki.NewRoot(exampleT, "Example CA", testpki.ECDSAP256)
	responder := testpki.NewResponder(exampleT, ca, testpki.ResponderOptions{})
	defer responder.Close()
	leaf := ca.Issue(exampleT, testpki.LeafOptions{OCSPURLs: []string{responder.URL}})

	client := &ocspfetch.Client{UserAgent: "staple/example", Now: testpki.Epoch}
	r, err := client.Fetch(context.Background(), leaf.Cert, ca.Cert)
	if err != nil {
		fmt.Println("failed:", ocspfetch.Reason(err), ocspfetch.Transient(err))
		return
	}
	fmt.Println(r.Status, r.HTTP.Method, r.SignerIsIssuer)
	fmt.Println("refresh at", ocspfetch.Policy{}.RefreshAt(r, testpki.Epoch(), nil).Format(time.RFC3339))
	// Output:
	// good GET true
	// refresh at 2026-01-01T12:00:00Z
}
