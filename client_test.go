package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
)

const (
	testToken    = "tok_live_access_0123456789"
	testPassword = "correct horse battery staple"
	testKey      = "signing_key_abcdefghijklmnopqrstuvwxyz"
)

// recorded is one request as the server saw it.
type recorded struct {
	Method, Path, RawPath, Query string
	Header                       http.Header
	Body                         []byte
}

// apiServer is an httptest server with a mux that records every request.
type apiServer struct {
	*httptest.Server
	mux  *http.ServeMux
	mu   sync.Mutex
	reqs []recorded
}

func newAPIServer(t *testing.T) *apiServer {
	t.Helper()
	s := &apiServer{mux: http.NewServeMux()}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		s.mu.Lock()
		s.reqs = append(s.reqs, recorded{r.Method, r.URL.Path, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), b})
		s.mu.Unlock()
		s.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *apiServer) requests() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.reqs...)
}

func (s *apiServer) count(method, path string) int {
	n := 0
	for _, r := range s.requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

func respond(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func wireHook(id string) map[string]any {
	return map[string]any{"id": id, "status": "active", "event": "Email.Opened", "url": "https://example.com/hook",
		"archived_at": nil, "rate_limit": 50, "rate_limit_period": "second"}
}

// fastClient retries quickly so that retry tests stay fast.
func fastClient(t *testing.T, s *apiServer, opts ...webhooks.Option) *webhooks.Client {
	t.Helper()
	base := []webhooks.Option{webhooks.WithBaseURL(s.URL), webhooks.WithAccessToken(testToken), webhooks.WithRetryWait(time.Millisecond, 20*time.Millisecond)}
	c, err := webhooks.NewClient(append(base, opts...)...)
	require.NoError(t, err)
	return c
}

func jsonOf(t *testing.T, b []byte) map[string]any {
	t.Helper()
	if len(b) == 0 {
		return nil
	}
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), string(b))
	return m
}

func TestNewClientValidatesOptions(t *testing.T) {
	_, err := webhooks.NewClient()
	assert.ErrorIs(t, err, webhooks.ErrNoCredentials)
	_, err = webhooks.NewClient(webhooks.WithBaseURL("https://example.com"))
	assert.ErrorIs(t, err, webhooks.ErrNoCredentials)

	bad := map[string]webhooks.Option{
		"empty token":        webhooks.WithAccessToken(""),
		"empty password":     webhooks.WithCredentials("me@example.com", ""),
		"relative base URL":  webhooks.WithBaseURL("api.cakemail.dev"),
		"ftp base URL":       webhooks.WithBaseURL("ftp://api.cakemail.dev"),
		"base URL query":     webhooks.WithBaseURL("https://api.cakemail.dev?x=1"),
		"nil HTTP client":    webhooks.WithHTTPClient(nil),
		"account 0":          webhooks.WithAccountID(0),
		"negative retries":   webhooks.WithRetryMax(-1),
		"min wait over max":  webhooks.WithRetryWait(time.Second, time.Millisecond),
		"negative wait":      webhooks.WithRetryWait(-time.Second, time.Second),
		"empty user agent":   webhooks.WithUserAgent(" "),
		"nil logger":         webhooks.WithLogger(nil),
		"password in errors": webhooks.WithCredentials("", testPassword),
	}
	for name, opt := range bad {
		_, err := webhooks.NewClient(webhooks.WithAccessToken(testToken), opt)
		require.ErrorIs(t, err, webhooks.ErrInvalidParams, name)
		assert.NotContains(t, err.Error(), testPassword, name)
	}
}

func TestNewClientSendsNothingAndLaterOptionsWin(t *testing.T) {
	s := newAPIServer(t)
	s.mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		respond(w, 200, map[string]any{"access_token": "from-login", "token_type": "bearer", "expires_in": 3600, "refresh_token": "r", "accounts": []int{1}})
	})
	s.mux.HandleFunc("GET /webhooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		respond(w, 200, map[string]any{"id": "a", "data": wireHook("a")})
	})
	c, err := webhooks.NewClient(webhooks.WithBaseURL("https://unused.example"), webhooks.WithAccessToken(testToken),
		webhooks.WithBaseURL(s.URL+"/"), webhooks.WithCredentials("me@example.com", testPassword))
	require.NoError(t, err)
	assert.Empty(t, s.requests(), "the constructor sends nothing")

	_, err = c.Get(context.Background(), "a")
	require.NoError(t, err)
	reqs := s.requests()
	require.Len(t, reqs, 2, "credentials, given last, replaced the token: a login, then the call")
	assert.Equal(t, "/token", reqs[0].Path)
	assert.Equal(t, "Bearer from-login", reqs[1].Header.Get("Authorization"))
}

