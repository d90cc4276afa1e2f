package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// DefaultBaseURL is the Cakemail API.
const DefaultBaseURL = "https://api.cakemail.dev"

// Version is this SDK's version, sent in the default User-Agent.
const Version = "0.1.0"

// Client calls the Cakemail webhooks API. It is safe for concurrent use.
type Client struct {
	baseURL    string // without a trailing slash
	accountID  int    // 0: the user's own account
	accountErr error  // set by ForAccount with a bad id, returned by every call
	userAgent  string
	logger     *slog.Logger
	http       *retryablehttp.Client
	auth       *tokenSource
	timeout    string // the per-attempt limit and where it is set, for error messages
	maxBody    int64  // of a successful response
}

// Option configures a Client.
type Option func(*clientConfig) error

type clientConfig struct {
	accessToken        string
	username, password string
	baseURL            string
	httpClient         *http.Client
	accountID          int
	retryMax           int
	retryWaitMin       time.Duration
	retryWaitMax       time.Duration
	userAgent          string
	logger             *slog.Logger
	timeout            time.Duration
	maxResponseBytes   int64
}

// The defaults of WithTimeout and WithMaxResponseBytes.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultMaxResponseBytes = 10 << 20
)

// WithAccessToken authenticates with a token you already have; it is never refreshed.
func WithAccessToken(token string) Option {
	return func(c *clientConfig) error {
		if strings.TrimSpace(token) == "" {
			return fmt.Errorf("%w: WithAccessToken: empty token", ErrInvalidParams)
		}
		c.accessToken, c.username, c.password = token, "", ""
		return nil
	}
}

// WithCredentials logs in with a username and password (the OAuth password grant)
// and refreshes the access token as it expires.
func WithCredentials(username, password string) Option {
	return func(c *clientConfig) error {
		if username == "" || password == "" {
			return fmt.Errorf("%w: WithCredentials: empty username or password", ErrInvalidParams)
		}
		c.accessToken, c.username, c.password = "", username, password
		return nil
	}
}

// WithBaseURL sets the API's address, DefaultBaseURL by default.
func WithBaseURL(rawURL string) Option {
	return func(c *clientConfig) error {
		// The URL is never quoted: it could hold a password.
		u, err := url.Parse(rawURL)
		if err != nil {
			return fmt.Errorf("%w: WithBaseURL: not a valid URL%s", ErrInvalidParams, urlParseProblem(err))
		}
		if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("%w: WithBaseURL(%q): want an absolute http or https URL without user info, query or fragment", ErrInvalidParams, redactedURL(u))
		}
		if problem := uriProblem(rawURL); problem != "" {
			return fmt.Errorf("%w: WithBaseURL(%q): the URL %s", ErrInvalidParams, redactedURL(u), problem)
		}
		c.baseURL = strings.TrimRight(u.String(), "/")
		return nil
	}
}

// WithHTTPClient sets the HTTP client requests go through; its Transport and
// Timeout apply to every attempt. NewClient keeps a copy whose Timeout is the
// shorter of hc's and WithTimeout's, so hc itself is not modified.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *clientConfig) error {
		if hc == nil {
			return fmt.Errorf("%w: WithHTTPClient(nil)", ErrInvalidParams)
		}
		c.httpClient = hc
		return nil
	}
}

// WithTimeout bounds one attempt of a call, from sending the request to reading
// the whole answer: DefaultTimeout (30 s) by default. A call that is retried
// may take longer in all; bound the whole call with its context.
func WithTimeout(d time.Duration) Option {
	return func(c *clientConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithTimeout(%s): must be positive", ErrInvalidParams, d)
		}
		c.timeout = d
		return nil
	}
}

// WithMaxResponseBytes bounds the body of a successful answer, DefaultMaxResponseBytes
// (10 MiB) by default; a larger one fails the call with ErrResponseTooLarge.
func WithMaxResponseBytes(n int64) Option {
	return func(c *clientConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: WithMaxResponseBytes(%d): must be positive", ErrInvalidParams, n)
		}
		c.maxResponseBytes = n
		return nil
	}
}

// WithAccountID acts on a sub-account: account_id is sent on every call.
func WithAccountID(id int) Option {
	return func(c *clientConfig) error {
		if id < 1 {
			return fmt.Errorf("%w: WithAccountID(%d): account ids start at 1", ErrInvalidParams, id)
		}
		c.accountID = id
		return nil
	}
}

