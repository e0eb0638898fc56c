package ocspwire

import (
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Status is the certStatus of a SingleResponse (RFC 6960 §4.2.1). The values match
// golang.org/x/crypto/ocsp; the zero value is Good.
type Status int

// The certificate statuses.
const (
	Good    Status = 0
	Revoked Status = 1
	Unknown Status = 2
)

var statusNames = [...]string{Good: "good", Revoked: "revoked", Unknown: "unknown"}

// String returns "good", "revoked" or "unknown", and "invalid" for any other value.
func (s Status) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "invalid"
}

// ResponseStatus is an OCSPResponseStatus (RFC 6960 §4.2.1). Every value but Successful, the zero value,
// travels unsigned and without responseBytes.
type ResponseStatus int

// The response statuses; 4 is not used.
const (
	Successful       ResponseStatus = 0
	MalformedRequest ResponseStatus = 1
	InternalError    ResponseStatus = 2
	TryLater         ResponseStatus = 3
	SigRequired      ResponseStatus = 5
	Unauthorized     ResponseStatus = 6
)

// responseStatusNames are the names OpenSSL prints (OCSP_response_status_str).
var responseStatusNames = [...]string{Successful: "successful", MalformedRequest: "malformedrequest",
	InternalError: "internalerror", TryLater: "trylater", SigRequired: "sigrequired", Unauthorized: "unauthorized"}

// String returns the name OpenSSL prints for s ("successful", "malformedrequest", "internalerror",
// "trylater", "sigrequired", "unauthorized"), and "unknown" for a value RFC 6960 does not define.
func (s ResponseStatus) String() string {
	if s >= 0 && int(s) < len(responseStatusNames) && responseStatusNames[s] != "" {
		return responseStatusNames[s]
	}
	return "unknown"
}

// StatusError is what ParseResponse returns for a response whose responseStatus is not successful: Status
// is never Successful in one it returns.
type StatusError struct {
	Status ResponseStatus
}

func (e *StatusError) Error() string { return "ocspwire: responseStatus " + e.Status.String() }

// ErrorResponse returns the DER OCSPResponse carrying only responseStatus s: SEQUENCE { ENUMERATED s }.
func ErrorResponse(s ResponseStatus) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1Enum(int64(s)) })
	return b.BytesOrPanic()
}
