package webhooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// transport sends requests to the API for the Client and for its token
// source: the base URL, the User-Agent, the retrying HTTP client and the
// per-attempt limit they share. It knows neither of them: both call it, and it
// calls back into neither.
type transport struct {
	baseURL   string // without a trailing slash
	userAgent string
	http      *retryablehttp.Client
	timeout   string // the per-attempt limit and where it is set, for error messages
}

// newTransport builds the transport a clientConfig describes. hc's Timeout is
// the shorter of its own and cfg.timeout; hc is the caller's copy.
func newTransport(cfg *clientConfig, hc *http.Client) *transport {
	timeout := fmt.Sprintf("%s (WithTimeout)", cfg.timeout)
	if hc.Timeout <= 0 || cfg.timeout <= hc.Timeout {
		hc.Timeout = cfg.timeout
	} else {
		timeout = fmt.Sprintf("%s (the Timeout of the WithHTTPClient client)", hc.Timeout)
	}
	rc := &retryablehttp.Client{
		HTTPClient:   hc,
		RetryWaitMin: cfg.retryWaitMin,
		RetryWaitMax: cfg.retryWaitMax,
		RetryMax:     cfg.retryMax,
		CheckRetry:   checkRetry,
		Backoff:      backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	// A nil Logger in a Client built by hand (not by retryablehttp.NewClient,
	// whose default writes to stderr) logs nothing and costs nothing per request.
	if _, silent := cfg.logger.Handler().(discardHandler); !silent {
		rc.Logger = slogAdapter{cfg.logger}
	}
	return &transport{baseURL: cfg.baseURL, userAgent: cfg.userAgent, http: rc, timeout: timeout}
}

// send makes one logical request to target (a full URL) under policy;
// go-retryablehttp repeats it as the policy allows. payload, when not nil, is
// sent as contentType; token, when not empty, as a bearer token.
func (t *transport) send(ctx context.Context, policy retryPolicy, method, target, contentType string, payload []byte, token string) (*http.Response, error) {
	ctx = context.WithValue(ctx, retryPolicyKey{}, policy)
	var body any
	if payload != nil {
		body = payload
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", t.userAgent)
	if payload != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := t.http.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			return nil, fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return nil, err
	}
	return resp, nil
}

// explainTimeout names the per-attempt limit in an error it caused; the
// caller's own deadline, already named by its context error, is left alone.
func (t *transport) explainTimeout(ctx context.Context, err error) error {
	var netErr net.Error
	if ctx.Err() == nil && errors.As(err, &netErr) && netErr.Timeout() {
		return fmt.Errorf("no complete answer within %s: %w", t.timeout, err)
	}
	return err
}

// retry policies, carried in the request context to checkRetry.
type retryPolicy int

const (
	retrySafe        retryPolicy = iota // the call can be repeated without harm
	retryUnreachable                    // only when the server cannot have seen it
)

type retryPolicyKey struct{}

// checkRetry decides for go-retryablehttp whether an attempt is worth repeating.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	policy, _ := ctx.Value(retryPolicyKey{}).(retryPolicy)
	if err != nil {
		if policy == retryUnreachable {
			// A failed dial never reached the server; anything later may have.
			var opErr *net.OpError
			return errors.As(err, &opErr) && opErr.Op == "dial", nil
		}
		return retryablehttp.DefaultRetryPolicy(ctx, nil, err)
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		return true, nil
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return policy == retrySafe, nil
	}
	return false, nil
}

// backoff waits as Retry-After says, up to max, or else exponentially from min
// with jitter, so that clients that failed together do not retry together.
func backoff(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil {
		if d := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); d > 0 {
			return clampDuration(d, max)
		}
	}
	d := min
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	d = clampDuration(d, max)
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(half+1)
}

func clampDuration(d, max time.Duration) time.Duration {
	if d > max || d < 0 {
		return max
	}
	return d
}

// cappedReader reads at most left bytes, and fails past them, so that a huge
// or endless answer (endless whitespace included) costs no more memory than the
// limit.
type cappedReader struct {
	r        io.Reader
	left     int64
	exceeded bool
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.exceeded {
		return 0, ErrResponseTooLarge
	}
	// One byte past the limit tells an answer of exactly the limit from a longer one.
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	if int64(n) > c.left {
		c.exceeded = true
		return 0, ErrResponseTooLarge
	}
	c.left -= int64(n)
	return n, err
}

// drain reads what is left of a body, so the connection can be reused, and closes it.
func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// slogAdapter gives go-retryablehttp's log lines to slog at debug level; they
// name the method and URL, never headers.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Error(msg string, kv ...any) { a.log(msg, kv) }
func (a slogAdapter) Info(msg string, kv ...any)  { a.log(msg, kv) }
func (a slogAdapter) Debug(msg string, kv ...any) { a.log(msg, kv) }
func (a slogAdapter) Warn(msg string, kv ...any)  { a.log(msg, kv) }

func (a slogAdapter) log(msg string, kv []any) {
	if a.l.Enabled(context.Background(), slog.LevelDebug) {
		a.l.Debug("cakemail: "+msg, kv...)
	}
}

// discardHandler is a silent slog handler (slog.DiscardHandler needs Go 1.24).
type discardHandler struct{}

func (discardHandler) Enabled(context.Context, slog.Level) bool  { return false }
func (discardHandler) Handle(context.Context, slog.Record) error { return nil }
func (d discardHandler) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discardHandler) WithGroup(string) slog.Handler           { return d }