// WithRetryMax sets how many times a failed call is retried, 3 by default; 0 disables retries.
func WithRetryMax(n int) Option {
	return func(c *clientConfig) error {
		if n < 0 {
			return fmt.Errorf("%w: WithRetryMax(%d): must not be negative", ErrInvalidParams, n)
		}
		c.retryMax = n
		return nil
	}
}

// WithRetryWait bounds the wait between retries, 1 s to 30 s by default.
// Retry-After is honoured up to max.
func WithRetryWait(min, max time.Duration) Option {
	return func(c *clientConfig) error {
		if min < 0 || max < min {
			return fmt.Errorf("%w: WithRetryWait(%s, %s): want 0 <= min <= max", ErrInvalidParams, min, max)
		}
		c.retryWaitMin, c.retryWaitMax = min, max
		return nil
	}
}

// WithUserAgent replaces the User-Agent header, which names this SDK by default.
func WithUserAgent(ua string) Option {
	return func(c *clientConfig) error {
		if strings.TrimSpace(ua) == "" {
			return fmt.Errorf("%w: WithUserAgent: empty", ErrInvalidParams)
		}
		c.userAgent = ua
		return nil
	}
}

// WithLogger logs requests, retries and token refreshes at debug level; the
// default is silent. Tokens and secrets are never logged.
func WithLogger(l *slog.Logger) Option {
	return func(c *clientConfig) error {
		if l == nil {
			return fmt.Errorf("%w: WithLogger(nil)", ErrInvalidParams)
		}
		c.logger = l
		return nil
	}
}

