package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/internal/testutil"
	"github.com/cakemail-go/webhooks/webhookstest"
)

// TestServesAnyHTTPClient drives the command as a client in another language
// would: plain HTTP, form-encoded login, JSON calls, then the trigger route.
func TestServesAnyHTTPClient(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *webhookstest.Server, 1)
	var stdout, stderr testutil.SyncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"-addr", "127.0.0.1:0", "-user", "dev@example.com", "-password", "s3cret"}, &stdout, &stderr, ready)
	}()
	srv := <-ready
	assert.Contains(t, stdout.String(), srv.URL)
	assert.Contains(t, stdout.String(), "dev@example.com")

	resp, err := http.PostForm(srv.URL+"/token", url.Values{"grant_type": {"password"}, "username": {"dev@example.com"}, "password": {"s3cret"}})
	require.NoError(t, err)
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		Accounts     []int  `json:"accounts"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.NotEmpty(t, tok.AccessToken)

	received := make(chan *http.Request, 1)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		received <- r
	}))
	defer receiver.Close()

	create, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks", strings.NewReader(`{"event":"Email.Opened","url":"`+receiver.URL+`"}`))
	create.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	create.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(create)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	resp, err = http.Post(srv.URL+"/_fake/trigger", "application/json", strings.NewReader(`{"event":"email.opened","data":{"email":"a@example.com"},"account_id":`+jsonInt(tok.Accounts[0])+`}`))
	require.NoError(t, err)
	var deliveries []map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&deliveries))
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	require.Len(t, deliveries, 1)
	assert.Equal(t, float64(200), deliveries[0]["status_code"])

	select {
	case r := <-received:
		body, _ := io.ReadAll(r.Body)
		event, err := webhooks.ParseEvent(body)
		require.NoError(t, err)
		assert.Equal(t, webhooks.EventEmailOpened, event.Type)
		assert.Equal(t, tok.Accounts[0], event.AccountID)
		assert.NotEmpty(t, r.Header.Get(webhooks.SignatureHeader))
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}

	resp, err = http.Post(srv.URL+"/_fake/trigger", "application/json", strings.NewReader(`{"event":"Email.Teleported"}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)

	cancel()
	select {
	case code := <-exited:
		assert.Equal(t, 0, code)
	case <-time.After(5 * time.Second):
		t.Fatal("did not stop when its context ended")
	}

	// One line per API request and per delivery, and nothing secret in any.
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	require.Len(t, lines, 5, stderr.String())
	for i, want := range []string{`msg="POST /token" status=200`, `msg="POST /webhooks" status=201`, `msg=delivery event=Email.Opened`, `msg="POST /_fake/trigger" status=200`, `msg="POST /_fake/trigger" status=422`} {
		assert.Contains(t, lines[i], want)
	}
	hook, ok := srv.Webhook(deliveries[0]["webhook_id"].(string))
	require.True(t, ok)
	for _, secret := range []string{tok.AccessToken, tok.RefreshToken, "s3cret", hook.Secret, "Bearer", "application/json"} {
		assert.NotContains(t, stderr.String(), secret)
	}
}

func jsonInt(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestBusyPortAndBadFlags(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var stdout, stderr testutil.SyncBuffer
	assert.Equal(t, 1, run(context.Background(), []string{"-addr", ln.Addr().String()}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "address already in use")
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(stderr.String()), "\n")+1, "one line")

	for _, args := range [][]string{{"-nope"}, {"-user", ""}, {"extra"}, {"-token-lifetime", "-1s"}} {
		var out, errOut testutil.SyncBuffer
		assert.Equal(t, 2, run(context.Background(), args, &out, &errOut), "%q", args)
		assert.NotEmpty(t, errOut.String())
	}
}

