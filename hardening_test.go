package webhooks_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
)

// everyVerb is each fmt verb a caller might print a value with.
var everyVerb = []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%t", "%p", "%T", "%10.3s", "%-8q", "%e"}

// printedEveryWay prints v with every verb, and through slog and encoding/json.
// A secret printed in hexadecimal still counts: see assertHidden.
func printedEveryWay(v any) string {
	var b strings.Builder
	for _, verb := range everyVerb {
		fmt.Fprintf(&b, verb+"\n", v)
	}
	fmt.Fprintln(&b, v)
	logger := slog.New(slog.NewTextHandler(&b, nil))
	logger.Info("text", "v", v)
	slog.New(slog.NewJSONHandler(&b, nil)).Info("json", "v", v)
	if j, err := json.Marshal(v); err == nil {
		b.Write(j)
	}
	return b.String()
}

func TestURLCredentialsNeverReachErrors(t *testing.T) {
	const password, user = "hunter2pw", "tokenuser"
	for _, raw := range []string{
		"https://" + user + ":" + password + "@example.com/%zz",
		"https://" + user + ":" + password + "@example.com/h?name=é",
		"https://" + user + ":" + password + "@exämple.com/",
		"https://" + user + ":hun%zzter2pw@example.com/",
		"https://" + user + ":" + password + "@example.com:port/",
		"https://" + user + ":" + password + "\x7f@example.com/",
		"http://" + user + ":" + password + "@example.com/hook",
		"ftp://" + user + ":" + password + "@example.com/hook",
		"https://" + user + "@example.com/a b",
		"//" + user + ":" + password + "@example.com/",
	} {
		err := webhooks.ValidateURL(raw)
		require.Error(t, err, raw)
		for _, secret := range []string{password, user, "%zzter"} {
			assert.NotContains(t, err.Error(), secret, "ValidateURL(%q)", raw)
		}
		_, err = webhooks.NewClient(webhooks.WithAccessToken(testToken), webhooks.WithBaseURL(raw))
		require.ErrorIs(t, err, webhooks.ErrInvalidParams, raw)
		for _, secret := range []string{password, user, "%zzter"} {
			assert.NotContains(t, err.Error(), secret, "WithBaseURL(%q)", raw)
		}
	}
	// A base URL with user info is refused outright: the API authenticates with
	// tokens, and transport errors would otherwise carry the URL.
	_, err := webhooks.NewClient(webhooks.WithAccessToken(testToken), webhooks.WithBaseURL("https://"+user+":"+password+"@api.example.com"))
	require.ErrorIs(t, err, webhooks.ErrInvalidParams)
	assert.Contains(t, err.Error(), "user info")
	// A receiver URL may carry basic-auth credentials; they are kept, never shown.
	assert.NoError(t, webhooks.ValidateURL("https://"+user+":"+password+"@example.com/hook"))
}

func TestURLsMustBeWhatTheSpecCallsAURI(t *testing.T) {
	refused := map[string]string{
		"https://example.com/h?name=é":    `"é", which a URL must percent-encode: write %C3%A9`,
		"https://example.com/café/hook":   "%C3%A9",
		"https://exämple.com/hook":        "ASCII (xn--) form",
		"https://example.com/a b":         "%20",
		"https://example.com/h?a=%zz":     "% not followed by two hexadecimal digits",
		"https://example.com/h?a=%4":      "% not followed by two hexadecimal digits",
		"https://example.com/{id}":        "%7B",
		"https://example.com/h#frag ment": "%20",
		"https://example.com/\u00a0":      "%C2%A0",
		"https://example.com/%":           "% not followed by two hexadecimal digits",
	}
	for raw, want := range refused {
		err := webhooks.ValidateURL(raw)
		if assert.Error(t, err, raw) {
			assert.Contains(t, err.Error(), want, raw)
		}
	}
	for _, ok := range []string{
		"https://example.com/h?name=%C3%A9",
		"https://xn--exmple-cua.com/hook",
		"https://example.com/a%20b?x=1&y=[2]#top",
		"https://example.com/~user/!$&'()*+,;=:@",
		"https://[2001:db8::1]:8443/hook",
	} {
		assert.NoError(t, webhooks.ValidateURL(ok), ok)
	}

	s := newAPIServer(t)
	c := fastClient(t, s)
	err := create(c, "https://example.com/h?name=é")
	require.ErrorIs(t, err, webhooks.ErrInvalidParams)
	_, err = c.Update(context.Background(), "a", &webhooks.UpdateParams{URL: webhooks.Ptr("https://example.com/é")})
	require.ErrorIs(t, err, webhooks.ErrInvalidParams)
	assert.Empty(t, s.requests(), "nothing the spec refuses is sent")

	_, err = webhooks.NewClient(webhooks.WithAccessToken(testToken), webhooks.WithBaseURL("https://api.example.com/é"))
	assert.ErrorIs(t, err, webhooks.ErrInvalidParams)
}

