package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := map[string]time.Duration{
		"":     0,
		"7":    7 * time.Second,
		" 2 ":  2 * time.Second,
		"-3":   0,
		"soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	}
	for in, want := range cases {
		assert.Equal(t, want, parseRetryAfter(in, now), "%q", in)
	}
}

func TestRetryAfterSaturates(t *testing.T) {
	now := time.Now()
	// Seconds that overflow a Duration once multiplied (9223372037 s), wrap it
	// around to a small positive wait (18446744074 s), or overflow an int64.
	for _, v := range []string{"9223372037", "18446744074", "99999999999999999999999", "9223372036854775807"} {
		assert.Equal(t, time.Duration(math.MaxInt64), parseRetryAfter(v, now), v)
		resp := &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {v}}, Body: http.NoBody}
		assert.Equal(t, 30*time.Second, backoff(time.Second, 30*time.Second, 0, resp), "a huge Retry-After waits the cap: %s", v)
		assert.Positive(t, newAPIError("GET", "/webhooks", resp, now).RetryAfter, v)
	}
	assert.Equal(t, time.Duration(0), parseRetryAfter("-99999999999999999999999", now))
	assert.Equal(t, 9223372036*time.Second, parseRetryAfter("9223372036", now), "the largest that fits is exact")
}

func TestDefaultLimits(t *testing.T) {
	c, err := NewClient(WithAccessToken("t"))
	require.NoError(t, err)
	assert.Equal(t, 30*time.Second, c.tr.http.HTTPClient.Timeout)
	assert.Equal(t, int64(10<<20), c.maxBody)

	own := &http.Client{}
	c, err = NewClient(WithAccessToken("t"), WithHTTPClient(own))
	require.NoError(t, err)
	assert.Equal(t, 30*time.Second, c.tr.http.HTTPClient.Timeout, "a client without a timeout gets the default")
	assert.Zero(t, own.Timeout, "on a copy")
}

func TestBackoff(t *testing.T) {
	withHeader := func(v string) *http.Response {
		return &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {v}}}
	}
	assert.Equal(t, 5*time.Second, backoff(time.Millisecond, time.Minute, 0, withHeader("5")))
	assert.Equal(t, 10*time.Second, backoff(time.Millisecond, 10*time.Second, 0, withHeader("3600")), "capped at the max wait")
	for attempt := range 8 {
		d := backoff(100*time.Millisecond, 2*time.Second, attempt, nil)
		ceiling := min(100*time.Millisecond<<attempt, 2*time.Second)
		assert.GreaterOrEqual(t, d, ceiling/2, "attempt %d", attempt)
		assert.LessOrEqual(t, d, ceiling, "attempt %d", attempt)
	}
	assert.Equal(t, time.Duration(0), backoff(0, 0, 3, nil))
	late := backoff(time.Second, 30*time.Second, 200, nil)
	assert.True(t, late >= 15*time.Second && late <= 30*time.Second, "no overflow on late attempts: %s", late)
}

// TestTwentyGoroutinesAtExpiryRefreshOnce checks the refresh before expiry:
// calls that all find the token about to expire wait for one refresh.
func TestTwentyGoroutinesAtExpiryRefreshOnce(t *testing.T) {
	var mu sync.Mutex
	var grants []string
	release := make(chan struct{})
	var waiting atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			r.ParseForm()
			grant := r.PostForm.Get("grant_type")
			mu.Lock()
			grants = append(grants, grant)
			n := len(grants)
			mu.Unlock()
			if grant == "refresh_token" {
				waiting.Add(1)
				<-release
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":"a%d","token_type":"bearer","expires_in":3600,"refresh_token":"r%d","accounts":[1]}`, n, n)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": "x", "data": map[string]any{"id": "x", "authorization": r.Header.Get("Authorization")}})
	}))
	defer srv.Close()
	c, err := NewClient(WithBaseURL(srv.URL), WithCredentials("me@example.com", "pw"))
	require.NoError(t, err)
	ctx := context.Background()
	_, err = c.Get(ctx, "x")
	require.NoError(t, err)

	c.auth.mu.Lock()
	c.auth.renewAt = time.Now().Add(-time.Second)
	c.auth.mu.Unlock()

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Get(ctx, "x"); err != nil {
				errs <- err
			}
		}()
	}
	require.Eventually(t, func() bool { return waiting.Load() == 1 }, 5*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.Equal(t, []string{"password", "refresh_token"}, grants)
	token, err := c.auth.token(ctx)
	require.NoError(t, err)
	assert.Equal(t, "a2", token)
}

func TestRetryablehttpNeverWritesToStderr(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	stderr := os.Stderr
	os.Stderr = w
	defer func() { os.Stderr = stderr }()

	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		if calls.Add(1) == 1 {
			rw.WriteHeader(http.StatusBadGateway)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		io.WriteString(rw, `{"pagination":{},"data":[]}`)
	}))
	defer srv.Close()
	c, err := NewClient(WithBaseURL(srv.URL), WithAccessToken("t"), WithRetryWait(time.Millisecond, time.Millisecond))
	require.NoError(t, err)
	_, err = c.List(context.Background(), nil)
	require.NoError(t, err)
	os.Stderr = stderr
	w.Close()
	out, _ := io.ReadAll(r)
	assert.Empty(t, strings.TrimSpace(string(out)), "the default logger is silent")
	assert.Equal(t, int32(2), calls.Load(), "a retry happened, which retryablehttp would have logged")
}
