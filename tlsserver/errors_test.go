package tlsserver

import (
	"crypto/tls"
	"errors"
	"net"
	"testing"
)

// remoteAlert returns what a crypto/tls server's Handshake returns when the client's first record is a fatal
// alert with code a: crypto/tls's own "remote error", around its unexported alert type.
func remoteAlert(a uint8) error {
	client, server := net.Pipe()
	defer server.Close()
	go func() {
		client.Write([]byte{21, 3, 3, 0, 2, 2, a}) // an alert record (TLS 1.2, 2 bytes): fatal, code a
		client.Close()
	}()
	return tls.Server(server, &tls.Config{}).Handshake()
}

// TestPeerAlertEveryCode checks that peerAlert recovers the code of crypto/tls's remote error for every
// alert crypto/tls names (close_notify excepted: crypto/tls reports it as io.EOF), and for one it does not.
func TestPeerAlertEveryCode(t *testing.T) {
	tests := []struct {
		name string
		code uint8
	}{
		{"unexpected_message", 10}, {"bad_record_mac", 20}, {"decryption_failed", 21}, {"record_overflow", 22},
		{"decompression_failure", 30}, {"handshake_failure", 40}, {"bad_certificate", 42},
		{"unsupported_certificate", 43}, {"certificate_revoked", 44}, {"certificate_expired", 45},
		{"certificate_unknown", 46}, {"illegal_parameter", 47}, {"unknown_ca", 48}, {"access_denied", 49},
		{"decode_error", 50}, {"decrypt_error", 51}, {"export_restriction", 60}, {"protocol_version", 70},
		{"insufficient_security", 71}, {"internal_error", 80}, {"inappropriate_fallback", 86},
		{"user_canceled", 90}, {"no_renegotiation", 100}, {"missing_extension", 109},
		{"unsupported_extension", 110}, {"certificate_unobtainable", 111}, {"unrecognized_name", 112},
		{"bad_certificate_status_response", 113}, {"bad_certificate_hash_value", 114},
		{"unknown_psk_identity", 115}, {"certificate_required", 116}, {"no_application_protocol", 120},
		{"ech_required", 121}, {"unassigned", 255},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := remoteAlert(tt.code)
			a, ok := peerAlert(err)
			if !ok || a.Alert != tls.AlertError(tt.code) {
				t.Fatalf("peerAlert(%v) = %v, %v; want alert %d", err, a, ok, tt.code)
			}
			if !errors.Is(a, err) {
				t.Error("the *PeerAlertError does not unwrap to crypto/tls's error")
			}
		})
	}
}

// TestPeerAlertNotAnAlert checks that what is not crypto/tls's remote error with an alert's text is not an
// alert.
func TestPeerAlertNotAnAlert(t *testing.T) {
	tests := map[string]error{
		"unknown text":       &net.OpError{Op: "remote error", Err: errors.New("tls: no such alert")},
		"no inner error":     &net.OpError{Op: "remote error"},
		"another operation":  &net.OpError{Op: "read", Err: tls.AlertError(48)},
		"not a *net.OpError": tls.AlertError(48),
		"close_notify":       remoteAlert(0),
	}
	for name, err := range tests {
		if a, ok := peerAlert(err); ok {
			t.Errorf("%s: peerAlert(%v) = %v, want not an alert", name, err, a)
		}
	}
}
