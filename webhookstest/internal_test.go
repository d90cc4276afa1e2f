package webhookstest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLogsAreBoundedByDefault serves the requests in process: over the network
// 10,000 of them would take seconds under the race detector.
func TestLogsAreBoundedByDefault(t *testing.T) {
	s := newServer(nil)
	h := s.routes()
	for i := range DefaultLogLimit + 10 {
		req := httptest.NewRequest(http.MethodGet, "/webhooks?n="+strconv.Itoa(i), nil)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	reqs := s.Requests()
	assert.Len(t, reqs, DefaultLogLimit)
	assert.Equal(t, "n=10", reqs[0].Query, "the oldest were dropped")
	assert.Equal(t, "n="+strconv.Itoa(DefaultLogLimit+9), reqs[len(reqs)-1].Query)
}

var defaultLoginForm = url.Values{"username": {DefaultUsername}, "password": {DefaultPassword}}.Encode()

// postLogin posts the default user's password login to h in process.
func postLogin(h http.Handler) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(defaultLoginForm))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// serveLogin logs the default user in, in process, and returns the answer's strings.
func serveLogin(t *testing.T, h http.Handler) map[string]string {
	t.Helper()
	rec := postLogin(h)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var out map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
	strs := map[string]string{}
	for k, v := range out {
		if s, ok := v.(string); ok {
			strs[k] = s
		}
	}
	return strs
}

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestLoginsHoldBoundedMemory logs in 20,000 times, with and without MFA, and
// holds the heap growth of each run under 2 MiB: tokens and challenges past
// the per-user bounds are freed. (Served in process, to stay fast.)
func TestLoginsHoldBoundedMemory(t *testing.T) {
	const logins = 20_000
	for _, mfa := range []bool{false, true} {
		s := newServer(nil)
		h := s.routes()
		if mfa {
			s.RequireMFA(DefaultUsername, "123456")
		}
		before := liveHeap()
		for i := range logins {
			if rec := postLogin(h); rec.Code != http.StatusOK {
				t.Fatalf("login %d: %d %s", i, rec.Code, rec.Body)
			}
		}
		growth := int64(liveHeap()) - int64(before)
		t.Logf("mfa=%v: heap growth over %d logins: %.2f MiB", mfa, logins, float64(growth)/(1<<20))
		assert.Less(t, growth, int64(2<<20), "mfa=%v", mfa)
		s.mu.Lock()
		assert.LessOrEqual(t, len(s.accessTok), maxSessionsPerUser)
		assert.LessOrEqual(t, len(s.refreshTok), maxSessionsPerUser)
		assert.LessOrEqual(t, len(s.challenges), maxChallengesPerUser)
		s.mu.Unlock()
		runtime.KeepAlive(h)
	}
}

func TestOldestSessionEndsPastTheBound(t *testing.T) {
	s := newServer(nil)
	h := s.routes()
	first := serveLogin(t, h)
	second := serveLogin(t, h)
	for range maxSessionsPerUser - 1 {
		serveLogin(t, h)
	}
	get := func(token string) int {
		req := httptest.NewRequest(http.MethodGet, "/webhooks", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	assert.Equal(t, http.StatusUnauthorized, get(first["access_token"]), "the oldest login ended")
	assert.Equal(t, http.StatusOK, get(second["access_token"]))
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.NotContains(t, s.refreshTok, first["refresh_token"])
	assert.Contains(t, s.refreshTok, second["refresh_token"])
	assert.Len(t, s.accessTok, maxSessionsPerUser)
}

func TestExpiredLoginsArePrunedFirst(t *testing.T) {
	s := newServer(nil)
	h := s.routes()
	keep := serveLogin(t, h)
	s.mu.Lock()
	u := s.users[DefaultUsername]
	for range maxSessionsPerUser - 1 {
		access, refresh := s.issueLocked(u, s.cfg.tokenLifetime)
		s.useRefreshLocked(s.refreshTok[refresh])
		s.accessTok[access].expires = time.Now().Add(-time.Second)
	}
	s.mu.Unlock()
	serveLogin(t, h)
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Len(t, u.sessions, 2, "the dead sessions went, the live one stayed")
	assert.Contains(t, s.accessTok, keep["access_token"])
	assert.Len(t, s.accessTok, 2)
}

func TestChallengesExpireAndAreBounded(t *testing.T) {
	s := newServer(nil)
	h := s.routes()
	s.RequireMFA(DefaultUsername, "123456")
	first := serveLogin(t, h)["challenge"]
	for range maxChallengesPerUser {
		serveLogin(t, h)
	}
	s.mu.Lock()
	assert.NotContains(t, s.challenges, first, "the oldest pending challenge went")
	assert.Len(t, s.challenges, maxChallengesPerUser)
	for _, c := range s.challenges {
		c.expires = time.Now()
	}
	s.mu.Unlock()

	last := serveLogin(t, h)["challenge"]
	s.mu.Lock()
	assert.Len(t, s.challenges, 1, "expired challenges are dropped on the next login")
	s.challenges[last].expires = time.Now()
	s.mu.Unlock()
	body, _ := json.Marshal(map[string]string{"challenge": last, "code": "123456"})
	req := httptest.NewRequest(http.MethodPost, "/token/challenge", bytes.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusUnauthorized, rec.Code, "an expired challenge is refused")
	s.mu.Lock()
	assert.Empty(t, s.challenges)
	assert.Empty(t, s.users[DefaultUsername].challenges)
	s.mu.Unlock()
}
