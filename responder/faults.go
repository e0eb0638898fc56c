package responder

import (
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"staple/ocspwire"
)

// FaultKind names one way the responder misbehaves on purpose.
type FaultKind string

// Faults the Responder produces itself, at the HTTP level or as an unsigned status.
const (
	FaultDelay            FaultKind = "delay"              // wait Fault.Delay (default 5 s), then answer normally
	FaultHTTP500          FaultKind = "http500"            // HTTP 500, text body
	FaultHTTP503          FaultKind = "http503"            // HTTP 503 with Retry-After: Fault.RetryAfter (default 30 s)
	FaultGarbage          FaultKind = "garbage"            // HTTP 200, application/ocsp-response, bytes that are not DER
	FaultEmpty            FaultKind = "empty"              // HTTP 200, application/ocsp-response, empty body
	FaultDrop             FaultKind = "drop"               // close the connection without answering
	FaultRedirectLoop     FaultKind = "redirect-loop"      // redirect to the same URL, forever
	FaultOversize         FaultKind = "oversize"           // HTTP 200 with Fault.Size bytes (default 4 MiB), no Content-Length
	FaultWrongContentType FaultKind = "wrong-content-type" // the right response as text/html
	FaultMalformed        FaultKind = "malformed"          // malformedRequest
	FaultInternalError    FaultKind = "internal-error"     // internalError
	FaultTryLater         FaultKind = "try-later"          // tryLater
	FaultSigRequired      FaultKind = "sig-required"       // sigRequired
	FaultUnauthorized     FaultKind = "unauthorized"       // unauthorized
)

// Faults the Source produces (it signs; the responder never does): Request.Fault carries them.
const (
	FaultExpired      FaultKind = "expired"        // thisUpdate and nextUpdate in the past
	FaultNotYetValid  FaultKind = "not-yet-valid"  // thisUpdate an hour in the future
	FaultNoNextUpdate FaultKind = "no-next-update" // no nextUpdate, as openssl ocsp without -ndays/-nmin
	FaultWrongSigner  FaultKind = "wrong-signer"   // signed by a key the issuer never authorized
	FaultBadSignature FaultKind = "bad-signature"  // a signature that does not verify
	FaultWrongSerial  FaultKind = "wrong-serial"   // a SingleResponse for another serial
	FaultWrongNonce   FaultKind = "wrong-nonce"    // a nonce other than the one asked for
)

// FaultKinds lists every kind, in the order the manual shows them.
var FaultKinds = []FaultKind{
	FaultDelay, FaultHTTP500, FaultHTTP503, FaultGarbage, FaultEmpty, FaultDrop, FaultRedirectLoop, FaultOversize,
	FaultWrongContentType, FaultMalformed, FaultInternalError, FaultTryLater, FaultSigRequired, FaultUnauthorized,
	FaultExpired, FaultNotYetValid, FaultNoNextUpdate, FaultWrongSigner, FaultBadSignature, FaultWrongSerial,
	FaultWrongNonce,
}

// Signed reports whether the Source, not the Responder, produces faults of kind k.
func (k FaultKind) Signed() bool {
	switch k {
	case FaultExpired, FaultNotYetValid, FaultNoNextUpdate, FaultWrongSigner, FaultBadSignature, FaultWrongSerial,
		FaultWrongNonce:
		return true
	}
	return false
}

// Defaults for faults whose parameter is not given.
const (
	DefaultFaultDelay      = 5 * time.Second
	DefaultFaultRetryAfter = 30 * time.Second
	DefaultFaultSize       = 4 << 20
)

// Fault is one misbehaviour and its parameter. The zero Fault means "behave".
type Fault struct {
	Kind FaultKind
	// Delay is how long FaultDelay waits; zero means DefaultFaultDelay.
	Delay time.Duration
	// RetryAfter is the Retry-After of FaultHTTP503; zero means DefaultFaultRetryAfter.
	RetryAfter time.Duration
	// Size is the body length of FaultOversize; zero means DefaultFaultSize.
	Size int64
	// Times is how many requests the fault applies to before it clears itself; zero means until cleared.
	Times int
}

// IsZero reports whether f is the zero Fault.
func (f Fault) IsZero() bool { return f == Fault{} }

// ErrBadFault is returned by ParseFault and ParseFaultRule for text that is not a fault.
var ErrBadFault = errors.New("responder: bad fault")

// ParseFault parses KIND[=ARG][,times=N]: "delay=2s", "http503=10s", "oversize=1048576", "expired,times=1".
// ARG is a duration for delay and http503 (Retry-After), a byte count for oversize, and not allowed otherwise.
func ParseFault(s string) (Fault, error) {
	s = strings.TrimSpace(s)
	head, opts, _ := strings.Cut(s, ",")
	kind, arg, hasArg := strings.Cut(head, "=")
	f := Fault{Kind: FaultKind(strings.ToLower(kind))}
	if !slices.Contains(FaultKinds, f.Kind) {
		return Fault{}, fmt.Errorf("%w: unknown kind %q (want one of %s)", ErrBadFault, kind, kindList())
	}
	if hasArg {
		var err error
		switch f.Kind {
		case FaultDelay:
			f.Delay, err = positiveDuration(arg)
		case FaultHTTP503:
			f.RetryAfter, err = positiveDuration(arg)
		case FaultOversize:
			f.Size, err = strconv.ParseInt(arg, 10, 64)
			if err == nil && (f.Size <= 0 || f.Size > 1<<30) {
				err = errors.New("size out of range 1..1 GiB")
			}
		default:
			err = errors.New("takes no argument")
		}
		if err != nil {
			return Fault{}, fmt.Errorf("%w: %s: %q: %v", ErrBadFault, f.Kind, arg, err)
		}
	}
	if opts != "" {
		n, ok := strings.CutPrefix(opts, "times=")
		times, err := strconv.Atoi(n)
		if !ok || err != nil || times < 1 {
			return Fault{}, fmt.Errorf("%w: %q: want times=N with N ≥ 1 after the comma", ErrBadFault, opts)
		}
		f.Times = times
	}
	return f, nil
}

func positiveDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil && d <= 0 {
		err = errors.New("must be positive")
	}
	return d, err
}

func kindList() string {
	names := make([]string, len(FaultKinds))
	for i, k := range FaultKinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// String returns f in the form ParseFault reads.
func (f Fault) String() string {
	if f.IsZero() {
		return "none"
	}
	s := string(f.Kind)
	switch {
	case f.Kind == FaultDelay && f.Delay != 0:
		s += "=" + f.Delay.String()
	case f.Kind == FaultHTTP503 && f.RetryAfter != 0:
		s += "=" + f.RetryAfter.String()
	case f.Kind == FaultOversize && f.Size != 0:
		s += "=" + strconv.FormatInt(f.Size, 10)
	}
	if f.Times > 0 {
		s += ",times=" + strconv.Itoa(f.Times)
	}
	return s
}

func (f Fault) delay() time.Duration      { return orDefault(f.Delay, DefaultFaultDelay) }
func (f Fault) retryAfter() time.Duration { return orDefault(f.RetryAfter, DefaultFaultRetryAfter) }
func (f Fault) size() int64 {
	if f.Size > 0 {
		return f.Size
	}
	return DefaultFaultSize
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// FaultRule is a fault and the serial it applies to; a nil Serial means every request.
type FaultRule struct {
	Serial *big.Int
	Fault  Fault
}

// ParseFaultRule parses [SERIAL:]FAULT, the form of the --fault flag: "delay=2s" for every request,
// "1000:drop" for serial 0x1000 only. SERIAL is hex as in index.txt; "all" or "*" means every request.
func ParseFaultRule(s string) (FaultRule, error) {
	target, spec, ok := strings.Cut(s, ":")
	if !ok {
		spec, target = target, "all"
	}
	serial, err := ParseSerial(target)
	if err != nil {
		return FaultRule{}, err
	}
	f, err := ParseFault(spec)
	if err != nil {
		return FaultRule{}, err
	}
	return FaultRule{Serial: serial, Fault: f}, nil
}

// ParseSerial parses a fault target: "all" or "*" (nil: every request), or a serial in hex, with an optional
// 0x prefix and colons between bytes.
func ParseSerial(s string) (*big.Int, error) {
	s = strings.TrimSpace(s)
	if s == "all" || s == "*" || s == "" {
		return nil, nil
	}
	hexDigits := strings.ReplaceAll(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"), ":", "")
	n, ok := new(big.Int).SetString(hexDigits, 16)
	if !ok || n.Sign() < 0 || len(hexDigits) > 80 {
		return nil, fmt.Errorf("%w: %q is not a serial in hex (or all)", ErrBadFault, s)
	}
	return n, nil
}

// String returns r in the form ParseFaultRule reads.
func (r FaultRule) String() string {
	if r.Serial == nil {
		return r.Fault.String()
	}
	return SerialKey(r.Serial) + ":" + r.Fault.String()
}

// Faults is the set of active faults: at most one per serial and one for every request. A fault for a
// request's serial wins over the one for every request. The zero Faults has none; it is safe for concurrent
// use, and changes apply to the next request.
type Faults struct {
	mu       sync.Mutex
	all      Fault
	bySerial map[string]FaultRule
}

// Set makes f apply to serial (nil: every request), replacing what was there. A zero f clears it.
func (fs *Faults) Set(serial *big.Int, f Fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if serial == nil {
		fs.all = f
		return
	}
	if f.IsZero() {
		delete(fs.bySerial, SerialKey(serial))
		return
	}
	if fs.bySerial == nil {
		fs.bySerial = make(map[string]FaultRule)
	}
	fs.bySerial[SerialKey(serial)] = FaultRule{Serial: new(big.Int).Set(serial), Fault: f}
}

// Reset clears every fault.
func (fs *Faults) Reset() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.all = Fault{}
	fs.bySerial = nil
}

// Rules returns the active faults, the one for every request first, then by serial.
func (fs *Faults) Rules() []FaultRule {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var rules []FaultRule
	if !fs.all.IsZero() {
		rules = append(rules, FaultRule{Fault: fs.all})
	}
	keys := make([]string, 0, len(fs.bySerial))
	for k := range fs.bySerial {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c := len(a) - len(b); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, k := range keys {
		rules = append(rules, fs.bySerial[k])
	}
	return rules
}

// take returns the fault that applies to a request for ids, counting one use of it.
func (fs *Faults) take(ids []ocspwire.CertID) Fault {
	if fs == nil {
		return Fault{}
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, id := range ids {
		if len(fs.bySerial) == 0 {
			break
		}
		key := SerialKey(id.Serial)
		if r, ok := fs.bySerial[key]; ok {
			if r.Fault.Times > 0 {
				r.Fault.Times--
				if r.Fault.Times == 0 {
					delete(fs.bySerial, key)
				} else {
					fs.bySerial[key] = r
				}
			}
			return withoutCount(r.Fault)
		}
	}
	f := fs.all
	if f.Times > 0 {
		fs.all.Times--
		if fs.all.Times == 0 {
			fs.all = Fault{}
		}
	}
	return withoutCount(f)
}

func withoutCount(f Fault) Fault {
	f.Times = 0
	return f
}
