package webhookstest

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// fault is what happens to one upcoming API call.
type fault struct {
	status     int           // answer with this status instead; 0: serve normally
	retryAfter time.Duration // sent as Retry-After with status
	delay      time.Duration // wait before serving
}

// FailNext makes the next n API calls (token calls included) answer status,
// with a Retry-After header when retryAfter is positive.
func (s *Server) FailNext(n, status int, retryAfter time.Duration) {
	s.addFaults(n, fault{status: status, retryAfter: retryAfter})
}

// DelayNext makes the next n API calls wait d before they are served.
func (s *Server) DelayNext(n int, d time.Duration) {
	s.addFaults(n, fault{delay: d})
}

func (s *Server) addFaults(n int, f fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, f)
	}
}

// intercept records every API call and applies the pending faults to it.
func (s *Server) intercept(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.UserAgent() == deliveryUserAgent {
			// A delivery sent to a fake's own address: answering it, on the
			// trigger route above all, would deliver again without end.
			writeDetail(w, http.StatusLoopDetected, detailError{Msg: "a webhookstest delivery cannot call a fake's API", Type: "fake"})
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		if log := s.cfg.logger; log != nil {
			// The path and query only: the token is in a header, credentials in the body.
			defer func() {
				attrs := []any{"status", sw.status(), "duration", time.Since(start).Round(time.Microsecond)}
				if r.URL.RawQuery != "" {
					attrs = append([]any{"query", r.URL.RawQuery}, attrs...)
				}
				log.Info(r.Method+" "+r.URL.Path, attrs...)
			}()
		}
		if strings.HasPrefix(r.URL.Path, "/_fake/") {
			next.ServeHTTP(sw, r)
			return
		}
		s.mu.Lock()
		s.requests = appendBounded(s.requests, s.cfg.logLimit, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery})
		var f fault
		if len(s.faults) > 0 {
			f = s.faults[0]
			s.faults = s.faults[1:]
		}
		s.mu.Unlock()
		if f.delay > 0 {
			select {
			case <-time.After(f.delay):
			case <-r.Context().Done():
				return
			case <-s.closed: // Close waits for handlers: do not make it wait out the delay
				return
			}
		}
		if f.status != 0 {
			if f.retryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.retryAfter.Seconds()))))
			}
			writeDetail(sw, f.status, detailError{Msg: "fault injected by webhookstest", Type: "fake"})
			return
		}
		next.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status a handler answered, for the log.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