func TestEveryMethodOnTheWire(t *testing.T) {
	s := newAPIServer(t)
	s.mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
		respond(w, 200, map[string]any{"pagination": map[string]any{"page": 2, "per_page": 10, "count": 11}, "data": []any{wireHook("a")}})
	})
	s.mux.HandleFunc("POST /webhooks", func(w http.ResponseWriter, r *http.Request) {
		respond(w, 201, map[string]any{"id": "new", "data": wireHook("new")})
	})
	s.mux.HandleFunc("GET /webhooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		respond(w, 200, map[string]any{"id": "a", "signature": map[string]any{"key": testKey, "hash_function": "sha256"}, "data": wireHook("a")})
	})
	s.mux.HandleFunc("PATCH /webhooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		respond(w, 200, map[string]any{"id": "a", "data": wireHook("a"), "object": "Webhook", "patched": true})
	})
	s.mux.HandleFunc("POST /webhooks/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		h := wireHook("a")
		if r.PathValue("action") == "archive" {
			h["status"], h["archived_at"] = "archived", 1700000000
		}
		respond(w, 200, map[string]any{"id": "a", "data": h, "object": "Webhook", "archived": r.PathValue("action") == "archive"})
	})
	c := fastClient(t, s, webhooks.WithAccountID(7), webhooks.WithUserAgent("my-service/2.0"))
	ctx := context.Background()

	cases := []struct {
		name      string
		call      func() (any, error)
		method    string
		path      string
		query     url.Values
		body      map[string]any
		wantValue func(t *testing.T, v any)
	}{
		{
			name: "List",
			call: func() (any, error) {
				return c.List(ctx, &webhooks.ListOptions{Page: 2, PerPage: 10, WithArchived: true, WithCount: true})
			},
			method: "GET", path: "/webhooks",
			query: url.Values{"page": {"2"}, "per_page": {"10"}, "with_archived": {"true"}, "with_count": {"true"}, "account_id": {"7"}},
			wantValue: func(t *testing.T, v any) {
				list := v.(*webhooks.WebhookList)
				assert.Equal(t, 2, list.Page)
				assert.Equal(t, 10, list.PerPage)
				assert.Equal(t, 11, list.Count)
				require.Len(t, list.Webhooks, 1)
				assert.Equal(t, "a", list.Webhooks[0].ID)
			},
		},
		{
			name:   "List with defaults",
			call:   func() (any, error) { return c.List(ctx, nil) },
			method: "GET", path: "/webhooks", query: url.Values{"account_id": {"7"}},
		},
		{
			name: "Create",
			call: func() (any, error) {
				return c.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailOpened, URL: "https://example.com/hook", RateLimit: 10, RateLimitPeriod: webhooks.PerMinute})
			},
			method: "POST", path: "/webhooks", query: url.Values{"account_id": {"7"}},
			body: map[string]any{"event": "Email.Opened", "url": "https://example.com/hook", "rate_limit": 10.0, "rate_limit_period": "minute"},
			wantValue: func(t *testing.T, v any) {
				assert.Equal(t, "new", v.(*webhooks.Webhook).ID)
				assert.Empty(t, v.(*webhooks.Webhook).Secret, "create returns no secret")
			},
		},
		{
			name: "Create leaves zero values to the server",
			call: func() (any, error) {
				return c.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailOpened, URL: "https://example.com/hook"})
			},
			method: "POST", path: "/webhooks", query: url.Values{"account_id": {"7"}},
			body: map[string]any{"event": "Email.Opened", "url": "https://example.com/hook"},
		},
		{
			name:   "Get",
			call:   func() (any, error) { return c.Get(ctx, "a") },
			method: "GET", path: "/webhooks/a", query: url.Values{"account_id": {"7"}},
			wantValue: func(t *testing.T, v any) {
				w := v.(*webhooks.Webhook)
				assert.Equal(t, testKey, w.Secret)
				assert.Equal(t, "sha256", w.HashFunction)
				assert.Equal(t, webhooks.StatusActive, w.Status)
				assert.Equal(t, webhooks.EventEmailOpened, w.Event)
				assert.Equal(t, 50, w.RateLimit)
				assert.Equal(t, webhooks.PerSecond, w.RateLimitPeriod)
				assert.True(t, w.ArchivedAt.IsZero())
			},
		},
		{
			name: "Update sends only what is set",
			call: func() (any, error) {
				return c.Update(ctx, "a", &webhooks.UpdateParams{RateLimit: webhooks.Ptr(0), RateLimitPeriod: webhooks.Ptr(webhooks.PerMinute)})
			},
			method: "PATCH", path: "/webhooks/a", query: url.Values{"account_id": {"7"}},
			body: map[string]any{"rate_limit": 0.0, "rate_limit_period": "minute"},
		},
		{
			name: "Update URL",
			call: func() (any, error) {
				return c.Update(ctx, "a", &webhooks.UpdateParams{URL: webhooks.Ptr("https://example.com/v2")})
			},
			method: "PATCH", path: "/webhooks/a", query: url.Values{"account_id": {"7"}},
			body: map[string]any{"url": "https://example.com/v2"},
		},
		{
			name:   "Archive",
			call:   func() (any, error) { return c.Archive(ctx, "a") },
			method: "POST", path: "/webhooks/a/archive", query: url.Values{"account_id": {"7"}},
			wantValue: func(t *testing.T, v any) {
				w := v.(*webhooks.Webhook)
				assert.Equal(t, webhooks.StatusArchived, w.Status)
				assert.Equal(t, time.Unix(1700000000, 0).UTC(), w.ArchivedAt.UTC())
			},
		},
		{
			name:   "Unarchive",
			call:   func() (any, error) { return c.Unarchive(ctx, "a") },
			method: "POST", path: "/webhooks/a/unarchive", query: url.Values{"account_id": {"7"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.requests())
			v, err := tc.call()
			require.NoError(t, err)
			reqs := s.requests()
			require.Len(t, reqs, before+1, "one request")
			r := reqs[before]
			assert.Equal(t, tc.method, r.Method)
			assert.Equal(t, tc.path, r.Path)
			q, err := url.ParseQuery(r.Query)
			require.NoError(t, err)
			assert.Equal(t, tc.query, q)
			assert.Equal(t, tc.body, jsonOf(t, r.Body))
			assert.Equal(t, "Bearer "+testToken, r.Header.Get("Authorization"))
			assert.Equal(t, "my-service/2.0", r.Header.Get("User-Agent"))
			assert.Equal(t, "application/json", r.Header.Get("Accept"))
			if tc.body != nil {
				assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
			} else {
				assert.Empty(t, r.Body)
			}
			if tc.wantValue != nil {
				tc.wantValue(t, v)
			}
		})
	}
}

