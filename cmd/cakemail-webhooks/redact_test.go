package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runUnchecked runs the command without checkOutput, for runs meant to mask an echo.
func (c *cli) runUnchecked(args ...string) result {
	c.t.Helper()
	var stdout, stderr bytes.Buffer
	code := c.app("", &stdout, &stderr).run(context.Background(), args)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// TestAPasswordThatIsAWordLeavesMessagesWhole: with the README's fake password
// "secret", the command's own messages keep that word.
func TestAPasswordThatIsAWordLeavesMessagesWhole(t *testing.T) {
	c := newCLI(t)
	c.srv.AddUser("dev@example.com", "secret")
	t.Setenv("CAKEMAIL_ACCESS_TOKEN", "")
	t.Setenv("CAKEMAIL_USERNAME", "dev@example.com")
	t.Setenv("CAKEMAIL_PASSWORD", "secret")
	t.Setenv("CAKEMAIL_WEBHOOK_SECRET", "secret")

	res := c.run("create", "-u", "https://example.com/hooks", "-e", "email.opened", "-s", "my_secret_key_12345")
	assert.Equal(t, exitUsage, res.code)
	assert.Contains(t, res.stderr, "-s: Cakemail generates each webhook's secret; drop it, then read the secrets with: cakemail-webhooks secrets -u URL")

	res = c.ok("-v", "create", "-u", "https://example.com/hooks", "-e", "email.opened")
	assert.Contains(t, res.stdout, "Their secrets: cakemail-webhooks secrets -u https://example.com/hooks")
	assert.Contains(t, res.stderr, "debug: POST /token -> 200 OK")
	res = c.run("rotate", "no-such-webhook")
	assert.Equal(t, exitFailure, res.code)
	res = c.run("secrets", "-u", "https://example.com/nobody")
	assert.Contains(t, res.stderr, "no active webhook delivers to https://example.com/nobody; see them with: cakemail-webhooks list --archived")

	l := c.start("listen", "-s", "secret,another-secret", "--addr", "127.0.0.1:0")
	assert.Contains(t, l.stderr.String(), "verifying with 2 secret(s)")
	res = c.run("trigger", "email.opened", "-u", "http://"+l.addr+"/", "-s", "a-wrong-one")
	assert.Contains(t, res.stderr, "the signature matches none of the 2 secrets")
	assert.Contains(t, l.stderr.String(), "the signature matches none of the 2 secrets: signed with another secret")
	assert.NotContains(t, l.stderr.String(), "[hidden]")
}

// TestADistinctivePasswordNeverAppears follows a whole session under -v.
func TestADistinctivePasswordNeverAppears(t *testing.T) {
	c := newCLI(t)
	const password = "Zq8-distinctive-pw"
	c.srv.AddUser("dev@example.com", password)
	t.Setenv("CAKEMAIL_ACCESS_TOKEN", "")
	t.Setenv("CAKEMAIL_USERNAME", "dev@example.com")
	t.Setenv("CAKEMAIL_PASSWORD", password)
	const hookURL = "https://example.com/hooks"
	var all strings.Builder
	keep := func(res result) result {
		all.WriteString(res.stdout + res.stderr)
		return res
	}
	keep(c.ok("-v", "apply", "-u", hookURL, "-e", "email.opened,email.clicked"))
	id := decodeList(t, keep(c.ok("-v", "list", "-f", "json")).stdout).Data[0].ID
	keep(c.ok("get", id, "-v"))
	keep(c.ok("secrets", "-u", hookURL, "-v"))
	keep(c.ok("delete", id, "--force", "-v"))
	keep(c.run("get", "no-such-webhook", "-v"))
	t.Setenv("CAKEMAIL_PASSWORD", password+"-wrong")
	res := keep(c.run("list", "-v"))
	assert.Equal(t, exitFailure, res.code)
	assert.Contains(t, res.stderr, "401")
	assert.NotContains(t, all.String(), password)
}

// echoingAPI answers every call with an error that echoes what it was sent:
// the login form, its password, and the Authorization header.
func echoingAPI(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		msg := "Incorrect username or password: got " + string(body) + " and password " + form.Get("password") +
			" with " + r.Header.Get("Authorization")
		status := http.StatusUnauthorized
		if r.URL.Path != "/token" {
			status = http.StatusUnprocessableEntity
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"detail": []map[string]any{{"loc": []string{"body", form.Get("password")}, "msg": msg, "type": "unauthorized"}}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestTheServersEchoesAreMasked: what the API echoes of a password or token is
// masked, in every form it may take; the rest of its words, and ours, stay.
func TestTheServersEchoesAreMasked(t *testing.T) {
	c := newCLI(t)
	echo := echoingAPI(t)
	t.Setenv("CAKEMAIL_BASE_URL", echo.URL)
	const password = `Pw "dist&inct" <wörd>`
	t.Setenv("CAKEMAIL_ACCESS_TOKEN", "")
	t.Setenv("CAKEMAIL_USERNAME", "dev@example.com")
	t.Setenv("CAKEMAIL_PASSWORD", password)
	for _, args := range [][]string{{"list"}, {"-v", "list"}, {"create", "-u", "https://example.com/hooks", "-e", "email.opened"}} {
		res := c.runUnchecked(args...)
		assert.Equal(t, exitFailure, res.code, args)
		assert.Contains(t, res.stderr, "401 Unauthorized", args)
		assert.Contains(t, res.stderr, "Incorrect username or password: got ", args)
		assert.Contains(t, res.stderr, "[hidden]", args)
		for _, form := range []string{password, url.QueryEscape(password), `dist&inct`, `\"dist`, `w\u00f6rd`, "wörd"} {
			assert.NotContains(t, res.stderr+res.stdout, form, args)
		}
	}

	const token = "tok-distinctive-0123456789"
	t.Setenv("CAKEMAIL_ACCESS_TOKEN", token)
	res := c.runUnchecked("-v", "get", "wh1")
	assert.Equal(t, exitFailure, res.code)
	assert.Contains(t, res.stderr, "422 Unprocessable Entity")
	assert.Contains(t, res.stderr, "with Bearer [hidden]")
	assert.NotContains(t, res.stderr, token)
}

func TestDeleteArchives(t *testing.T) {
	c := newCLI(t)
	id := c.create("https://example.com/hooks", "email.opened")
	res := c.ok("delete", id)
	assert.Equal(t, "Cakemail cannot delete webhooks: webhook "+id+" is archived instead and gets no more deliveries. To bring it back: cakemail-webhooks unarchive "+id+"\n", res.stderr)
	assert.Contains(t, res.stdout, "Webhook "+id+" archived.")
	h, _ := c.srv.Webhook(id)
	assert.Equal(t, "archived", string(h.Status))

	// Again, with --force and as JSON: still archived, still exit 0.
	res = c.ok("webhooks", "delete", "--force", id, "-f", "json")
	var v webhookView
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &v))
	assert.Equal(t, "archived", string(v.Status))
	assert.Contains(t, res.stderr, "cakemail-webhooks unarchive "+id)
	c.ok("unarchive", id)
	h, _ = c.srv.Webhook(id)
	assert.Equal(t, "active", string(h.Status))

	res = c.run("delete", "no-such-webhook", "--force")
	assert.Equal(t, exitFailure, res.code)
	assert.Contains(t, res.stderr, "404")
	before := c.requests()
	res = c.run("delete", "--force")
	assert.Equal(t, exitUsage, res.code)
	assert.Contains(t, res.stderr, "want exactly one webhook id argument")
	assert.Equal(t, before, c.requests())
	assert.Contains(t, c.ok("help", "delete").stdout, "--force")
}