// hungServer accepts requests and never answers them until the test ends.
func hungServer(t *testing.T) *apiServer {
	s := newAPIServer(t)
	stop := make(chan struct{})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	t.Cleanup(func() { close(stop) }) // runs before the server's Close
	return s
}

func TestTimeoutEndsAnAttemptThatNeverAnswers(t *testing.T) {
	s := hungServer(t)
	c := fastClient(t, s, webhooks.WithTimeout(100*time.Millisecond), webhooks.WithRetryMax(1))
	start := time.Now()
	_, err := c.Get(context.Background(), "a") // no deadline of the caller's
	require.Error(t, err)
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Contains(t, err.Error(), "within 100ms (WithTimeout)")
	assert.Equal(t, 2, s.count("GET", "/webhooks/a"), "the limit is per attempt: a safe call is tried again")

	// Create is not retried after a timeout: the server may have received it.
	err = create(c, "https://example.com/hook")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "(WithTimeout)")
	assert.Equal(t, 1, s.count("POST", "/webhooks"))

	for _, d := range []time.Duration{0, -time.Second} {
		_, err := webhooks.NewClient(webhooks.WithAccessToken(testToken), webhooks.WithTimeout(d))
		assert.ErrorIs(t, err, webhooks.ErrInvalidParams, d)
	}
}

func TestTimeoutCoversReadingTheBody(t *testing.T) {
	s := newAPIServer(t)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	s.mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"pagination": {}, "data": [`)
		w.(http.Flusher).Flush()
		select { // the rest never comes
		case <-r.Context().Done():
		case <-stop:
		}
	})
	c := fastClient(t, s, webhooks.WithTimeout(150*time.Millisecond), webhooks.WithRetryMax(0))
	_, err := c.List(context.Background(), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "(WithTimeout)")
}

func TestTimeoutAndTheCallersHTTPClientTimeoutBothApply(t *testing.T) {
	s := hungServer(t)
	own := &http.Client{Timeout: 100 * time.Millisecond}
	c := fastClient(t, s, webhooks.WithHTTPClient(own), webhooks.WithRetryMax(0)) // WithTimeout left at 30 s
	start := time.Now()
	_, err := c.Get(context.Background(), "a")
	require.Error(t, err)
	assert.Less(t, time.Since(start), 10*time.Second, "the caller's shorter timeout applies")
	assert.Contains(t, err.Error(), "within 100ms (the Timeout of the WithHTTPClient client)")

	own = &http.Client{Timeout: time.Hour}
	c = fastClient(t, s, webhooks.WithHTTPClient(own), webhooks.WithTimeout(100*time.Millisecond), webhooks.WithRetryMax(0))
	start = time.Now()
	_, err = c.Get(context.Background(), "a")
	require.Error(t, err)
	assert.Less(t, time.Since(start), 10*time.Second, "WithTimeout applies over a longer client timeout")
	assert.Equal(t, time.Hour, own.Timeout, "the caller's client is not modified")
	assert.Contains(t, err.Error(), "within 100ms (WithTimeout)")
}

// listOf returns a GET /webhooks body of about n bytes.
func listOf(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"pagination":{"page":1,"per_page":50},"data":[`)
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		j, _ := json.Marshal(wireHook("wh_" + strconv.Itoa(i)))
		b.Write(j)
	}
	b.WriteString("]}")
	return b.Bytes()
}

