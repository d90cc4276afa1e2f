package webhookstest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/webhookstest"
)

// call makes a raw API request, as a client in any language would, and decodes the JSON answer.
func call(t *testing.T, srv *webhookstest.Server, token, method, path string, body any) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	if len(raw) > 0 && raw[0] == '{' {
		require.NoError(t, json.Unmarshal(raw, &out), string(raw))
	}
	return resp.StatusCode, out, resp.Header
}

func login(t *testing.T, srv *webhookstest.Server, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(srv.URL+"/token", form)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

// schemaKeys returns the property names of a schema of the API description.
func schemaKeys(t *testing.T, name string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "reference", "cakemail-webhooks-openapi.json")) // Cakemail's, as the module keeps it
	require.NoError(t, err)
	var spec struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(raw, &spec))
	schema, ok := spec.Components.Schemas[name]
	require.True(t, ok, name)
	return sortedKeys(schema.Properties)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestResponsesHaveTheAPIsShapes(t *testing.T) {
	srv := webhookstest.NewServer()
	defer srv.Close()
	webhookKeys := schemaKeys(t, "api__services__webhooks__schemas__Webhook")

	status, tok := login(t, srv, url.Values{"username": {webhookstest.DefaultUsername}, "password": {webhookstest.DefaultPassword}})
	require.Equal(t, 200, status)
	assert.Equal(t, schemaKeys(t, "TokenResponse"), sortedKeys(tok))
	assert.Equal(t, "bearer", tok["token_type"])
	assert.Equal(t, []any{float64(webhookstest.DefaultAccountID)}, tok["accounts"])
	token := tok["access_token"].(string)

	status, created, _ := call(t, srv, token, "POST", "/webhooks", map[string]any{"event": "User.LoggedIn", "url": "https://example.com/hook"})
	require.Equal(t, http.StatusCreated, status)
	assert.Equal(t, schemaKeys(t, "CreateWebhookResponse"), sortedKeys(created))
	data := created["data"].(map[string]any)
	assert.Equal(t, webhookKeys, sortedKeys(data))
	assert.Equal(t, float64(50), data["rate_limit"], "the API's default")
	assert.Equal(t, "second", data["rate_limit_period"])
	assert.Nil(t, data["archived_at"])
	id := created["id"].(string)
	assert.Regexp(t, `^[A-Za-z0-9]{12}$`, id)

	status, got, _ := call(t, srv, token, "GET", "/webhooks/"+id, nil)
	require.Equal(t, 200, status)
	assert.Equal(t, schemaKeys(t, "WebhookResponse"), sortedKeys(got))
	sig := got["signature"].(map[string]any)
	assert.Equal(t, "sha256", sig["hash_function"])
	assert.GreaterOrEqual(t, len(sig["key"].(string)), 32)

	status, patched, _ := call(t, srv, token, "PATCH", "/webhooks/"+id, map[string]any{"rate_limit": 5, "rate_limit_period": "minute", "event": "Email.Opened"})
	require.Equal(t, 200, status)
	assert.Equal(t, schemaKeys(t, "PatchWebhookResponse"), sortedKeys(patched))
	pd := patched["data"].(map[string]any)
	assert.Equal(t, float64(5), pd["rate_limit"])
	assert.Equal(t, "User.LoggedIn", pd["event"], "the event cannot be patched")

	status, archived, _ := call(t, srv, token, "POST", "/webhooks/"+id+"/archive", nil)
	require.Equal(t, 200, status)
	assert.Equal(t, schemaKeys(t, "ArchiveWebhookResponse"), sortedKeys(archived))
	ad := archived["data"].(map[string]any)
	assert.Equal(t, "archived", ad["status"])
	assert.InDelta(t, float64(time.Now().Unix()), ad["archived_at"], 5)
	assert.Equal(t, true, archived["archived"])

	status, unarchived, _ := call(t, srv, token, "POST", "/webhooks/"+id+"/unarchive", nil)
	require.Equal(t, 200, status)
	assert.Equal(t, "active", unarchived["data"].(map[string]any)["status"])
	assert.Nil(t, unarchived["data"].(map[string]any)["archived_at"])
	assert.Equal(t, false, unarchived["archived"])

	status, list, _ := call(t, srv, token, "GET", "/webhooks", nil)
	require.Equal(t, 200, status)
	assert.Equal(t, schemaKeys(t, "ListWebhooksResponse"), sortedKeys(list))
	assert.Equal(t, map[string]any{"page": float64(1), "per_page": float64(50)}, list["pagination"], "count only on request")
}