func TestDefaultUserAgentNamesTheSDK(t *testing.T) {
	s := newAPIServer(t)
	s.mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
		respond(w, 200, map[string]any{"pagination": map[string]any{}, "data": []any{}})
	})
	_, err := fastClient(t, s).List(context.Background(), nil)
	require.NoError(t, err)
	assert.Equal(t, "cakemail-go-webhooks/"+webhooks.Version, s.requests()[0].Header.Get("User-Agent"))
}

func TestIDsArePathEscaped(t *testing.T) {
	s := newAPIServer(t)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		respond(w, 404, map[string]any{"detail": "Not Found"})
	})
	c := fastClient(t, s)
	for id, wantRaw := range map[string]string{
		"../token": "/webhooks/..%2Ftoken",
		"a/b?c#d":  "/webhooks/a%2Fb%3Fc%23d",
		"with sp":  "/webhooks/with%20sp",
	} {
		_, err := c.Get(context.Background(), id)
		require.ErrorIs(t, err, webhooks.ErrNotFound, id)
		reqs := s.requests()
		last := reqs[len(reqs)-1]
		assert.Equal(t, "/webhooks/"+id, last.Path, "the server sees one segment")
		assert.Equal(t, wantRaw, last.RawPath)
	}
}

func TestInvalidInputSendsNoRequest(t *testing.T) {
	s := newAPIServer(t)
	c := fastClient(t, s)
	ctx := context.Background()
	long := "https://example.com/" + strings.Repeat("a", 2100)
	calls := map[string]func() error{
		"nil create params": func() error { _, err := c.Create(ctx, nil); return err },
		"empty event":       func() error { _, err := c.Create(ctx, &webhooks.CreateParams{URL: "https://example.com"}); return err },
		"relative URL":      func() error { return create(c, "/hook") },
		"no scheme":         func() error { return create(c, "api.example.com/webhook") },
		"plain http":        func() error { return create(c, "http://api.example.com/webhook") },
		"ftp":               func() error { return create(c, "ftp://example.com/hook") },
		"URL too long":      func() error { return create(c, long) },
		"negative rate limit": func() error {
			_, err := c.Create(ctx, &webhooks.CreateParams{Event: "Email.Opened", URL: "https://e.com", RateLimit: -1})
			return err
		},
		"bad period": func() error {
			_, err := c.Create(ctx, &webhooks.CreateParams{Event: "Email.Opened", URL: "https://e.com", RateLimitPeriod: "hour"})
			return err
		},
		"empty id get":       func() error { _, err := c.Get(ctx, ""); return err },
		"dot-dot id":         func() error { _, err := c.Archive(ctx, ".."); return err },
		"empty id unarchive": func() error { _, err := c.Unarchive(ctx, " "); return err },
		"nil update params":  func() error { _, err := c.Update(ctx, "a", nil); return err },
		"empty update":       func() error { _, err := c.Update(ctx, "a", &webhooks.UpdateParams{}); return err },
		"update bad URL": func() error {
			_, err := c.Update(ctx, "a", &webhooks.UpdateParams{URL: webhooks.Ptr("nope")})
			return err
		},
		"update empty period": func() error {
			_, err := c.Update(ctx, "a", &webhooks.UpdateParams{RateLimitPeriod: webhooks.Ptr(webhooks.RateLimitPeriod(""))})
			return err
		},
		"negative page": func() error { _, err := c.List(ctx, &webhooks.ListOptions{Page: -1}); return err },
		"bad account":   func() error { _, err := c.ForAccount(0).List(ctx, nil); return err },
	}
	for name, call := range calls {
		err := call()
		require.ErrorIs(t, err, webhooks.ErrInvalidParams, name)
		assert.NotEmpty(t, strings.TrimPrefix(err.Error(), webhooks.ErrInvalidParams.Error()), "says what is wrong: %s", name)
	}
	assert.Empty(t, s.requests())

	// Plain http is fine for loopback receivers.
	for _, u := range []string{"http://localhost:8080/hook", "http://127.0.0.1/hook", "http://[::1]:9/hook", "https://example.com/hook"} {
		assert.NoError(t, webhooks.ValidateURL(u), u)
	}
	err := webhooks.ValidateURL("http://admin:hunter2@example.com/hook")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2", "a password in the URL is not repeated")
}

