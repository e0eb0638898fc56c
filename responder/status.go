package responder

// Status is an OCSPResponseStatus (RFC 6960 §4.2.1). Every value but Successful travels unsigned, without
// responseBytes.
type Status int

const (
	Successful       Status = 0
	MalformedRequest Status = 1
	InternalError    Status = 2
	TryLater         Status = 3
	SigRequired      Status = 5
	Unauthorized     Status = 6
)

func (s Status) String() string {
	switch s {
	case Successful:
		return "successful"
	case MalformedRequest:
		return "malformedRequest"
	case InternalError:
		return "internalError"
	case TryLater:
		return "tryLater"
	case SigRequired:
		return "sigRequired"
	case Unauthorized:
		return "unauthorized"
	}
	return "invalid"
}

// ErrorResponse returns the DER OCSPResponse carrying only status s: SEQUENCE { ENUMERATED s }.
func ErrorResponse(s Status) []byte {
	return []byte{0x30, 0x03, 0x0a, 0x01, byte(s)}
}
