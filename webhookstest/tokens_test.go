package webhookstest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks/webhookstest"
)

func TestRefreshTokensRotate(t *testing.T) {
	srv := webhookstest.NewServer()
	defer srv.Close()
	status, tok := login(t, srv, url.Values{"username": {webhookstest.DefaultUsername}, "password": {webhookstest.DefaultPassword}})
	require.Equal(t, 200, status)
	first := tok["refresh_token"].(string)

	status, refreshed := login(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first}})
	require.Equal(t, 200, status)
	second := refreshed["refresh_token"].(string)
	assert.NotEqual(t, first, second, "a refresh issues a new refresh token")
	status, _ = login(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first}})
	assert.Equal(t, 401, status, "a used refresh token stops working")
	status, _ = putToken(t, srv, url.Values{"refresh_token": {first}})
	assert.Equal(t, 401, status, "on the deprecated PUT /token too")

	// The deprecated refresh rotates as well, and the new token works on either call.
	status, put := putToken(t, srv, url.Values{"refresh_token": {second}})
	require.Equal(t, 200, status)
	status, _ = login(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {second}})
	assert.Equal(t, 401, status)
	status, _ = login(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {put["refresh_token"].(string)}})
	assert.Equal(t, 200, status)

	// The access token a refresh replaced lives out its lifetime.
	status, _, _ = call(t, srv, tok["access_token"].(string), "GET", "/webhooks", nil)
	assert.Equal(t, 200, status)
}

func TestRefreshRefusedForAnotherAccountIsNotUsedUp(t *testing.T) {
	srv := webhookstest.NewServer()
	defer srv.Close()
	_, tok := login(t, srv, url.Values{"username": {webhookstest.DefaultUsername}, "password": {webhookstest.DefaultPassword}})
	refresh := tok["refresh_token"].(string)
	status, _ := login(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "account_id": {"999"}})
	assert.Equal(t, 403, status)
	status, _ = login(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
	assert.Equal(t, 200, status, "a refused call leaves the refresh token usable")
}

// mfaLogin starts a password login of an MFA user and returns its challenge.
func mfaLogin(t *testing.T, srv *webhookstest.Server) string {
	t.Helper()
	status, body := login(t, srv, url.Values{"username": {webhookstest.DefaultUsername}, "password": {webhookstest.DefaultPassword}})
	require.Equal(t, 200, status)
	require.NotEmpty(t, body["challenge"])
	return body["challenge"].(string)
}

func postChallenge(t *testing.T, srv *webhookstest.Server, challenge, code string) int {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"challenge": challenge, "code": code})
	resp, err := http.Post(srv.URL+"/token/challenge", "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func TestMFAChallengeDiesAfterFiveWrongCodes(t *testing.T) {
	srv := webhookstest.NewServer()
	defer srv.Close()
	srv.RequireMFA(webhookstest.DefaultUsername, "123456")

	challenge := mfaLogin(t, srv)
	for i := range 5 {
		assert.Equal(t, 401, postChallenge(t, srv, challenge, "000000"), "wrong code %d", i+1)
	}
	assert.Equal(t, 401, postChallenge(t, srv, challenge, "123456"), "after 5 wrong codes the right one is refused")

	challenge = mfaLogin(t, srv)
	for range 4 {
		assert.Equal(t, 401, postChallenge(t, srv, challenge, "000000"))
	}
	assert.Equal(t, 200, postChallenge(t, srv, challenge, "123456"), "4 wrong codes leave the challenge alive")
	assert.Equal(t, 401, postChallenge(t, srv, challenge, "123456"), "and it is used once")

	// A malformed code is refused before the challenge is looked at, and does not count.
	challenge = mfaLogin(t, srv)
	for range 10 {
		assert.Equal(t, 422, postChallenge(t, srv, challenge, "12"))
	}
	assert.Equal(t, 200, postChallenge(t, srv, challenge, "123456"))
}