func TestMaxResponseBytes(t *testing.T) {
	const limit = 64 << 10
	s := newAPIServer(t)
	big, small := listOf(limit+1), listOf(limit/2)
	var chunked atomic.Bool
	serve := func(body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if chunked.Load() {
				w.Write(body[:1]) // no Content-Length: the client finds out by reading
				w.(http.Flusher).Flush()
				w.Write(body[1:])
				return
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body)
		}
	}
	s.mux.HandleFunc("GET /webhooks", serve(big))
	s.mux.HandleFunc("GET /webhooks/small", serve(small))
	c := fastClient(t, s, webhooks.WithMaxResponseBytes(limit))
	ctx := context.Background()
	for _, isChunked := range []bool{false, true} {
		chunked.Store(isChunked)
		_, err := c.List(ctx, nil)
		require.ErrorIs(t, err, webhooks.ErrResponseTooLarge, "chunked %v", isChunked)
		assert.Contains(t, err.Error(), "GET /webhooks")
		assert.Contains(t, err.Error(), fmt.Sprintf("over %d bytes (WithMaxResponseBytes)", limit))
	}
	// Under the limit is fine, and the limit is on this call's body alone.
	_, err := fastClient(t, s, webhooks.WithMaxResponseBytes(int64(len(small)))).Get(ctx, "small")
	assert.NotErrorIs(t, err, webhooks.ErrResponseTooLarge) // (small is a list, so Get decodes it oddly, but reads it)

	for _, n := range []int64{0, -1} {
		_, err := webhooks.NewClient(webhooks.WithAccessToken(testToken), webhooks.WithMaxResponseBytes(n))
		assert.ErrorIs(t, err, webhooks.ErrInvalidParams, n)
	}
}

func TestEndlessBodiesCostNoMoreThanTheLimit(t *testing.T) {
	const limit = 1 << 20
	for name, chunk := range map[string][]byte{
		"endless whitespace": bytes.Repeat([]byte(" "), 32<<10),
		"endless list":       append(bytes.TrimSuffix(listOf(32<<10), []byte("]}")), ','),
	} {
		t.Run(name, func(t *testing.T) {
			s := newAPIServer(t)
			var written atomic.Int64
			s.mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if name == "endless list" {
					io.WriteString(w, `{"pagination":{},"data":[`)
				}
				for { // until the client hangs up
					n, err := w.Write(chunk)
					written.Add(int64(n))
					if err != nil || written.Load() > 512<<20 {
						return
					}
				}
			})
			c := fastClient(t, s, webhooks.WithMaxResponseBytes(limit))
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := c.List(context.Background(), nil)
			runtime.ReadMemStats(&after)
			require.ErrorIs(t, err, webhooks.ErrResponseTooLarge)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("allocated %d KiB for a limit of %d KiB", allocated>>10, limit>>10)
			assert.Less(t, allocated, uint64(16*limit), "memory is bounded by the limit")
		})
	}
}

func TestMFACodeIsCheckedBeforeSending(t *testing.T) {
	const challenge = "ch_secret_challenge_0123"
	s := newAPIServer(t)
	s.mux.HandleFunc("POST /token/challenge", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		json.NewDecoder(r.Body).Decode(&body)
		if body["code"] == "654321" { // a server echoing its input, as validation errors may
			respond(w, 422, map[string]any{"detail": []any{map[string]any{
				"loc": []any{"body", body["challenge"]}, "msg": "bad code " + body["code"] + " for " + body["challenge"], "type": "value_error", "input": body,
			}}})
			return
		}
		respond(w, 200, map[string]any{"access_token": "after-mfa", "token_type": "bearer", "expires_in": 3600, "refresh_token": "r", "accounts": []int{1}})
	})
	c, err := webhooks.NewClient(webhooks.WithBaseURL(s.URL), webhooks.WithCredentials("me@example.com", testPassword))
	require.NoError(t, err)
	ctx := context.Background()
	for _, code := range []string{"12345", "1234567", "abcdef", "12345x", "١٢٣٤٥٦", "0123456789ag", "0123456789abc", "12 3456", "+12345"} {
		err := c.CompleteMFA(ctx, challenge, code)
		require.ErrorIs(t, err, webhooks.ErrInvalidParams, code)
		assert.Contains(t, err.Error(), "6 digits or a 12-character hexadecimal recovery code")
		assert.NotContains(t, err.Error(), code)
		assert.NotContains(t, err.Error(), challenge)
	}
	assert.Empty(t, s.requests(), "no malformed code is sent")

	err = c.CompleteMFA(ctx, challenge, "654321")
	require.ErrorIs(t, err, webhooks.ErrValidation)
	var apiErr *webhooks.APIError
	require.ErrorAs(t, err, &apiErr)
	for _, secret := range []string{challenge, "654321"} {
		assert.NotContains(t, printedEveryWay(err), secret)
		assert.NotContains(t, printedEveryWay(apiErr), secret)
		assert.NotContains(t, string(apiErr.Body), secret)
	}

	require.NoError(t, c.CompleteMFA(ctx, challenge, "0123456789aB"), "a recovery code")
	require.NoError(t, c.CompleteMFA(ctx, challenge, " 123456\n"), "surrounding spaces, as read from a terminal")
	var sent map[string]string
	require.NoError(t, json.Unmarshal(s.requests()[len(s.requests())-1].Body, &sent))
	assert.Equal(t, "123456", sent["code"])
}

