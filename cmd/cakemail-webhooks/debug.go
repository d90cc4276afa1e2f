package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// debugTransport prints one line per HTTP exchange: method, path, status,
// duration and retry number. It prints no header, query or body, where
// tokens, passwords and signatures travel.
type debugTransport struct {
	next http.RoundTripper
	w    io.Writer

	mu    sync.Mutex
	tries map[attemptKey]int
}

// attemptKey tells a retry from a new call: go-retryablehttp sends every
// attempt of one call with the same context and URL, and each SDK call has a
// context of its own.
type attemptKey struct {
	ctx         context.Context
	method, url string
}

func newDebugTransport(next http.RoundTripper, w io.Writer) *debugTransport {
	return &debugTransport{next: next, w: w, tries: map[attemptKey]int{}}
}

func (t *debugTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	key := attemptKey{req.Context(), req.Method, req.URL.String()}
	t.mu.Lock()
	retry := t.tries[key]
	t.tries[key] = retry + 1
	t.mu.Unlock()

	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	took := time.Since(start)
	outcome := ""
	if err != nil {
		outcome = "error: " + err.Error()
	} else {
		outcome = resp.Status
	}
	fmt.Fprintf(t.w, "debug: %s %s -> %s in %s (retry %d)\n", req.Method, req.URL.EscapedPath(), outcome, took.Round(10*time.Microsecond), retry)
	return resp, err
}