func create(c *webhooks.Client, u string) error {
	_, err := c.Create(context.Background(), &webhooks.CreateParams{Event: webhooks.EventEmailOpened, URL: u})
	return err
}

func TestErrorMapping(t *testing.T) {
	cases := []struct {
		status   int
		body     string
		sentinel error
		message  string
	}{
		{400, `{"detail":[{"msg":"Bad page","type":"bad_request"}]}`, webhooks.ErrValidation, "webhooks: GET /webhooks/x: 400 Bad Request: Bad page"},
		{401, `{"detail":[{"code":1,"msg":"Not authenticated","type":"unauthorized"}]}`, webhooks.ErrUnauthorized, "webhooks: GET /webhooks/x: 401 Unauthorized: Not authenticated"},
		{403, `{"detail":[{"code":3,"msg":"No access","type":"forbidden"}]}`, webhooks.ErrForbidden, "webhooks: GET /webhooks/x: 403 Forbidden: No access"},
		{404, `{"detail":"Not Found"}`, webhooks.ErrNotFound, "webhooks: GET /webhooks/x: 404 Not Found: Not Found"},
		{422, `{"detail":[{"loc":["body","url"],"msg":"invalid or missing URL scheme","type":"value_error.url.scheme"},{"loc":["query","page",0],"msg":"bad","type":"t"}]}`,
			webhooks.ErrValidation, "webhooks: GET /webhooks/x: 422 Unprocessable Entity: body.url: invalid or missing URL scheme; query.page.0: bad"},
		{429, `{"detail":[{"msg":"Slow down","type":"rate_limited"}]}`, webhooks.ErrRateLimited, "webhooks: GET /webhooks/x: 429 Too Many Requests: Slow down"},
		{500, `<html><body><h1>502 Bad Gateway</h1></body></html>`, webhooks.ErrServer, "webhooks: GET /webhooks/x: 500 Internal Server Error"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			s := newAPIServer(t)
			s.mux.HandleFunc("GET /webhooks/x", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Request-Id", "req-123")
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			_, err := fastClient(t, s, webhooks.WithRetryMax(1)).Get(context.Background(), "x")
			require.ErrorIs(t, err, tc.sentinel)
			var apiErr *webhooks.APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tc.status, apiErr.StatusCode)
			assert.Equal(t, "GET", apiErr.Method)
			assert.Equal(t, "/webhooks/x", apiErr.Path)
			assert.Equal(t, "req-123", apiErr.RequestID)
			assert.Equal(t, tc.body, string(apiErr.Body))
			assert.Equal(t, tc.message, err.Error())
			assert.NotContains(t, err.Error(), "giving up")
			for _, other := range []error{webhooks.ErrNotFound, webhooks.ErrUnauthorized, webhooks.ErrForbidden, webhooks.ErrRateLimited, webhooks.ErrValidation, webhooks.ErrServer} {
				if other != tc.sentinel {
					assert.NotErrorIs(t, err, other)
				}
			}
		})
	}
}

func TestCreateIsNeverRepeatedOnceItMayHaveArrived(t *testing.T) {
	t.Run("after a 500", func(t *testing.T) {
		s := newAPIServer(t)
		s.mux.HandleFunc("POST /webhooks", func(w http.ResponseWriter, r *http.Request) {
			respond(w, 500, map[string]any{"detail": "boom"})
		})
		err := create(fastClient(t, s), "https://example.com/hook")
		assert.ErrorIs(t, err, webhooks.ErrServer)
		assert.Equal(t, 1, s.count("POST", "/webhooks"))
	})
	t.Run("after a dropped connection", func(t *testing.T) {
		s := newAPIServer(t)
		s.mux.HandleFunc("POST /webhooks", func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		})
		err := create(fastClient(t, s), "https://example.com/hook")
		assert.Error(t, err)
		assert.Equal(t, 1, s.count("POST", "/webhooks"))
	})
	t.Run("retried after a 429", func(t *testing.T) {
		s := newAPIServer(t)
		var calls atomic.Int32
		s.mux.HandleFunc("POST /webhooks", func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				respond(w, 429, map[string]any{"detail": "slow down"})
				return
			}
			respond(w, 201, map[string]any{"id": "new", "data": wireHook("new")})
		})
		require.NoError(t, create(fastClient(t, s), "https://example.com/hook"))
		assert.Equal(t, 2, s.count("POST", "/webhooks"))
	})
	t.Run("retried after a failed dial", func(t *testing.T) {
		s := newAPIServer(t)
		s.mux.HandleFunc("POST /webhooks", func(w http.ResponseWriter, r *http.Request) {
			respond(w, 201, map[string]any{"id": "new", "data": wireHook("new")})
		})
		flaky := &failingDialer{failures: 2, next: http.DefaultTransport}
		c := fastClient(t, s, webhooks.WithHTTPClient(&http.Client{Transport: flaky}))
		require.NoError(t, create(c, "https://example.com/hook"))
		assert.Equal(t, int32(3), flaky.attempts.Load())
		assert.Equal(t, 1, s.count("POST", "/webhooks"))
	})
}

