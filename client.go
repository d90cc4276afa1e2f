package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultBaseURL is the Cakemail API.
const DefaultBaseURL = "https://api.cakemail.dev"

// Version is this SDK's version, sent in the default User-Agent.
const Version = "0.1.0"

// Client calls the Cakemail webhooks API. It is safe for concurrent use.
//
// A call goes one way: the Client asks its token source for a token and sends
// the request through the transport; the token source logs in through the same
// transport, and never calls the Client.
type Client struct {
	tr         *transport   // shared with auth and with ForAccount's clients
	auth       *tokenSource // shared with ForAccount's clients
	accountID  int          // 0: the user's own account
	accountErr error        // set by ForAccount with a bad id, returned by every call
	maxBody    int64        // of a successful response
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
	tr := newTransport(&cfg, hc)
	return &Client{
		tr:        tr,
		auth:      newTokenSource(tr, cfg.logger, cfg.accessToken, cfg.username, cfg.password),
		accountID: cfg.accountID,
		maxBody:   cfg.maxResponseBytes,
	}, nil
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
	auth, baseURL := "none", ""
	if c.auth != nil {
		auth = "access token"
		if c.auth.refreshable() {
			auth = "credentials"
		}
	}
	if c.tr != nil {
		baseURL = c.tr.baseURL
	}
	return fmt.Sprintf("webhooks.Client{baseURL: %s, accountID: %d, auth: %s}", baseURL, c.accountID, auth)
}

// GoString keeps %#v from printing credentials.
func (c Client) GoString() string { return c.String() }

// Format keeps every fmt verb from printing credentials, on a Client as on a
// *Client. (Held where fmt cannot call methods, the credentials still print only
// as addresses: see credential.)
func (c Client) Format(f fmt.State, verb rune) { io.WriteString(f, c.String()) }

// LogValue keeps slog from printing credentials.
func (c Client) LogValue() slog.Value { return slog.StringValue(c.String()) }

// CompleteMFA finishes a login that failed with *MFARequiredError, with the
// challenge from that error and a code from the user's MFA method: 6 digits, or
// a 12-character hexadecimal recovery code (surrounding spaces are ignored).
// Its errors never hold the challenge or the code.
func (c *Client) CompleteMFA(ctx context.Context, challenge, code string) error {
	return c.auth.completeMFA(ctx, challenge, code)
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
	target := c.tr.baseURL + op.path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	// A 401 on a refreshable login means the token died early: refresh and replay once.
	for replay := 0; ; replay++ {
		token, err := c.auth.token(ctx)
		if err != nil {
			return err
		}
		resp, err := c.tr.send(ctx, op.policy, op.method, target, "application/json", payload, token)
		if err != nil {
			return fmt.Errorf("webhooks: %s %s: %w", op.method, op.path, c.tr.explainTimeout(ctx, err))
		}
		if resp.StatusCode == http.StatusUnauthorized && replay == 0 && c.auth.refreshable() {
			drain(resp)
			c.auth.invalidate(token)
			continue
		}
		return c.decode(ctx, op, resp, out)
	}
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
		return fmt.Errorf("webhooks: %s %s: decoding the response: %w", op.method, op.path, c.tr.explainTimeout(ctx, err))
	}
	return nil
}
