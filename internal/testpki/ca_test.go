package testpki

import (
	"bytes"
	"crypto/x509"
	"os"
	"testing"
)

func TestHierarchyVerifies(t *testing.T) {
	for _, kt := range []KeyType{ECDSAP256, RSA2048, Ed25519} {
		t.Run(kt.String(), func(t *testing.T) {
			root := NewRoot(t, "Test Root "+kt.String(), kt)
			inter := root.NewIntermediate(t, "Test Issuing CA", kt)
			leaf := inter.Issue(t, LeafOptions{KeyType: kt, OCSPURLs: []string{"http://a.test", "http://b.test"}, MustStaple: true})
			if len(leaf.Chain) != 2 || leaf.Chain[0] != leaf.Cert || leaf.Chain[1] != inter.Cert {
				t.Fatalf("chain = %d certificates, want leaf then intermediate", len(leaf.Chain))
			}
			inters := x509.NewCertPool()
			inters.AddCert(inter.Cert)
			_, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: root.Pool(), Intermediates: inters, CurrentTime: Epoch(), DNSName: "leaf.test"})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got := leaf.Cert.OCSPServer; len(got) != 2 || got[1] != "http://b.test" {
				t.Errorf("OCSPServer = %q", got)
			}
			if leaf.Cert.SerialNumber.Int64() != firstSerial || inter.Issued(leaf.Cert.SerialNumber) != leaf.Cert {
				t.Errorf("serial %v not recorded as the first of its CA", leaf.Cert.SerialNumber)
			}
			found := false
			for _, e := range leaf.Cert.Extensions {
				// id-pe-tlsfeature, SEQUENCE { INTEGER 5 (status_request) }
				found = found || e.Id.String() == "1.3.6.1.5.5.7.1.24" && bytes.Equal(e.Value, []byte{0x30, 0x03, 0x02, 0x01, 0x05})
			}
			if !found {
				t.Error("no Must-Staple extension")
			}
			tc := leaf.TLSCertificate()
			if len(tc.Certificate) != 2 || tc.Leaf != leaf.Cert {
				t.Error("TLSCertificate does not hold the chain")
			}
		})
	}
}

func TestKeysDeterministicAndDistinct(t *testing.T) {
	a := NewRoot(t, "Root A", RSA2048)
	b := NewRoot(t, "Root A", RSA2048)
	if !bytes.Equal(a.Cert.RawSubjectPublicKeyInfo, b.Cert.RawSubjectPublicKeyInfo) {
		t.Error("the same name gave two RSA keys")
	}
	e1, e2 := NewRoot(t, "Root E", ECDSAP256), NewRoot(t, "Root E", ECDSAP256)
	if !bytes.Equal(e1.Cert.RawSubjectPublicKeyInfo, e2.Cert.RawSubjectPublicKeyInfo) {
		t.Error("the same name gave two ECDSA keys")
	}
	// Every CA and signer of one hierarchy, and unrelated roots made from it, get their own key.
	seen := map[string]string{}
	add := func(name string, c *x509.Certificate) {
		if prev, ok := seen[string(c.RawSubjectPublicKeyInfo)]; ok {
			t.Errorf("%s shares its key with %s", name, prev)
		}
		seen[string(c.RawSubjectPublicKeyInfo)] = name
	}
	add("root", a.Cert)
	for i := range 4 {
		inter := a.NewIntermediate(t, "Inter "+string(rune('A'+i)), RSA2048)
		add(inter.Cert.Subject.CommonName, inter.Cert)
		s := inter.NewSigner(t, SignerOptions{KeyType: RSA2048})
		add(s.Cert.Subject.CommonName, s.Cert)
		o := a.NewUnrelatedRoot(t, "Other "+string(rune('A'+i)), RSA2048)
		add(o.Cert.Subject.CommonName, o.Cert)
	}
}

func TestSignerOptions(t *testing.T) {
	ca := NewRoot(t, "Signer Root", ECDSAP256)
	s := ca.NewSigner(t, SignerOptions{NoCheck: true})
	if len(s.Cert.ExtKeyUsage) != 1 || s.Cert.ExtKeyUsage[0] != x509.ExtKeyUsageOCSPSigning {
		t.Errorf("EKU = %v", s.Cert.ExtKeyUsage)
	}
	if err := s.Cert.CheckSignatureFrom(ca.Cert); err != nil {
		t.Errorf("signer not signed by its CA: %v", err)
	}
	noEKU := ca.NewSigner(t, SignerOptions{NoEKU: true})
	for _, u := range noEKU.Cert.ExtKeyUsage {
		if u == x509.ExtKeyUsageOCSPSigning {
			t.Error("NoEKU signer has OCSPSigning")
		}
	}
	if !s.Cert.NotAfter.After(Epoch()) || !s.Cert.NotBefore.Before(Epoch()) {
		t.Errorf("signer not valid at Epoch: %v–%v", s.Cert.NotBefore, s.Cert.NotAfter)
	}
}

func TestWriteFiles(t *testing.T) {
	ca := NewRoot(t, "Files Root", ECDSAP256)
	leaf := ca.Issue(t, LeafOptions{DNSNames: []string{"files.test"}})
	certFile, keyFile := leaf.WriteFiles(t, t.TempDir())
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", st.Mode(), err)
	}
	data, err := os.ReadFile(certFile)
	if err != nil || !bytes.Equal(data, leaf.ChainPEM()) {
		t.Fatalf("cert file: %v", err)
	}
}

func TestSameNamesDistinctKeys(t *testing.T) {
	for _, kt := range []KeyType{ECDSAP256, RSA2048, Ed25519} {
		a := NewRoot(t, "Same", kt)
		b := a.NewUnrelatedRoot(t, "Same", kt)
		ia, ib := a.NewIntermediate(t, "Issuing", kt), b.NewIntermediate(t, "Issuing", kt)
		if bytes.Equal(a.Cert.RawSubjectPublicKeyInfo, b.Cert.RawSubjectPublicKeyInfo) ||
			bytes.Equal(ia.Cert.RawSubjectPublicKeyInfo, ib.Cert.RawSubjectPublicKeyInfo) {
			t.Errorf("%v: same-named CAs of one hierarchy share a key", kt)
		}
	}
}