func TestTokens(t *testing.T) {
	srv := webhookstest.NewServer()
	defer srv.Close()
	status, body := login(t, srv, url.Values{"grant_type": {"password"}, "username": {webhookstest.DefaultUsername}, "password": {"wrong"}})
	assert.Equal(t, 401, status)
	detail := body["detail"].([]any)[0].(map[string]any)
	assert.Equal(t, "unauthorized", detail["type"])

	status, tok := login(t, srv, url.Values{"username": {webhookstest.DefaultUsername}, "password": {webhookstest.DefaultPassword}, "expiration_seconds": {"900"}, "scopes": {"user"}})
	require.Equal(t, 200, status)
	assert.Equal(t, float64(900), tok["expires_in"])
	status, _ = login(t, srv, url.Values{"username": {webhookstest.DefaultUsername}, "password": {webhookstest.DefaultPassword}, "expiration_seconds": {"60"}})
	assert.Equal(t, 422, status, "expiration_seconds must be at least 600")

	srv.ExpireTokens()
	status, _, hdr := call(t, srv, tok["access_token"].(string), "GET", "/webhooks", nil)
	assert.Equal(t, 401, status, "an expired token is refused")
	assert.Equal(t, "Bearer", hdr.Get("WWW-Authenticate"))

	status, refreshed := login(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
	require.Equal(t, 200, status)
	status, _, _ = call(t, srv, refreshed["access_token"].(string), "GET", "/webhooks", nil)
	assert.Equal(t, 200, status)

	status, _ = login(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"made-up"}})
	assert.Equal(t, 401, status)
	status, _ = login(t, srv, url.Values{"grant_type": {"client_credentials"}})
	assert.Equal(t, 422, status)

	status, _, _ = call(t, srv, "", "GET", "/webhooks", nil)
	assert.Equal(t, 401, status)
	status, _, _ = call(t, srv, "not-a-token", "GET", "/webhooks", nil)
	assert.Equal(t, 401, status)
}

func TestValidationErrors(t *testing.T) {
	srv := webhookstest.NewServer()
	defer srv.Close()
	token := srv.Token()
	cases := []struct {
		body map[string]any
		loc  []any
	}{
		{map[string]any{"url": "https://example.com"}, []any{"body", "event"}},
		{map[string]any{"event": "Campaign.Sent", "url": "https://example.com"}, []any{"body", "event"}},
		{map[string]any{"event": "email.opened", "url": "https://example.com"}, []any{"body", "event"}},
		{map[string]any{"event": "Email.Opened"}, []any{"body", "url"}},
		{map[string]any{"event": "Email.Opened", "url": "http://example.com/hook"}, []any{"body", "url"}},
		{map[string]any{"event": "Email.Opened", "url": "example.com/hook"}, []any{"body", "url"}},
		{map[string]any{"event": "Email.Opened", "url": "https://e.com", "rate_limit_period": "hour"}, []any{"body", "rate_limit_period"}},
		{map[string]any{"event": "Email.Opened", "url": "https://e.com", "rate_limit": "many"}, []any{"body", "rate_limit"}},
	}
	for _, tc := range cases {
		status, body, _ := call(t, srv, token, "POST", "/webhooks", tc.body)
		require.Equal(t, 422, status, "%v", tc.body)
		detail := body["detail"].([]any)[0].(map[string]any)
		assert.Equal(t, tc.loc, detail["loc"], "%v", tc.body)
		assert.NotEmpty(t, detail["msg"])
		assert.NotEmpty(t, detail["type"])
	}
	for _, q := range []string{"page=0", "per_page=x", "with_archived=maybe"} {
		status, _, _ := call(t, srv, token, "GET", "/webhooks?"+q, nil)
		assert.Equal(t, 422, status, q)
	}
	status, body, _ := call(t, srv, token, "GET", "/webhooks/nope", nil)
	assert.Equal(t, 404, status)
	assert.Equal(t, "Webhook not found", body["detail"].([]any)[0].(map[string]any)["msg"])
	status, _, _ = call(t, srv, token, "GET", "/webhooks/..%2Ftoken", nil)
	assert.Equal(t, 404, status)
	status, _, _ = call(t, srv, token, "POST", "/webhooks", nil)
	assert.Equal(t, 422, status, "no body")
	status, _, _ = call(t, srv, token, "PATCH", "/webhooks/nope", map[string]any{"rate_limit": 2})
	assert.Equal(t, 404, status)

	status, _, _ = call(t, srv, token, "POST", "/webhooks", map[string]any{"event": "Email.Opened", "url": "http://localhost:9/hook"})
	assert.Equal(t, 201, status, "plain http is fine on loopback")
}

