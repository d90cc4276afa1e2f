package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
)

// A secret read with a newline after it (a file, a CRLF .env line): the SDK's
// Verifier refuses it, and so does verify, which says why instead of trimming
// it into a valid answer.
func TestVerifyExplainsASecretWithWhitespaceAround(t *testing.T) {
	c := newCLI(t)
	const secret = "whsec-the-receivers-secret"
	sig := webhooks.Sign([]byte(explainBody), secret)
	fromFlag := func(args ...string) result {
		return c.runStdin(explainBody, append([]string{"verify", "-s", secret + "\n", "--signature", sig}, args...)...)
	}
	fromEnv := func(args ...string) result {
		t.Setenv("CAKEMAIL_WEBHOOK_SECRET", secret+"\r\n")
		return c.runStdin(explainBody, append([]string{"verify", "--signature", sig}, args...)...)
	}
	for name, verify := range map[string]func(...string) result{"-s": fromFlag, "CAKEMAIL_WEBHOOK_SECRET": fromEnv} {
		res := verify("--explain")
		assert.Equal(t, exitFailure, res.code, name)
		assert.NotContains(t, res.stdout, "valid:", name)
		assert.Contains(t, res.stdout, "why: Secret 1 has a newline after it, and matches the signature once trimmed: trim the secret where it is kept", name)
		assert.Contains(t, res.stdout, "the SDK's Verifier refuses a secret with whitespace around it", name)
		assert.Contains(t, res.stderr, "invalid: whitespace around a signing secret: secret 1 of 1 has a newline after it", name)
		assertNothingSecret(t, res.stdout+res.stderr, []byte(explainBody), secret)

		res = verify()
		assert.Equal(t, exitFailure, res.code, "%s: without --explain too", name)
		assert.NotContains(t, res.stdout, "valid:", name)
		assert.Contains(t, res.stderr, "whitespace around a signing secret", name)

		res = verify("--explain", "-f", "json")
		var v verifyResult
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &v), res.stdout)
		assert.False(t, v.Valid)
		assert.Contains(t, v.Error, "whitespace around a signing secret")
		require.NotNil(t, v.Explanation)
		assert.Equal(t, webhooks.CauseSecretWhitespace, v.Explanation.Cause)
		assert.Empty(t, v.Explanation.OnceTrimmed, "trimmed, the secret verifies")
	}

	// Trimmed, a wrong secret is still wrong: verify says both.
	res := c.runStdin(explainBody, "verify", "-s", "whsec-another-one\n", "--signature", sig, "--explain")
	assert.Equal(t, exitFailure, res.code)
	assert.Contains(t, res.stdout, "why: Secret 1 has a newline after it, and even trimmed it does not match the signature: trim")
	assert.Contains(t, res.stdout, "\nonce trimmed: The secret given does not match the signature")

	// Spaces that set out a list are not the secrets'.
	res = c.runStdin(explainBody, "verify", "-s", "whsec-old, "+secret, "--signature", sig)
	assert.Equal(t, exitOK, res.code, res.stderr)

	// The commands that build a Verifier, or sign for one, refuse it alike.
	for _, args := range [][]string{
		{"listen", "-s", secret + "\n", "--addr", "127.0.0.1:0"},
		{"trigger", "email.opened", "-u", "http://127.0.0.1:1/hook", "-s", " " + secret},
	} {
		res := c.run(args...)
		assert.Equal(t, exitUsage, res.code, "%v", args)
		assert.Contains(t, res.stderr, "whitespace around a signing secret: secret 1 of 1 has", "%v", args)
		assert.NotContains(t, res.stderr, secret)
	}
}

// captureRequests is a receiver that keeps each request it gets, as
// httputil.DumpRequest writes it: what verify reads as a captured request.
func captureRequests(t *testing.T) (url string, captured func() []byte) {
	var last []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dump, err := httputil.DumpRequest(r, true)
		require.NoError(t, err)
		last = dump
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/hook", func() []byte { return last }
}