func TestMFAChallengeOn200Or401(t *testing.T) {
	for _, status := range []int{200, 401} {
		s := newAPIServer(t)
		s.mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
			respond(w, status, map[string]any{"challenge": "ch_abc"})
		})
		c, err := webhooks.NewClient(webhooks.WithBaseURL(s.URL), webhooks.WithCredentials("me@example.com", testPassword))
		require.NoError(t, err)
		_, err = c.Get(context.Background(), "a")
		var mfa *webhooks.MFARequiredError
		require.ErrorAs(t, err, &mfa, "status %d", status)
		assert.Equal(t, "ch_abc", mfa.Challenge)
		assert.Equal(t, 0, s.count("GET", "/webhooks/a"))
	}
}

func TestMFARequiredErrorHidesTheChallenge(t *testing.T) {
	const challenge = "ch_works_as_a_credential"
	mfa := &webhooks.MFARequiredError{Challenge: challenge}
	var err error = fmt.Errorf("login: %w", mfa)
	for name, v := range map[string]any{"*MFARequiredError": mfa, "exported field": struct{ Err error }{mfa}, "slice": []error{mfa}} {
		assertHidden(t, printedEveryWay(v), []string{challenge}, name)
	}
	// A value and a wrapped error: every verb that prints an error.
	for name, v := range map[string]any{"MFARequiredError": *mfa, "wrapped": err} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
			assert.NotContains(t, fmt.Sprintf(verb, v), challenge, "%s %s", name, verb)
		}
	}
	assert.Equal(t, `&webhooks.MFARequiredError{Challenge:"[REDACTED]"}`, fmt.Sprintf("%#v", mfa))
	assert.Equal(t, mfa.Error(), fmt.Sprintf("%v", mfa))
	j, jerr := json.Marshal(mfa)
	require.NoError(t, jerr)
	assert.JSONEq(t, `{"Challenge":"[REDACTED]"}`, string(j))

	// Not redacted, as the README says: behind an unexported field.
	assert.Contains(t, sprint("%s", struct{ err error }{mfa}), challenge)
	assert.Contains(t, sprint("%t", err), challenge, "fmt.Errorf's wrapper holds it in an unexported field")
	for _, verb := range []string{"%v", "%s", "%q", "%x", "%d"} {
		assert.NotContains(t, sprint(verb, err), challenge, "a verb for errors or pointers: %s", verb)
	}

	var got *webhooks.MFARequiredError
	require.True(t, errors.As(err, &got))
	assert.Equal(t, challenge, got.Challenge, "the field still hands the challenge to CompleteMFA")
}