func TestPaginationArchivedAndCount(t *testing.T) {
	srv := webhookstest.NewServer()
	defer srv.Close()
	token := srv.Token()
	var ids []string
	for range 5 {
		_, body, _ := call(t, srv, token, "POST", "/webhooks", map[string]any{"event": "Email.Opened", "url": "https://example.com"})
		ids = append(ids, body["id"].(string))
	}
	call(t, srv, token, "POST", "/webhooks/"+ids[0]+"/archive", nil)

	_, page, _ := call(t, srv, token, "GET", "/webhooks?page=2&per_page=2&with_count=true", nil)
	assert.Equal(t, map[string]any{"page": float64(2), "per_page": float64(2), "count": float64(4)}, page["pagination"])
	data := page["data"].([]any)
	require.Len(t, data, 2)
	assert.Equal(t, ids[3], data[0].(map[string]any)["id"], "archived webhooks are hidden, order is creation order")

	_, all, _ := call(t, srv, token, "GET", "/webhooks?with_archived=true&with_count=true&per_page=10", nil)
	assert.Equal(t, float64(5), all["pagination"].(map[string]any)["count"])
	_, beyond, _ := call(t, srv, token, "GET", "/webhooks?page=9", nil)
	assert.Equal(t, []any{}, beyond["data"])
}