// failingDialer fails its first requests the way a refused connection does.
type failingDialer struct {
	failures int32
	attempts atomic.Int32
	next     http.RoundTripper
}

func (f *failingDialer) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.attempts.Add(1) <= f.failures {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	}
	return f.next.RoundTrip(r)
}

func TestIdempotentCallsAreRetried(t *testing.T) {
	for _, status := range []int{429, 500, 502, 503, 504} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			s := newAPIServer(t)
			var calls atomic.Int32
			s.mux.HandleFunc("GET /webhooks/a", func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) <= 2 {
					w.WriteHeader(status)
					return
				}
				respond(w, 200, map[string]any{"id": "a", "data": wireHook("a")})
			})
			_, err := fastClient(t, s).Get(context.Background(), "a")
			require.NoError(t, err)
			assert.Equal(t, 3, s.count("GET", "/webhooks/a"))
		})
	}
	t.Run("not 501 or 4xx", func(t *testing.T) {
		for _, status := range []int{400, 404, 409, 501} {
			s := newAPIServer(t)
			s.mux.HandleFunc("PATCH /webhooks/a", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) })
			_, err := fastClient(t, s).Update(context.Background(), "a", &webhooks.UpdateParams{RateLimit: webhooks.Ptr(1)})
			require.Error(t, err)
			assert.Equal(t, 1, s.count("PATCH", "/webhooks/a"), "status %d", status)
		}
	})
	t.Run("exhausted retries give the last typed error", func(t *testing.T) {
		s := newAPIServer(t)
		s.mux.HandleFunc("POST /webhooks/a/archive", func(w http.ResponseWriter, r *http.Request) {
			respond(w, 503, map[string]any{"detail": "maintenance"})
		})
		_, err := fastClient(t, s, webhooks.WithRetryMax(2)).Archive(context.Background(), "a")
		var apiErr *webhooks.APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 503, apiErr.StatusCode)
		assert.Equal(t, "webhooks: POST /webhooks/a/archive: 503 Service Unavailable: maintenance", err.Error())
		assert.Equal(t, 3, s.count("POST", "/webhooks/a/archive"))
	})
}

func TestRetryAfterIsHonoured(t *testing.T) {
	s := newAPIServer(t)
	var first time.Time
	var gap time.Duration
	var calls atomic.Int32
	s.mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			first = time.Now()
			w.Header().Set("Retry-After", "1")
			respond(w, 429, map[string]any{"detail": "slow down"})
			return
		}
		gap = time.Since(first)
		respond(w, 200, map[string]any{"pagination": map[string]any{}, "data": []any{}})
	})
	_, err := fastClient(t, s, webhooks.WithRetryWait(time.Millisecond, 5*time.Second)).List(context.Background(), nil)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, gap, 900*time.Millisecond, "waited as Retry-After said, not the 1 ms minimum")
}

func TestCancelDuringBackoffReturnsPromptly(t *testing.T) {
	s := newAPIServer(t)
	arrived := make(chan struct{}, 10)
	s.mux.HandleFunc("GET /webhooks/a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "60")
		w.WriteHeader(503)
		arrived <- struct{}{}
	})
	c := fastClient(t, s, webhooks.WithRetryWait(time.Second, time.Minute))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, "a")
		done <- err
	}()
	<-arrived
	cancel()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("the call kept waiting after its context was cancelled")
	}
	assert.Equal(t, 1, s.count("GET", "/webhooks/a"))
}

func TestDeadlineBeforeTheCall(t *testing.T) {
	s := newAPIServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := fastClient(t, s).List(ctx, nil)
	assert.ErrorIs(t, err, context.Canceled)
}

// tokenServer answers the token endpoint and refuses stale access tokens.
type tokenServer struct {
	*apiServer
	mu          sync.Mutex
	issued      int
	valid       map[string]bool
	grants      []string
	expiresIn   int
	gate        chan struct{} // when set, token answers wait for it
	failRefresh bool
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{apiServer: newAPIServer(t), valid: map[string]bool{}, expiresIn: 3600}
	ts.mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if ts.gate != nil {
			<-ts.gate
		}
		require.NoError(t, r.ParseForm())
		ts.mu.Lock()
		defer ts.mu.Unlock()
		grant := r.PostForm.Get("grant_type")
		ts.grants = append(ts.grants, grant)
		if grant == "password" && r.PostForm.Get("password") != testPassword {
			respond(w, 401, map[string]any{"detail": []any{map[string]any{"code": 1, "msg": "Incorrect username or password", "type": "unauthorized"}}})
			return
		}
		if grant == "refresh_token" && (ts.failRefresh || r.PostForm.Get("refresh_token") == "") {
			respond(w, 401, map[string]any{"detail": []any{map[string]any{"msg": "bad refresh token", "type": "unauthorized"}}})
			return
		}
		ts.issued++
		access := fmt.Sprintf("access-%d", ts.issued)
		ts.valid[access] = true
		respond(w, 200, map[string]any{"access_token": access, "token_type": "bearer", "expires_in": ts.expiresIn, "refresh_token": fmt.Sprintf("refresh-%d", ts.issued), "accounts": []int{1}})
	})
	ts.mux.HandleFunc("GET /webhooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		ok := ts.valid[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		ts.mu.Unlock()
		if !ok {
			respond(w, 401, map[string]any{"detail": []any{map[string]any{"msg": "expired", "type": "unauthorized"}}})
			return
		}
		respond(w, 200, map[string]any{"id": "a", "data": wireHook("a")})
	})
	return ts
}