// loggedInClient is a client that has logged in and refreshed once, so it holds
// a password, an access token and a refresh token.
func loggedInClient(t *testing.T) (*webhooks.Client, []string) {
	ts := newTokenServer(t)
	c := credentialsClient(t, ts)
	ctx := context.Background()
	_, err := c.Get(ctx, "a")
	require.NoError(t, err)
	ts.expireAll()
	_, err = c.Get(ctx, "a") // a 401, a refresh and a replay
	require.NoError(t, err)
	require.Equal(t, []string{"password", "refresh_token"}, ts.grantLog())
	return c, []string{testPassword, "access-1", "access-2", "refresh-1", "refresh-2"}
}

func TestNoVerbShowsAClientsCredentials(t *testing.T) {
	c, secrets := loggedInClient(t)
	tokenClient, err := webhooks.NewClient(webhooks.WithAccessToken(testToken))
	require.NoError(t, err)
	secrets = append(secrets, testToken)

	type holder struct {
		client  webhooks.Client
		pointer *webhooks.Client
		Client  webhooks.Client
		Pointer *webhooks.Client
		Any     any
		list    []*webhooks.Client
		values  map[string]webhooks.Client
	}
	for name, v := range map[string]any{
		"*Client": c, "Client": *c, "token *Client": tokenClient, "token Client": *tokenClient,
		"ForAccount": c.ForAccount(2), "ForAccount value": *c.ForAccount(2),
		"held":        holder{*c, c, *c, c, *c, []*webhooks.Client{c}, map[string]webhooks.Client{"c": *c}},
		"held *":      &holder{*tokenClient, tokenClient, *tokenClient, tokenClient, c, nil, nil},
		"slice":       []webhooks.Client{*c},
		"interface":   []any{c, *c},
		"unexported*": struct{ c *webhooks.Client }{c},
		"unexported":  struct{ c webhooks.Client }{*c},
	} {
		assertHidden(t, printedEveryWay(v), secrets, name)
	}
	assert.Equal(t, fmt.Sprint(c), fmt.Sprintf("%s", *c), "a Client prints as a *Client does")
	assert.Equal(t, "webhooks.Client{baseURL: , accountID: 0, auth: none}", fmt.Sprint(webhooks.Client{}), "a zero Client prints without panicking")
	def, err := webhooks.NewClient(webhooks.WithCredentials("me@example.com", testPassword))
	require.NoError(t, err)
	assert.Equal(t, "webhooks.Client{baseURL: https://api.cakemail.dev, accountID: 0, auth: credentials}", fmt.Sprint(def))
	assert.Regexp(t, `^webhooks.Client\{baseURL: http://127.0.0.1:\d+, accountID: 0, auth: credentials\}$`, fmt.Sprint(c))
}

// assertHidden checks that printed shows none of secrets, as text or in hexadecimal.
func assertHidden(t *testing.T, printed string, secrets []string, what string) {
	t.Helper()
	lower := strings.ToLower(printed)
	for _, secret := range secrets {
		assert.NotContains(t, printed, secret, "%s shows a secret", what)
		assert.NotContains(t, lower, hex.EncodeToString([]byte(secret)), "%s shows a secret in hexadecimal", what)
	}
}