func TestAccountScoping(t *testing.T) {
	srv := webhookstest.NewServer()
	defer srv.Close()
	sub := srv.AddAccount(webhookstest.DefaultUsername)
	otherAccount := srv.AddUser("other@example.com", "pw")
	token := srv.Token()

	status, created, _ := call(t, srv, token, "POST", "/webhooks?account_id="+itoa(sub), map[string]any{"event": "Email.Opened", "url": "https://example.com"})
	require.Equal(t, 201, status)
	id := created["id"].(string)

	status, _, _ = call(t, srv, token, "GET", "/webhooks/"+id, nil)
	assert.Equal(t, 404, status, "not in the user's own account")
	status, _, _ = call(t, srv, token, "GET", "/webhooks/"+id+"?account_id="+itoa(sub), nil)
	assert.Equal(t, 200, status)

	status, body, _ := call(t, srv, token, "GET", "/webhooks?account_id="+itoa(otherAccount), nil)
	assert.Equal(t, 403, status, "another user's account")
	assert.Equal(t, "forbidden", body["detail"].([]any)[0].(map[string]any)["type"])
	status, _, _ = call(t, srv, token, "GET", "/webhooks?account_id=0", nil)
	assert.Equal(t, 422, status)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestTriggerSignsAndDelivers(t *testing.T) {
	srv := webhookstest.NewServer(webhookstest.WithDeliveryBackoff(time.Millisecond))
	defer srv.Close()
	token := srv.Token()

	var failuresLeft atomic.Int32
	failuresLeft.Store(2)
	got := make(chan *http.Request, 10)
	bodies := make(chan []byte, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failuresLeft.Add(-1) >= 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- b
	}))
	defer receiver.Close()

	_, active, _ := call(t, srv, token, "POST", "/webhooks", map[string]any{"event": "Email.Clicked", "url": receiver.URL + "/a"})
	_, archived, _ := call(t, srv, token, "POST", "/webhooks", map[string]any{"event": "Email.Clicked", "url": receiver.URL + "/b"})
	call(t, srv, token, "POST", "/webhooks", map[string]any{"event": "Email.Opened", "url": receiver.URL + "/c"})
	call(t, srv, token, "POST", "/webhooks/"+archived["id"].(string)+"/archive", nil)

	deliveries, err := srv.Trigger(context.Background(), webhooks.EventEmailClicked, map[string]any{"email": "a@example.com"})
	require.NoError(t, err)
	require.Len(t, deliveries, 1, "only the active webhook of that event")
	d := deliveries[0]
	assert.Equal(t, active["id"], d.WebhookID)
	assert.Equal(t, 3, d.Attempts, "two failures, then success")
	assert.Equal(t, 200, d.StatusCode)
	assert.True(t, d.OK())
	assert.Empty(t, d.Err)

	r := <-got
	body := <-bodies
	_, withKey, _ := call(t, srv, token, "GET", "/webhooks/"+d.WebhookID, nil)
	key := withKey["signature"].(map[string]any)["key"].(string)
	assert.NoError(t, webhooks.Verify(body, r.Header.Get("X-Signature"), key), "base64 HMAC of the raw body in X-Signature")
	assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
	event, err := webhooks.ParseEvent(body)
	require.NoError(t, err)
	assert.Equal(t, webhooks.EventEmailClicked, event.Type)
	assert.Equal(t, webhookstest.DefaultAccountID, event.AccountID)
	assert.WithinDuration(t, time.Now(), event.CreatedAt, 5*time.Second)
	assert.Equal(t, json.RawMessage(body), d.Payload)
	assert.Equal(t, deliveries, srv.Deliveries())
}

func TestTriggerGivesUpAfterTheLastAttempt(t *testing.T) {
	srv := webhookstest.NewServer(webhookstest.WithDeliveryAttempts(2), webhookstest.WithDeliveryBackoff(time.Millisecond))
	defer srv.Close()
	var calls atomic.Int32
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer receiver.Close()
	call(t, srv, srv.Token(), "POST", "/webhooks", map[string]any{"event": "Email.Opened", "url": receiver.URL})
	deliveries, err := srv.Trigger(context.Background(), webhooks.EventEmailOpened, nil)
	require.NoError(t, err)
	require.Len(t, deliveries, 1)
	assert.Equal(t, 2, deliveries[0].Attempts)
	assert.Equal(t, 500, deliveries[0].StatusCode)
	assert.False(t, deliveries[0].OK())
	assert.Contains(t, deliveries[0].Err, "500")
	assert.Equal(t, int32(2), calls.Load())
}

func TestTriggerAccount(t *testing.T) {
	srv := webhookstest.NewServer()
	defer srv.Close()
	other := srv.AddUser("other@example.com", "pw")
	receiver := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer receiver.Close()
	call(t, srv, srv.Token(), "POST", "/webhooks", map[string]any{"event": "Email.Opened", "url": receiver.URL})
	_, tok := login(t, srv, url.Values{"username": {"other@example.com"}, "password": {"pw"}})
	call(t, srv, tok["access_token"].(string), "POST", "/webhooks", map[string]any{"event": "Email.Opened", "url": receiver.URL})

	all, err := srv.Trigger(context.Background(), webhooks.EventEmailOpened, nil)
	require.NoError(t, err)
	assert.Len(t, all, 2)
	one, err := srv.TriggerAccount(context.Background(), other, webhooks.EventEmailOpened, nil)
	require.NoError(t, err)
	require.Len(t, one, 1)
	event, err := webhooks.ParseEvent(one[0].Payload)
	require.NoError(t, err)
	assert.Equal(t, other, event.AccountID)
}