func (ts *tokenServer) expireAll() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.valid = map[string]bool{}
}

func (ts *tokenServer) grantLog() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.grants...)
}

func credentialsClient(t *testing.T, ts *tokenServer, opts ...webhooks.Option) *webhooks.Client {
	t.Helper()
	c, err := webhooks.NewClient(append([]webhooks.Option{webhooks.WithBaseURL(ts.URL), webhooks.WithCredentials("me@example.com", testPassword),
		webhooks.WithRetryWait(time.Millisecond, 10*time.Millisecond)}, opts...)...)
	require.NoError(t, err)
	return c
}

func TestLoginFormAndRefreshAfter401(t *testing.T) {
	ts := newTokenServer(t)
	c := credentialsClient(t, ts)
	ctx := context.Background()
	_, err := c.Get(ctx, "a")
	require.NoError(t, err)
	login := ts.requests()[0]
	assert.Equal(t, "application/x-www-form-urlencoded", login.Header.Get("Content-Type"))
	form, err := url.ParseQuery(string(login.Body))
	require.NoError(t, err)
	assert.Equal(t, url.Values{"grant_type": {"password"}, "username": {"me@example.com"}, "password": {testPassword}}, form)

	ts.expireAll()
	_, err = c.Get(ctx, "a")
	require.NoError(t, err, "a 401 triggers one refresh and one replay")
	assert.Equal(t, []string{"password", "refresh_token"}, ts.grantLog())
}

func TestTwentyGoroutinesThroughARevokedTokenRefreshOnce(t *testing.T) {
	ts := newTokenServer(t)
	c := credentialsClient(t, ts)
	ctx := context.Background()
	_, err := c.Get(ctx, "a")
	require.NoError(t, err)
	ts.expireAll()

	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Get(ctx, "a")
		}()
	}
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}
	assert.Equal(t, []string{"password", "refresh_token"}, ts.grantLog(), "one login, then exactly one refresh")
}

func TestACanceledLoginDoesNotFailTheCallsWaitingForIt(t *testing.T) {
	s := newAPIServer(t)
	var logins atomic.Int32
	firstLogin := make(chan struct{})
	s.mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if logins.Add(1) == 1 {
			close(firstLogin)
			<-r.Context().Done() // hangs until its caller gives up
			return
		}
		respond(w, 200, map[string]any{"access_token": testToken, "token_type": "bearer", "expires_in": 3600})
	})
	s.mux.HandleFunc("GET /webhooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		respond(w, 200, map[string]any{"id": "a", "data": wireHook("a")})
	})
	c := fastClient(t, s, webhooks.WithCredentials("user@example.com", testPassword))

	impatient, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := c.Get(impatient, "a"); first <- err }()
	<-firstLogin
	second := make(chan error, 1)
	go func() { _, err := c.Get(context.Background(), "a"); second <- err }()
	require.Eventually(t, func() bool { return blockedIn("webhooks.(*tokenSource).token(") }, 10*time.Second, time.Millisecond,
		"the second call never waited for the first login")
	cancel()

	assert.ErrorIs(t, <-first, context.Canceled)
	assert.NoError(t, <-second, "the second call logs in itself rather than inherit the first call's cancellation")
	assert.Equal(t, int32(2), logins.Load())
}

// blockedIn reports whether a goroutine is blocked with fn as its innermost
// frame: the one sign from outside that a call is waiting where a test needs it.
func blockedIn(fn string) bool {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range strings.Split(string(buf), "\n\n") {
		// "goroutine 7 [select]:", then the innermost call.
		lines := strings.SplitN(g, "\n", 3)
		if len(lines) >= 2 && strings.Contains(lines[0], "[select") && strings.Contains(lines[1], fn) {
			return true
		}
	}
	return false
}

func TestRefreshFailureFallsBackToPassword(t *testing.T) {
	ts := newTokenServer(t)
	c := credentialsClient(t, ts)
	_, err := c.Get(context.Background(), "a")
	require.NoError(t, err)
	ts.expireAll()
	ts.mu.Lock()
	ts.failRefresh = true
	ts.mu.Unlock()
	_, err = c.Get(context.Background(), "a")
	require.NoError(t, err)
	assert.Equal(t, []string{"password", "refresh_token", "password"}, ts.grantLog())
}

