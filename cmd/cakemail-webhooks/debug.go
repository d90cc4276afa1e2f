package main

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// debugTransport prints one line per HTTP exchange: method, path, status,
// duration and retry number. It prints no header, query or body, where
// tokens, passwords and signatures travel. With no writer it prints nothing
// and only counts retries, so that a failure can say how long it was retried.
type debugTransport struct {
	next http.RoundTripper
	w    io.Writer // nil: silent

	mu sync.Mutex
	// failed holds, per method and URL, the retry number of an exchange that
	// failed in a way the SDK retries. The SDK repeats a call at once, with the
	// same method and URL, and the command makes one call at a time, so the
	// next exchange of that method and URL is that call's next retry.
	failed  map[string]int
	retries int       // exchanges that were retries
	first   time.Time // start of the first exchange
}

func newDebugTransport(next http.RoundTripper, w io.Writer) *debugTransport {
	return &debugTransport{next: next, w: w, failed: map[string]int{}}
}

func (t *debugTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	key := req.Method + " " + req.URL.String()
	t.mu.Lock()
	retry, again := t.failed[key]
	if again {
		retry++
		t.retries++
	}
	delete(t.failed, key)
	if t.first.IsZero() {
		t.first = time.Now()
	}
	t.mu.Unlock()

	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	took := time.Since(start)
	if err != nil || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		t.mu.Lock()
		t.failed[key] = retry
		t.mu.Unlock()
	}
	if t.w == nil {
		return resp, err
	}
	var outcome string
	if err != nil {
		outcome = "error: " + err.Error()
	} else {
		outcome = resp.Status
	}
	fmt.Fprintf(t.w, "debug: %s %s -> %s in %s (retry %d)\n", req.Method, req.URL.EscapedPath(), outcome, took.Round(10*time.Microsecond), retry)
	return resp, err
}

// retried says how many retries there were and over how long, if any.
func (t *debugTransport) retried() (int, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.retries == 0 {
		return 0, 0
	}
	return t.retries, time.Since(t.first)
}
