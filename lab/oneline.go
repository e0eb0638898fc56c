package lab

import (
	"crypto/x509/pkix"
	"fmt"
	"strings"
)

// shortNames are OpenSSL's short names for the attributes a lab meets.
var shortNames = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.4":                    "SN",
	"2.5.4.5":                    "serialNumber",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.9":                    "street",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.12":                   "title",
	"2.5.4.42":                   "GN",
	"1.2.840.113549.1.9.1":       "emailAddress",
	"0.9.2342.19200300.100.1.1":  "UID",
	"0.9.2342.19200300.100.1.25": "DC",
}

// onelineName renders a certificate's parsed name as X509_NAME_oneline does, the form of index.txt's last
// column: "/O=staple lab/CN=leaf.test". Its attributes come in certificate order (pkix.Name.Names, which
// lists those of a multi-valued RDN one after the other, as X509_NAME_oneline does). Bytes outside
// printable ASCII are written \xHH.
func onelineName(n pkix.Name) string {
	var b strings.Builder
	for _, atv := range n.Names {
		name, ok := shortNames[atv.Type.String()]
		if !ok {
			name = atv.Type.String()
		}
		b.WriteString("/" + name + "=")
		value := fmt.Sprint(atv.Value)
		for i := 0; i < len(value); i++ {
			if c := value[i]; c < 0x20 || c > 0x7e {
				fmt.Fprintf(&b, "\\x%02X", c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}