func TestBadCredentials(t *testing.T) {
	ts := newTokenServer(t)
	c, err := webhooks.NewClient(webhooks.WithBaseURL(ts.URL), webhooks.WithCredentials("me@example.com", "wrong password"))
	require.NoError(t, err)
	_, err = c.Get(context.Background(), "a")
	require.ErrorIs(t, err, webhooks.ErrUnauthorized)
	assert.Equal(t, "webhooks: POST /token: 401 Unauthorized: Incorrect username or password", err.Error())
	assert.NotContains(t, err.Error(), "wrong password")
	assert.Equal(t, 0, ts.count("GET", "/webhooks/a"), "no call without a token")
}

func TestMFA(t *testing.T) {
	s := newAPIServer(t)
	s.mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		respond(w, 401, map[string]any{"challenge": "ch_123"})
	})
	s.mux.HandleFunc("POST /token/challenge", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		json.NewDecoder(r.Body).Decode(&body)
		if body["challenge"] != "ch_123" || body["code"] != "123456" {
			respond(w, 401, map[string]any{"detail": []any{map[string]any{"msg": "bad code", "type": "unauthorized"}}})
			return
		}
		respond(w, 200, map[string]any{"access_token": "after-mfa", "token_type": "bearer", "expires_in": 3600, "refresh_token": "r", "accounts": []int{1}})
	})
	s.mux.HandleFunc("GET /webhooks/a", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer after-mfa" {
			w.WriteHeader(401)
			return
		}
		respond(w, 200, map[string]any{"id": "a", "data": wireHook("a")})
	})
	c, err := webhooks.NewClient(webhooks.WithBaseURL(s.URL), webhooks.WithCredentials("me@example.com", testPassword))
	require.NoError(t, err)
	ctx := context.Background()
	_, err = c.Get(ctx, "a")
	var mfa *webhooks.MFARequiredError
	require.ErrorAs(t, err, &mfa)
	assert.Equal(t, "ch_123", mfa.Challenge)

	assert.ErrorIs(t, c.CompleteMFA(ctx, "ch_123", "000000"), webhooks.ErrUnauthorized)
	assert.ErrorIs(t, c.CompleteMFA(ctx, "", "123456"), webhooks.ErrInvalidParams)
	require.NoError(t, c.CompleteMFA(ctx, mfa.Challenge, "123456"))
	_, err = c.Get(ctx, "a")
	require.NoError(t, err)
	challenge := s.requests()[len(s.requests())-2]
	assert.Equal(t, "/token/challenge", challenge.Path)
	assert.Equal(t, "application/json", challenge.Header.Get("Content-Type"))
}

func TestAllWalksPages(t *testing.T) {
	s := newAPIServer(t)
	const total = 230
	s.mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		page, perPage := atoi(q.Get("page"), 1), atoi(q.Get("per_page"), 50)
		data := []any{}
		for i := (page - 1) * perPage; i < min(page*perPage, total); i++ {
			data = append(data, wireHook(fmt.Sprint(i)))
		}
		respond(w, 200, map[string]any{"pagination": map[string]any{"page": page, "per_page": perPage}, "data": data})
	})
	c := fastClient(t, s)
	ctx := context.Background()
	opts := &webhooks.ListOptions{PerPage: 100, WithArchived: true}

	var ids []string
	for w, err := range c.All(ctx, opts) {
		require.NoError(t, err)
		ids = append(ids, w.ID)
	}
	assert.Len(t, ids, total)
	assert.Equal(t, "229", ids[total-1])
	assert.Equal(t, 3, s.count("GET", "/webhooks"), "ends on the short page")
	assert.Equal(t, &webhooks.ListOptions{PerPage: 100, WithArchived: true}, opts, "the caller's options are untouched")
	for _, r := range s.requests() {
		assert.Contains(t, r.Query, "with_archived=true")
	}

	before := s.count("GET", "/webhooks")
	n := 0
	for range c.All(ctx, opts) {
		n++
		if n == 150 {
			break
		}
	}
	assert.Equal(t, 2, s.count("GET", "/webhooks")-before, "no page is fetched after the loop breaks")

	// 230 is two full pages of 115: without a count only an empty third page tells the end.
	before = s.count("GET", "/webhooks")
	for range c.All(ctx, &webhooks.ListOptions{PerPage: 115}) {
	}
	assert.Equal(t, 3, s.count("GET", "/webhooks")-before)
}

func atoi(s string, def int) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		return def
	}
	return n
}

func TestAllYieldsAnErrorOnce(t *testing.T) {
	s := newAPIServer(t)
	s.mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("page") == "2" {
			respond(w, 404, map[string]any{"detail": "gone"})
			return
		}
		respond(w, 200, map[string]any{"pagination": map[string]any{"page": 1, "per_page": 2}, "data": []any{wireHook("a"), wireHook("b")}})
	})
	var got []string
	var errs []error
	for w, err := range fastClient(t, s).All(context.Background(), &webhooks.ListOptions{PerPage: 2}) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		got = append(got, w.ID)
	}
	assert.Equal(t, []string{"a", "b"}, got)
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0], webhooks.ErrNotFound)
}

