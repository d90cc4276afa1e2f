package webhookstest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/internal/testutil"
	"github.com/cakemail-go/webhooks/webhookstest"
)

func TestHugePagesAnswerWithoutPanicking(t *testing.T) {
	srv := webhookstest.NewServer()
	defer srv.Close()
	token := srv.Token()
	for i := range 5 {
		call(t, srv, token, "POST", "/webhooks", map[string]any{"event": "Email.Opened", "url": fmt.Sprintf("https://example.com/%d", i)})
	}
	for _, q := range []string{
		"page=4611686018427387904&per_page=4", // (page-1)*per_page overflows
		"page=9223372036854775807&per_page=9223372036854775807",
		"page=2&per_page=9223372036854775807", // start+per_page overflows
		"page=3&per_page=2",
	} {
		status, body, _ := call(t, srv, token, "GET", "/webhooks?"+q, nil)
		require.Equal(t, 200, status, q)
		data := body["data"].([]any)
		if q == "page=3&per_page=2" {
			assert.Len(t, data, 1, "the last, short page")
		} else {
			assert.Empty(t, data, "a page past the last is empty: %s", q)
		}
	}
	status, body, _ := call(t, srv, token, "GET", "/webhooks?page=1&per_page=9223372036854775807", nil)
	require.Equal(t, 200, status)
	assert.Len(t, body["data"], 5)
	status, _, _ = call(t, srv, token, "GET", "/webhooks?page=99999999999999999999", nil)
	assert.Equal(t, 422, status, "a page that is no int64 is a validation error")
}

func TestDeliveriesNeverReenterTheFake(t *testing.T) {
	srv := webhookstest.NewServer(webhookstest.WithDeliveryBackoff(time.Millisecond))
	defer srv.Close()
	token := srv.Token()
	var receiverCalls atomic.Int32
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { receiverCalls.Add(1) }))
	defer receiver.Close()
	call(t, srv, token, "POST", "/webhooks", map[string]any{"event": "Email.Opened", "url": srv.URL + "/_fake/trigger"})
	call(t, srv, token, "POST", "/webhooks", map[string]any{"event": "Email.Opened", "url": srv.URL + "/webhooks"})
	call(t, srv, token, "POST", "/webhooks", map[string]any{"event": "Email.Opened", "url": receiver.URL})

	// The route other languages use, which once recursed without end.
	resp, err := http.Post(srv.URL+"/_fake/trigger", "application/json", strings.NewReader(`{"event": "Email.Opened", "data": {}}`))
	require.NoError(t, err)
	var deliveries []webhookstest.Delivery
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&deliveries))
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Len(t, deliveries, 3, "each webhook once: no delivery triggered another")
	for _, d := range deliveries {
		if d.URL == receiver.URL {
			assert.True(t, d.OK())
			continue
		}
		assert.Equal(t, http.StatusLoopDetected, d.StatusCode, d.URL)
	}
	assert.Equal(t, int32(1), receiverCalls.Load())
	assert.Len(t, srv.Deliveries(), 3)
	for _, r := range srv.Requests() {
		assert.NotEqual(t, "POST /webhooks", r.Method+" "+r.Path+"?"+r.Query, "a delivery is not an API call")
	}

	// Two fakes delivering to each other's trigger route stop at once too.
	other := webhookstest.NewServer(webhookstest.WithDeliveryBackoff(time.Millisecond))
	defer other.Close()
	call(t, other, other.Token(), "POST", "/webhooks", map[string]any{"event": "Email.Clicked", "url": srv.URL + "/_fake/trigger"})
	call(t, srv, token, "POST", "/webhooks", map[string]any{"event": "Email.Clicked", "url": other.URL + "/_fake/trigger"})
	ds, err := srv.Trigger(context.Background(), webhooks.EventEmailClicked, nil)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	assert.Equal(t, http.StatusLoopDetected, ds[0].StatusCode)
	assert.Empty(t, other.Deliveries())
}