func TestCloseStopsDeliveriesInFlight(t *testing.T) {
	srv := webhookstest.NewServer()
	arrived := make(chan struct{}, 1)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices the client hanging up only once the body is read.
		io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	defer receiver.Close()
	call(t, srv, srv.Token(), "POST", "/webhooks", map[string]any{"event": "Email.Opened", "url": receiver.URL})
	done := make(chan []webhookstest.Delivery, 1)
	go func() {
		d, _ := srv.Trigger(context.Background(), webhooks.EventEmailOpened, nil)
		done <- d
	}()
	<-arrived
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case d := <-done:
		require.Len(t, d, 1)
		assert.False(t, d[0].OK())
	case <-time.After(5 * time.Second):
		t.Fatal("Trigger kept going after Close")
	}
	<-closed
	_, err := srv.Trigger(context.Background(), webhooks.EventEmailOpened, nil)
	assert.Error(t, err, "a closed server triggers nothing")
}

func TestFaultInjection(t *testing.T) {
	srv := webhookstest.NewServer()
	defer srv.Close()
	token := srv.Token()
	srv.FailNext(2, http.StatusServiceUnavailable, 1500*time.Millisecond)
	for range 2 {
		status, body, hdr := call(t, srv, token, "GET", "/webhooks", nil)
		assert.Equal(t, 503, status)
		assert.Equal(t, "2", hdr.Get("Retry-After"), "rounded up to whole seconds")
		assert.Contains(t, body, "detail")
	}
	status, _, _ := call(t, srv, token, "GET", "/webhooks", nil)
	assert.Equal(t, 200, status, "only the next n calls fail")

	srv.DelayNext(1, 50*time.Millisecond)
	start := time.Now()
	call(t, srv, token, "GET", "/webhooks", nil)
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)

	reqs := srv.Requests()
	require.Len(t, reqs, 4)
	assert.Equal(t, webhookstest.Request{Method: "GET", Path: "/webhooks"}, reqs[0])
}

func TestNewSignedRequest(t *testing.T) {
	payload := []byte(`{"event":"Email.Opened","data":{}}`)
	req := webhookstest.NewSignedRequest("/hook", payload, "s3cret")
	assert.Equal(t, http.MethodPost, req.Method)
	assert.Equal(t, "application/json", req.Header.Get("Content-Type"))
	body, err := io.ReadAll(req.Body)
	require.NoError(t, err)
	assert.Equal(t, payload, body)
	assert.NoError(t, webhooks.Verify(payload, webhooks.SignatureFromHeader(req.Header), "s3cret"))
}

func TestMFAChallenge(t *testing.T) {
	srv := webhookstest.NewServer()
	defer srv.Close()
	srv.RequireMFA(webhookstest.DefaultUsername, "123456")
	status, body := login(t, srv, url.Values{"username": {webhookstest.DefaultUsername}, "password": {webhookstest.DefaultPassword}})
	require.Equal(t, 200, status, "the OpenAPI answers a challenge on 200 (ChallengeResponse)")
	assert.Equal(t, []string{"challenge"}, slices.Collect(maps.Keys(body)))
	challenge, _ := body["challenge"].(string)
	require.NotEmpty(t, challenge)

	post := func(code string) int {
		b, _ := json.Marshal(map[string]string{"challenge": challenge, "code": code})
		resp, err := http.Post(srv.URL+"/token/challenge", "application/json", bytes.NewReader(b))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, 401, post("000000"))
	assert.Equal(t, 200, post("123456"))
	assert.Equal(t, 401, post("123456"), "a challenge is used once")
}

func TestUnknownRoute(t *testing.T) {
	srv := webhookstest.NewServer()
	defer srv.Close()
	status, body, _ := call(t, srv, srv.Token(), "GET", "/nothing-here", nil)
	assert.Equal(t, 404, status)
	assert.Equal(t, "Not Found", body["detail"])
	assert.True(t, strings.HasPrefix(srv.URL, "http://127.0.0.1:"))
}