func TestBannerNamesEveryUserAndQuietSilencesTheLog(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		users []string // "user password" pairs the banner must name
	}{
		{[]string{"-user", "dev@example.com", "-password", "s3cret"}, []string{"dev@example.com  password: s3cret", "user@example.com  password: password"}},
		{nil, []string{"user@example.com  password: password"}},
		{[]string{"-password", "other"}, []string{"user@example.com  password: other"}},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan *webhookstest.Server, 1)
		var stdout, stderr testutil.SyncBuffer
		exited := make(chan int, 1)
		go func() {
			exited <- run(ctx, append([]string{"-addr", "127.0.0.1:0", "-quiet"}, tc.args...), &stdout, &stderr, ready)
		}()
		srv := <-ready
		banner := stdout.String()
		assert.Equal(t, len(tc.users), strings.Count(banner, "user: "), banner)
		for _, u := range tc.users {
			assert.Contains(t, banner, "user: "+u, banner)
			name, pass, _ := strings.Cut(u, "  password: ")
			resp, err := http.PostForm(srv.URL+"/token", url.Values{"username": {name}, "password": {pass}})
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, 200, resp.StatusCode, "every user the banner names can log in: %s", u)
		}
		if strings.Contains(banner, "password: password") {
			assert.Contains(t, banner, "well-known credential", "the built-in user is said to be a fake's")
		}
		cancel()
		assert.Equal(t, 0, <-exited)
		assert.Empty(t, stderr.String(), "-quiet: no log lines")
	}
}

// TestBannerPrintsTheLineThatPointsTheCLIAtIt: the export line, read back by a
// shell, gives the fake's URL and a user that can log in, whatever the quoting.
func TestBannerPrintsTheLineThatPointsTheCLIAtIt(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to read the line back")
	}
	for _, tc := range []struct {
		args           []string
		user, password string
		tokenSet       bool
	}{
		{[]string{"-user", "dev@example.com", "-password", "secret"}, "dev@example.com", "secret", false},
		{nil, webhookstest.DefaultUsername, webhookstest.DefaultPassword, true},
		{[]string{"-user", "o'brien@example.com", "-password", `it's a $ecret; "quoted" \ and spaces`}, "o'brien@example.com", `it's a $ecret; "quoted" \ and spaces`, false},
	} {
		if tc.tokenSet {
			t.Setenv("CAKEMAIL_ACCESS_TOKEN", "a-token-from-elsewhere")
		} else {
			t.Setenv("CAKEMAIL_ACCESS_TOKEN", "")
		}
		t.Setenv("CAKEMAIL_ACCOUNT_ID", "")
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan *webhookstest.Server, 1)
		var stdout, stderr testutil.SyncBuffer
		exited := make(chan int, 1)
		go func() {
			exited <- run(ctx, append([]string{"-addr", "127.0.0.1:0", "-quiet"}, tc.args...), &stdout, &stderr, ready)
		}()
		srv := <-ready
		banner := stdout.String()
		var line string
		for _, l := range strings.Split(banner, "\n") {
			if strings.HasPrefix(l, "export ") {
				line = l
			}
		}
		require.NotEmpty(t, line, banner)
		assert.Contains(t, banner, "Point cakemail-webhooks at it with:\n"+line+"\n")
		if tc.tokenSet {
			assert.Contains(t, banner, "unset CAKEMAIL_ACCESS_TOKEN")
		} else {
			assert.NotContains(t, banner, "unset")
		}

		out, err := exec.Command(sh, "-c", line+`; printf '%s\n%s\n%s' "$CAKEMAIL_BASE_URL" "$CAKEMAIL_USERNAME" "$CAKEMAIL_PASSWORD"`).Output()
		require.NoError(t, err, line)
		assert.Equal(t, []string{srv.URL, tc.user, tc.password}, strings.SplitN(string(out), "\n", 3), line)
		resp, err := http.PostForm(srv.URL+"/token", url.Values{"grant_type": {"password"}, "username": {tc.user}, "password": {tc.password}})
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "the exported user can log in")
		cancel()
		assert.Equal(t, 0, <-exited)
	}
}