// NewClient returns a Client; it sends nothing until the first call.
// It needs WithAccessToken or WithCredentials; later options override earlier ones.
func NewClient(opts ...Option) (*Client, error) {
	cfg := clientConfig{
		baseURL:          DefaultBaseURL,
		retryMax:         3,
		retryWaitMin:     time.Second,
		retryWaitMax:     30 * time.Second,
		userAgent:        "cakemail-go-webhooks/" + Version,
		logger:           slog.New(discardHandler{}),
		timeout:          DefaultTimeout,
		maxResponseBytes: DefaultMaxResponseBytes,
	}
	for _, opt := range opts {
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.accessToken == "" && cfg.username == "" {
		return nil, ErrNoCredentials
	}
	var hc *http.Client
	if cfg.httpClient != nil {
		copied := *cfg.httpClient
		hc = &copied
	} else {
		hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
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
	c := &Client{
		baseURL:   cfg.baseURL,
		accountID: cfg.accountID,
		userAgent: cfg.userAgent,
		logger:    cfg.logger,
		http:      rc,
		timeout:   timeout,
		maxBody:   cfg.maxResponseBytes,
	}
	c.auth = &tokenSource{client: c, access: newCredential(cfg.accessToken), username: cfg.username, password: newCredential(cfg.password)}
	return c, nil
}

// NewClientFromEnv builds a Client from CAKEMAIL_ACCESS_TOKEN, or CAKEMAIL_USERNAME
// and CAKEMAIL_PASSWORD, and the optional CAKEMAIL_BASE_URL and CAKEMAIL_ACCOUNT_ID.
// Options given here override the environment.
func NewClientFromEnv(opts ...Option) (*Client, error) {
	var env []Option
	if v := os.Getenv("CAKEMAIL_BASE_URL"); v != "" {
		env = append(env, WithBaseURL(v))
	}
	if v := os.Getenv("CAKEMAIL_ACCOUNT_ID"); v != "" {
		id, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("%w: CAKEMAIL_ACCOUNT_ID=%q is not a number", ErrInvalidParams, v)
		}
		env = append(env, WithAccountID(id))
	}
	user, pass := os.Getenv("CAKEMAIL_USERNAME"), os.Getenv("CAKEMAIL_PASSWORD")
	switch {
	case os.Getenv("CAKEMAIL_ACCESS_TOKEN") != "":
		env = append(env, WithAccessToken(os.Getenv("CAKEMAIL_ACCESS_TOKEN")))
	case user != "" && pass != "":
		env = append(env, WithCredentials(user, pass))
	case user != "" || pass != "":
		return nil, fmt.Errorf("%w: set both CAKEMAIL_USERNAME and CAKEMAIL_PASSWORD", ErrNoCredentials)
	}
	return NewClient(append(env, opts...)...)
}

// ForAccount returns a client for another account that shares c's connections
// and tokens. An id below 1 makes every call fail with ErrInvalidParams.
func (c *Client) ForAccount(id int) *Client {
	other := *c
	other.accountID, other.accountErr = id, nil
	if id < 1 {
		other.accountErr = fmt.Errorf("%w: ForAccount(%d): account ids start at 1", ErrInvalidParams, id)
	}
	return &other
}

// String describes the client without its credentials.
func (c Client) String() string {
	auth := "none"
	if c.auth != nil {
		auth = "access token"
		if c.auth.username != "" {
			auth = "credentials"
		}
	}
	return fmt.Sprintf("webhooks.Client{baseURL: %s, accountID: %d, auth: %s}", c.baseURL, c.accountID, auth)
}

// GoString keeps %#v from printing credentials.
func (c Client) GoString() string { return c.String() }

// Format keeps every fmt verb from printing credentials, on a Client as on a
// *Client. (Held where fmt cannot call methods, the credentials still print only
// as addresses: see credential.)
func (c Client) Format(f fmt.State, verb rune) { io.WriteString(f, c.String()) }

// LogValue keeps slog from printing credentials.
func (c Client) LogValue() slog.Value { return slog.StringValue(c.String()) }

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

// call is one API operation.
type call struct {
	method string
	path   string // already escaped
	query  url.Values
	body   any // marshalled to JSON when non-nil
	policy retryPolicy
}

// do performs c, retrying as its policy allows, and decodes the answer into out.
func (c *Client) do(ctx context.Context, op call, out any) error {
	if c.accountErr != nil {
		return c.accountErr
	}
	var payload []byte
	if op.body != nil {
		var err error
		if payload, err = json.Marshal(op.body); err != nil {
			return fmt.Errorf("webhooks: %s %s: encoding the request: %w", op.method, op.path, err)
		}
	}
	query := op.query
	if c.accountID != 0 {
		if query == nil {
			query = url.Values{}
		}
		query.Set("account_id", strconv.Itoa(c.accountID))
	}
	target := c.baseURL + op.path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	ctx = context.WithValue(ctx, retryPolicyKey{}, op.policy)

	// A 401 on a refreshable login means the token died early: refresh and replay once.
	for replay := 0; ; replay++ {
		token, err := c.auth.token(ctx)
		if err != nil {
			return err
		}
		resp, err := c.send(ctx, op.method, target, payload, token)
		if err != nil {
			return fmt.Errorf("webhooks: %s %s: %w", op.method, op.path, c.explainTimeout(ctx, err))
		}
		if resp.StatusCode == http.StatusUnauthorized && replay == 0 && c.auth.refreshable() {
			drain(resp)
			c.auth.invalidate(token)
			continue
		}
		return c.decode(ctx, op, resp, out)
	}
}

// send makes one logical request; go-retryablehttp repeats it as needed.
func (c *Client) send(ctx context.Context, method, target string, payload []byte, token string) (*http.Response, error) {
	var body any
	if payload != nil {
		body = payload
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
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
func (c *Client) explainTimeout(ctx context.Context, err error) error {
	var netErr net.Error
	if ctx.Err() == nil && errors.As(err, &netErr) && netErr.Timeout() {
		return fmt.Errorf("no complete answer within %s: %w", c.timeout, err)
	}
	return err
}

func (c *Client) decode(ctx context.Context, op call, resp *http.Response, out any) error {
	defer drain(resp)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return newAPIError(op.method, op.path, resp, time.Now())
	}
	if out == nil {
		return nil
	}
	tooLarge := func() error {
		return fmt.Errorf("%w: %s %s: the answer is over %d bytes (WithMaxResponseBytes)", ErrResponseTooLarge, op.method, op.path, c.maxBody)
	}
	if resp.ContentLength > c.maxBody {
		return tooLarge()
	}
	body := &cappedReader{r: resp.Body, left: c.maxBody}
	if err := json.NewDecoder(body).Decode(out); err != nil {
		if body.exceeded {
			return tooLarge()
		}
		return fmt.Errorf("webhooks: %s %s: decoding the response: %w", op.method, op.path, c.explainTimeout(ctx, err))
	}
	return nil
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