func TestForAccountSharesTheLogin(t *testing.T) {
	ts := newTokenServer(t)
	c := credentialsClient(t, ts, webhooks.WithAccountID(1))
	ctx := context.Background()
	_, err := c.Get(ctx, "a")
	require.NoError(t, err)
	_, err = c.ForAccount(2).Get(ctx, "a")
	require.NoError(t, err)
	_, err = c.Get(ctx, "a")
	require.NoError(t, err)
	var queries []string
	for _, r := range ts.requests() {
		if r.Path == "/webhooks/a" {
			queries = append(queries, r.Query)
		}
	}
	assert.Equal(t, []string{"account_id=1", "account_id=2", "account_id=1"}, queries, "ForAccount leaves the original alone")
	assert.Equal(t, []string{"password"}, ts.grantLog(), "one login serves both")
}

func TestNewClientFromEnv(t *testing.T) {
	s := newAPIServer(t)
	s.mux.HandleFunc("GET /webhooks/a", func(w http.ResponseWriter, r *http.Request) {
		respond(w, 200, map[string]any{"id": "a", "data": wireHook("a")})
	})
	t.Setenv("CAKEMAIL_ACCESS_TOKEN", "env-token")
	t.Setenv("CAKEMAIL_USERNAME", "")
	t.Setenv("CAKEMAIL_PASSWORD", "")
	t.Setenv("CAKEMAIL_BASE_URL", s.URL)
	t.Setenv("CAKEMAIL_ACCOUNT_ID", "12")
	c, err := webhooks.NewClientFromEnv()
	require.NoError(t, err)
	_, err = c.Get(context.Background(), "a")
	require.NoError(t, err)
	r := s.requests()[0]
	assert.Equal(t, "Bearer env-token", r.Header.Get("Authorization"))
	assert.Equal(t, "account_id=12", r.Query)

	c, err = webhooks.NewClientFromEnv(webhooks.WithAccessToken("explicit"), webhooks.WithAccountID(3))
	require.NoError(t, err)
	_, err = c.Get(context.Background(), "a")
	require.NoError(t, err)
	r = s.requests()[1]
	assert.Equal(t, "Bearer explicit", r.Header.Get("Authorization"), "explicit options win")
	assert.Equal(t, "account_id=3", r.Query)

	t.Setenv("CAKEMAIL_ACCOUNT_ID", "twelve")
	_, err = webhooks.NewClientFromEnv()
	assert.ErrorIs(t, err, webhooks.ErrInvalidParams)

	t.Setenv("CAKEMAIL_ACCOUNT_ID", "")
	t.Setenv("CAKEMAIL_ACCESS_TOKEN", "")
	_, err = webhooks.NewClientFromEnv()
	assert.ErrorIs(t, err, webhooks.ErrNoCredentials)
	t.Setenv("CAKEMAIL_USERNAME", "me@example.com")
	_, err = webhooks.NewClientFromEnv()
	assert.ErrorIs(t, err, webhooks.ErrNoCredentials, "a username without a password")
}

func TestNoSecretInLogsOrPrintedValues(t *testing.T) {
	ts := newTokenServer(t)
	ts.mux.HandleFunc("GET /webhooks/s", func(w http.ResponseWriter, r *http.Request) {
		respond(w, 200, map[string]any{"id": "s", "signature": map[string]any{"key": testKey, "hash_function": "sha256"}, "data": wireHook("s")})
	})
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := credentialsClient(t, ts, webhooks.WithLogger(logger))
	ctx := context.Background()
	hook, err := c.Get(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, testKey, hook.Secret, "the field stays readable")
	ts.expireAll()
	_, err = c.Get(ctx, "s") // a 401, a logged refresh and a replay
	require.NoError(t, err)

	logger.Info("values", "hook", hook, "client", c, "err", err)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("json", "hook", hook, "client", c)
	printed := fmt.Sprintf("%v|%+v|%#v|%s|%q|%x|%d|%v|%+v|%#v|%v|%+v", hook, hook, hook, hook, hook, hook, hook, *hook, *hook, *hook, c, c)
	printed += fmt.Sprintf("%#v", c)
	encoded, err := json.Marshal(hook)
	require.NoError(t, err)

	assert.NotEmpty(t, logs.String(), "debug logging is on")
	for name, text := range map[string]string{"logs": logs.String(), "printed": printed, "json": string(encoded)} {
		for _, secret := range []string{testKey, testPassword, "access-1", "access-2", "refresh-1", "refresh-2"} {
			assert.NotContains(t, text, secret, "%s leaks %q", name, secret)
		}
	}
	assert.Contains(t, printed, "[REDACTED]")
	assert.Contains(t, printed, "https://example.com/hook", "the rest of the webhook is printed")
}

func TestAllStopsAtTheCount(t *testing.T) {
	s := newAPIServer(t)
	s.mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
		page := atoi(r.URL.Query().Get("page"), 1)
		respond(w, 200, map[string]any{"pagination": map[string]any{"page": page, "per_page": 2, "count": 4},
			"data": []any{wireHook(fmt.Sprint(page, "a")), wireHook(fmt.Sprint(page, "b"))}})
	})
	n := 0
	for _, err := range fastClient(t, s).All(context.Background(), &webhooks.ListOptions{PerPage: 2, WithCount: true}) {
		require.NoError(t, err)
		n++
	}
	assert.Equal(t, 4, n)
	assert.Equal(t, 2, s.count("GET", "/webhooks"), "two full pages make the count: no third request")
}
