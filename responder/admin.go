package responder

import (
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxFaultBody caps the body of a PUT to the faults endpoint.
const maxFaultBody = 1 << 10

// serveFaults is the admin endpoint FaultsPath (documented on ServeHTTP).
func (rs *Responder) serveFaults(w http.ResponseWriter, r *http.Request) {
	if !rs.FaultAPI || rs.Faults == nil {
		http.NotFound(w, r)
		return
	}
	target, hasTarget := strings.CutPrefix(r.URL.Path, FaultsPath+"/")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if hasTarget {
			http.Error(w, "staple responder: GET "+FaultsPath+" lists every fault", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, rule := range rs.Faults.Rules() {
			fmt.Fprintln(w, rule)
		}
	case http.MethodPut:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFaultBody))
		if err != nil {
			http.Error(w, "staple responder: "+err.Error(), http.StatusBadRequest)
			return
		}
		var rule FaultRule
		if hasTarget {
			rule.Serial, err = ParseSerial(target)
			if err == nil {
				rule.Fault, err = ParseFault(string(body))
			}
		} else {
			rule, err = ParseFaultRule(strings.TrimSpace(string(body)))
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rs.Faults.Set(rule.Serial, rule.Fault)
		rs.Log.Info().Stringer("fault", rule).Msg("fault set")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, rule)
	case http.MethodDelete:
		if !hasTarget {
			rs.Faults.Reset()
			rs.Log.Info().Msg("faults cleared")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		serial, err := ParseSerial(target)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rs.Faults.Set(serial, Fault{})
		rs.Log.Info().Str("target", target).Msg("fault cleared")
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, PUT, DELETE")
		http.Error(w, "staple responder: use GET, PUT or DELETE on "+FaultsPath, http.StatusMethodNotAllowed)
	}
}