// TestWhatIsRedactedFromAWebhook checks each claim of the README's "What is
// redacted" and of Webhook's doc, both what is masked and what is not.
func TestWhatIsRedactedFromAWebhook(t *testing.T) {
	const secret = "whsec_signing_key_0123456789"
	hook := webhooks.Webhook{ID: "wh_1", Event: webhooks.EventEmailOpened, URL: "https://example.com/hook", Secret: secret}
	type Exported struct {
		Hook webhooks.Webhook
		Ptr  *webhooks.Webhook
	}
	verbsButP := slices.DeleteFunc(slices.Clone(everyVerb), func(v string) bool { return v == "%p" })
	masked := map[string]any{
		"Webhook": hook, "*Webhook": &hook, "exported fields": Exported{hook, &hook}, "*exported fields": &Exported{hook, &hook},
		"slice": []webhooks.Webhook{hook}, "pointer slice": []*webhooks.Webhook{&hook},
		"map": map[string]webhooks.Webhook{"a": hook}, "interface": []any{hook, &hook},
	}
	for name, v := range masked {
		for _, verb := range verbsButP {
			printed := fmt.Sprintf(verb, v)
			assertHidden(t, printed, []string{secret}, name+" "+verb)
		}
		if name == "Webhook" || name == "*Webhook" {
			assert.Contains(t, fmt.Sprintf("%v", v), "[REDACTED]", name)
			assert.Contains(t, fmt.Sprintf("%#v", v), `Secret:"[REDACTED]"`, name)
		}
		var logs bytes.Buffer
		slog.New(slog.NewTextHandler(&logs, nil)).Info("text", "hook", v)
		slog.New(slog.NewJSONHandler(&logs, nil)).Info("json", "hook", v)
		assertHidden(t, logs.String(), []string{secret}, name+" in slog")
		j, err := json.Marshal(v)
		require.NoError(t, err)
		assertHidden(t, string(j), []string{secret}, name+" in JSON")
		assert.NotContains(t, string(j), "REDACTED", "JSON leaves the secret out entirely")
	}
	assert.Equal(t, secret, hook.Secret, "the field itself stays readable")

	// Not redacted: what fmt reaches without calling methods.
	type unexported struct {
		hook webhooks.Webhook
		ptr  *webhooks.Webhook
	}
	for _, verb := range everyVerb {
		if verb == "%T" || verb == "%10.3s" { // the type alone; a truncated string
			continue
		}
		assert.Contains(t, strings.ToLower(fmt.Sprintf(verb, unexported{hook: hook})), strings.ToLower(secretAs(verb, secret)), "a Webhook in an unexported field, %s", verb)
	}
	for _, verb := range []string{"%s", "%q"} {
		assert.Contains(t, fmt.Sprintf(verb, unexported{ptr: &hook}), secret, "a *Webhook in an unexported field, %s", verb)
	}
	assert.NotContains(t, fmt.Sprintf("%v", unexported{ptr: &hook}), secret, "with %v a pointer prints as an address")
	assert.Contains(t, sprint("%p", hook), secret, "%p of a value")
	assert.Contains(t, sprint("%p", Exported{Hook: hook}), secret, "%p of a value holding one")

	withPassword := webhooks.Webhook{URL: "https://user:pass@example.com/hook"}
	assert.Contains(t, fmt.Sprint(withPassword), "user:pass@", "URL is printed as it is")
}

// sprint formats v with verb, including verbs go vet rightly flags as wrong
// for v's type: they are what this file checks.
func sprint(verb string, v any) string { return fmt.Sprintf(verb, v) }

// secretAs is how fmt prints a string field with verb.
func secretAs(verb, s string) string {
	if strings.ContainsAny(verb, "xX") {
		return hex.EncodeToString([]byte(s))
	}
	return s
}

// TestDebugLogsAsTheREADMESays checks the README's account of WithLogger's lines.
func TestDebugLogsAsTheREADMESays(t *testing.T) {
	ts := newTokenServer(t)
	var failed atomic.Bool
	ts.mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
		if failed.CompareAndSwap(false, true) {
			respond(w, 503, map[string]any{"detail": "busy"})
			return
		}
		respond(w, 200, map[string]any{"pagination": map[string]any{}, "data": []any{}})
	})
	var logs bytes.Buffer
	c := credentialsClient(t, ts, webhooks.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		webhooks.WithRetryWait(time.Millisecond, time.Millisecond))
	ctx := context.Background()
	_, err := c.Get(ctx, "a")
	require.NoError(t, err)
	ts.expireAll()
	_, err = c.Get(ctx, "a") // a 401, then a refresh
	require.NoError(t, err)
	_, err = c.ForAccount(3).List(ctx, &webhooks.ListOptions{Page: 2})
	require.NoError(t, err)

	text := logs.String()
	assert.Contains(t, text, "method=GET url="+ts.URL+"/webhooks/a")
	assert.Contains(t, text, ts.URL+"/webhooks?account_id=3&page=2 (status: 503)", "the status of a retried attempt")
	assert.Contains(t, text, "grant_type=password")
	assert.Contains(t, text, "grant_type=refresh_token")
	assertHidden(t, text, []string{testPassword, "access-1", "access-2", "refresh-1", "refresh-2"}, "debug logs")
	for _, never := range []string{"Authorization", "Bearer", "User-Agent", "Content-Type", "busy", "pagination"} {
		assert.NotContains(t, text, never, "no header or body")
	}
}