func TestLogsAreBoundedOldestDroppedFirst(t *testing.T) {
	srv := webhookstest.NewServer(webhookstest.WithLogLimit(3), webhookstest.WithDeliveryAttempts(1))
	defer srv.Close()
	token := srv.Token()
	for i := range 5 {
		call(t, srv, token, "GET", fmt.Sprintf("/webhooks?page=%d", i+1), nil)
	}
	reqs := srv.Requests()
	require.Len(t, reqs, 3)
	assert.Equal(t, []string{"page=3", "page=4", "page=5"}, []string{reqs[0].Query, reqs[1].Query, reqs[2].Query})

	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer receiver.Close()
	call(t, srv, token, "POST", "/webhooks", map[string]any{"event": "Email.Opened", "url": receiver.URL})
	for i := range 5 {
		_, err := srv.Trigger(context.Background(), webhooks.EventEmailOpened, map[string]any{"n": i})
		require.NoError(t, err)
	}
	ds := srv.Deliveries()
	require.Len(t, ds, 3)
	for i, d := range ds {
		var p struct {
			Data struct{ N int } `json:"data"`
		}
		require.NoError(t, json.Unmarshal(d.Payload, &p))
		assert.Equal(t, i+2, p.Data.N, "the newest three, oldest first")
	}
}

func TestTokenLifetimeNeverOverflows(t *testing.T) {
	srv := webhookstest.NewServer()
	defer srv.Close()
	for _, secs := range []string{"9223372037", "9223372036854775807", "99999999999999999999"} {
		status, tok := login(t, srv, url.Values{"username": {webhookstest.DefaultUsername}, "password": {webhookstest.DefaultPassword}, "expiration_seconds": {secs}})
		require.Equal(t, 200, status, secs)
		assert.Equal(t, float64(9223372036), tok["expires_in"], "clamped to the longest lifetime: %s", secs)
		status, _, _ = call(t, srv, tok["access_token"].(string), "GET", "/webhooks", nil)
		assert.Equal(t, 200, status, "the token is valid")
	}
	for _, secs := range []string{"-99999999999999999999", "-1", "599", "1e9", "ten"} {
		status, body := login(t, srv, url.Values{"username": {webhookstest.DefaultUsername}, "password": {webhookstest.DefaultPassword}, "expiration_seconds": {secs}})
		assert.Equal(t, 422, status, secs)
		assert.Contains(t, fmt.Sprint(body["detail"]), "expiration_seconds", secs)
	}
}

// putToken calls the deprecated PUT /token refresh.
func putToken(t *testing.T, srv *webhookstest.Server, form url.Values) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, srv.URL+"/token?version=v1", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

func TestDeprecatedPutTokenRefreshes(t *testing.T) {
	srv := webhookstest.NewServer()
	defer srv.Close()
	status, tok := login(t, srv, url.Values{"username": {webhookstest.DefaultUsername}, "password": {webhookstest.DefaultPassword}})
	require.Equal(t, 200, status)
	srv.ExpireTokens()

	status, refreshed := putToken(t, srv, url.Values{"refresh_token": {tok["refresh_token"].(string)}})
	require.Equal(t, 200, status)
	assert.Equal(t, schemaKeys(t, "TokenResponse"), sortedKeys(refreshed))
	assert.Equal(t, "bearer", refreshed["token_type"])
	status, _, _ = call(t, srv, refreshed["access_token"].(string), "GET", "/webhooks", nil)
	assert.Equal(t, 200, status)

	status, _ = putToken(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshed["refresh_token"].(string)}})
	assert.Equal(t, 200, status, "grant_type may be given, as refresh_token")
	status, body := putToken(t, srv, url.Values{"grant_type": {"password"}, "refresh_token": {refreshed["refresh_token"].(string)}})
	assert.Equal(t, 422, status)
	assert.Contains(t, fmt.Sprint(body["detail"]), "grant_type")
	status, body = putToken(t, srv, url.Values{})
	assert.Equal(t, 422, status, "refresh_token is required")
	assert.Contains(t, fmt.Sprint(body["detail"]), "refresh_token")
	status, _ = putToken(t, srv, url.Values{"refresh_token": {"made-up"}})
	assert.Equal(t, 401, status)
}