// A captured request is diagnosed whatever it lacks: its signature header,
// or the end of its body.
func TestVerifyExplainsACapturedRequest(t *testing.T) {
	c := newCLI(t)
	const secret = "whsec-the-receivers-secret"
	sent := []byte(explainBody)
	url, captured := captureRequests(t)

	// As the receiver got it: valid.
	c.ok("trigger", "email.opened", "-u", url, "-s", secret)
	file := filepath.Join(t.TempDir(), "delivery.http")
	require.NoError(t, os.WriteFile(file, captured(), 0o600))
	res := c.run("verify", "-s", secret, file)
	assert.Equal(t, exitOK, res.code, res.stderr)

	// Cut short, as a proxy's limit or a copy from a terminal leaves it.
	header := "POST /hook HTTP/1.1\r\nHost: example.com\r\nContent-Length: " + strconv.Itoa(len(sent)) +
		"\r\nX-Signature: " + webhooks.Sign(sent, secret) + "\r\n\r\n"
	cut := header + explainBody[:40]
	res = c.runStdin(cut, "verify", "-s", secret, "--explain")
	assert.Equal(t, exitFailure, res.code, res.stderr)
	assert.Contains(t, res.stdout, "why: The body is 40 bytes but its Content-Length says "+strconv.Itoa(len(sent))+
		": it was cut short: capture the whole request (cakemail-webhooks help verify says how)")
	res = c.runStdin(cut, "verify", "-s", secret)
	assert.Equal(t, exitFailure, res.code)
	assert.Contains(t, res.stderr, "warning: the captured body is 40 bytes but its Content-Length says "+strconv.Itoa(len(sent))+": the capture is cut short")

	chunked := "POST /hook HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\nX-Signature: " + webhooks.Sign(sent, secret) +
		"\r\n\r\n" + strconv.FormatInt(int64(len(sent)), 16) + "\r\n" + explainBody[:60]
	res = c.runStdin(chunked, "verify", "-s", secret, "--explain")
	assert.Equal(t, exitFailure, res.code, res.stderr)
	assert.Contains(t, res.stdout, "why: The body ends before its JSON is complete: it was cut short: capture the whole request")

	// No signature header, but some that look like one.
	lookalikes := "POST /hook HTTP/1.1\r\nHost: example.com\r\nX-Hub-Signature-256: sha256=" + webhooks.SignHex(sent, secret) +
		"\r\nSignature: \r\nContent-Length: " + strconv.Itoa(len(sent)) + "\r\n\r\n" + explainBody
	res = c.runStdin(lookalikes, "verify", "-s", secret, "--explain")
	assert.Equal(t, exitFailure, res.code, res.stderr)
	assert.Contains(t, res.stdout, "why: The delivery has no X-Signature or X-Cakemail-Signature header, only Signature (empty) and X-Hub-Signature-256: check that the capture kept every header")
	assertNothingSecret(t, res.stdout+res.stderr, sent, secret)

	res = c.runStdin(explainBody, "verify", "-s", secret, "--explain")
	assert.Equal(t, exitUsage, res.code, "only input that is no HTTP request is a usage error")
	assert.Contains(t, c.ok("help", "verify").stdout, "httputil.DumpRequest(r, true)", "the help says how to capture one")
	assert.Contains(t, res.stderr, "a request line (POST /path HTTP/1.1), headers, a blank line, then the body")
	assertNothingSecret(t, res.stderr, sent, secret)
}

// The command's advice names its own commands and flags, never the SDK's
// calls, whatever the cause.
func TestExplanationsNameCommandsNotGoCalls(t *testing.T) {
	c := newCLI(t)
	const secret = "whsec-the-receivers-secret"
	sent := []byte(explainBody)
	sig := webhooks.Sign(sent, secret)
	jwt := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256"}`)) + ".eyJzdWIiOiI0MiJ9.c2ln"
	reencoded := "{\n  \"event\": \"Email.Clicked\",\n  \"account_id\": 1,\n  \"created_on\": 1700000000,\n  \"data\": {\n    \"email\": \"jane.private@example.com\"\n  }\n}"
	causes := map[webhooks.Cause][]string{}
	for _, tc := range []struct {
		stdin string
		args  []string
	}{
		{explainBody + "\n", []string{"-s", secret, "--signature", sig}},
		{reencoded, []string{"-s", secret, "--signature", sig}},
		{explainBody, []string{"-s", `"` + secret + `"`, "--signature", sig}},
		{explainBody, []string{"-s", secret + "\n", "--signature", sig}},
		{explainBody, []string{"-s", jwt, "--signature", sig}},
		{explainBody[:30], []string{"-s", secret, "--signature", sig}},
		{explainBody, []string{"-s", "whsec-another", "--signature", sig}},
		{explainBody, []string{"-s", secret, "--signature", sig[:20]}},
		{"POST /hook HTTP/1.1\r\nHost: x\r\n\r\n" + explainBody, []string{"-s", secret}},
	} {
		res := c.runStdin(tc.stdin, append([]string{"verify", "--explain", "-f", "json"}, tc.args...)...)
		var v verifyResult
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &v), res.stdout+res.stderr)
		require.NotNil(t, v.Explanation, "%v", tc.args)
		causes[v.Explanation.Cause] = append(causes[v.Explanation.Cause], v.Explanation.Why)
		for _, goName := range []string{"Client.", "Webhook.Secret", "NewVerifier", "Diagnose", "Verifier("} {
			assert.NotContains(t, v.Explanation.Why, goName)
		}
		assert.True(t, strings.HasSuffix(v.Explanation.Why, "."), v.Explanation.Why)
		assert.NotContains(t, strings.TrimSuffix(v.Explanation.Why, "."), ". ", "one sentence: %s", v.Explanation.Why)
	}
	assert.Len(t, causes, 8, "every cause: %v", causes)
	assert.Contains(t, causes[webhooks.CauseWrongSecret][0], "cakemail-webhooks secrets -u URL")
	assert.Contains(t, causes[webhooks.CauseSecretLooksLikeToken][0], "cakemail-webhooks get <id>")
}