func TestMFAChallengeCodeShapeAndClient(t *testing.T) {
	srv := webhookstest.NewServer()
	defer srv.Close()
	assert.Panics(t, func() { srv.RequireMFA(webhookstest.DefaultUsername, "1234") })
	srv.RequireMFA(webhookstest.DefaultUsername, "0123456789ab")
	status, body := login(t, srv, url.Values{"username": {webhookstest.DefaultUsername}, "password": {webhookstest.DefaultPassword}})
	require.Equal(t, 200, status)
	assert.Equal(t, schemaKeys(t, "ChallengeResponse"), sortedKeys(body))
	post := func(challenge, code string) int {
		b, _ := json.Marshal(map[string]string{"challenge": challenge, "code": code})
		resp, err := http.Post(srv.URL+"/token/challenge", "application/json", bytes.NewReader(b))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, code := range []string{"12345", "1234567", "abcdef", "0123456789ag", ""} {
		assert.Equal(t, 422, post(body["challenge"].(string), code), "the spec's code pattern: %q", code)
	}
	assert.Equal(t, 422, post("", "123456"), "challenge is required")
	assert.Equal(t, 200, post(body["challenge"].(string), "0123456789AB"), "hex in either case")

	// The SDK's client, fed the 200 challenge, finishes the login.
	client, err := webhooks.NewClient(webhooks.WithBaseURL(srv.URL), webhooks.WithCredentials(webhookstest.DefaultUsername, webhookstest.DefaultPassword))
	require.NoError(t, err)
	ctx := context.Background()
	_, err = client.List(ctx, nil)
	var mfa *webhooks.MFARequiredError
	require.ErrorAs(t, err, &mfa)
	require.NoError(t, client.CompleteMFA(ctx, mfa.Challenge, "0123456789ab"))
	_, err = client.List(ctx, nil)
	assert.NoError(t, err)
}

func TestLoggerLogsEveryRequestAndDeliveryWithoutSecrets(t *testing.T) {
	var logs testutil.SyncBuffer
	srv := webhookstest.NewServer(webhookstest.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	defer srv.Close()
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer receiver.Close()

	status, tok := login(t, srv, url.Values{"username": {webhookstest.DefaultUsername}, "password": {webhookstest.DefaultPassword}})
	require.Equal(t, 200, status)
	access := tok["access_token"].(string)
	hookURL := strings.Replace(receiver.URL, "http://", "http://hookuser:hookpass@", 1) + "/in"
	_, created, _ := call(t, srv, access, "POST", "/webhooks", map[string]any{"event": "Email.Opened", "url": hookURL})
	_, got, _ := call(t, srv, access, "GET", "/webhooks/"+created["id"].(string), nil)
	key := got["signature"].(map[string]any)["key"].(string)
	call(t, srv, access, "GET", "/webhooks?page=2", nil)
	_, err := srv.Trigger(context.Background(), webhooks.EventEmailOpened, map[string]any{"email": "a@example.com"})
	require.NoError(t, err)

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	require.Len(t, lines, 5, logs.String())
	assert.Contains(t, lines[0], `msg="POST /token"`)
	assert.Contains(t, lines[0], "status=200")
	assert.Contains(t, lines[1], `msg="POST /webhooks"`)
	assert.Contains(t, lines[1], "status=201")
	assert.Contains(t, lines[3], `query="page=2"`)
	assert.Contains(t, lines[4], "msg=delivery")
	assert.Contains(t, lines[4], "event=Email.Opened")
	assert.Contains(t, lines[4], "url=http://xxxxx@127.0.0.1:")
	assert.Contains(t, lines[4], "status=200")
	for _, secret := range []string{access, tok["refresh_token"].(string), key, webhookstest.DefaultPassword, "hookpass", "hookuser", "Bearer"} {
		assert.NotContains(t, logs.String(), secret)
	}
}
