package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
)

const explainBody = `{"event":"Email.Clicked","account_id":1,"created_on":1700000000,"data":{"email":"jane.private@example.com"}}`

// assertNothingSecret fails if out holds a secret, a MAC of body in any form,
// or the body's personal data.
func assertNothingSecret(t *testing.T, out string, body []byte, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		assert.NotContains(t, out, s)
		for _, payload := range [][]byte{body, []byte(explainBody)} {
			assert.NotContains(t, out, webhooks.Sign(payload, s)[:16])
			assert.NotContains(t, out, webhooks.SignHex(payload, s)[:16])
		}
	}
	assert.NotContains(t, out, "jane.private")
}

func TestVerifyExplain(t *testing.T) {
	c := newCLI(t)
	const secret = "whsec-the-receivers-secret"
	sent := []byte(explainBody)
	sig := webhooks.Sign(sent, secret)

	res := c.runStdin(explainBody+"\n", "verify", "-s", secret, "--signature", sig, "--explain")
	assert.Equal(t, exitFailure, res.code)
	assert.Contains(t, res.stdout, "why: The body matches the signature once its trailing newline is removed")
	assertNothingSecret(t, res.stdout+res.stderr, sent, secret)

	reencoded := "{\n  \"event\": \"Email.Clicked\",\n  \"account_id\": 1,\n  \"created_on\": 1700000000,\n  \"data\": {\n    \"email\": \"jane.private@example.com\"\n  }\n}"
	capture := "POST /hook HTTP/1.1\r\nHost: example.com\r\nContent-Length: " + strconv.Itoa(len(reencoded)) +
		"\r\nX-Signature: " + sig + "\r\n\r\n" + reencoded
	res = c.runStdin(capture, "verify", "-s", secret, "--explain", "-f", "json")
	assert.Equal(t, exitFailure, res.code)
	var v verifyResult
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &v), res.stdout)
	require.NotNil(t, v.Explanation)
	assert.Equal(t, webhooks.CauseBodyReserialized, v.Explanation.Cause)
	assert.Contains(t, v.Explanation.Why, "compact JSON")
	assert.Nil(t, v.Explanation.SignedBy)
	assertNothingSecret(t, res.stdout+res.stderr, []byte(reencoded), secret)

	res = c.runStdin(explainBody, "verify", "-s", `"`+secret+`"`, "--signature", sig, "--explain")
	assert.Contains(t, res.stdout, "why: Secret 1 has quotes around it, and matches the signature once trimmed: remove the quotes where the secret is kept")

	res = c.runStdin(explainBody, "verify", "-s", secret, "--signature", sig[:30], "--explain")
	assert.Contains(t, res.stdout, "looks truncated")

	res = c.runStdin(explainBody, "verify", "-s", secret, "--signature", sig)
	assert.NotContains(t, res.stdout, "why:", "only with --explain")

	res = c.runStdin(explainBody, "verify", "-s", secret, "--signature", sig, "-u", "https://example.com/hook")
	assert.Equal(t, exitUsage, res.code)
	assert.Empty(t, c.srv.Requests(), "without --url, --explain works offline")
}

func TestVerifyExplainNamesTheWebhookThatSigned(t *testing.T) {
	c := newCLI(t)
	const url = "https://receiver.example.com/cakemail"
	opened := c.create(url, "email.opened")
	clicked := c.create(url, "email.clicked")
	elsewhere := c.create("https://other.example.com/hooks", "email.bounced")
	secrets := []string{c.secret(opened), c.secret(clicked), c.secret(elsewhere)}
	sent := []byte(explainBody)
	explain := func(stdin string, signedWith string, format string) result {
		t.Helper()
		res := c.runStdin(stdin, "verify", "-s", c.secret(opened), "--signature", webhooks.Sign(sent, signedWith),
			"--explain", "--url", url, "-f", format)
		assert.Equal(t, exitFailure, res.code, res.stderr)
		assertNothingSecret(t, res.stdout+res.stderr, []byte(stdin), secrets...)
		return res
	}

	// The receiver checks with the Email.Opened webhook's secret; Email.Clicked's signed.
	res := explain(explainBody, c.secret(clicked), "table")
	assert.Contains(t, res.stdout, "why: The secret given does not match the signature")
	assert.Contains(t, res.stdout, "signed with the secret of webhook "+clicked+" (Email.Clicked → "+url+")")
	assert.Contains(t, res.stdout, "give the receiver all of them")

	res = explain(explainBody, c.secret(elsewhere), "json")
	var v verifyResult
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &v), res.stdout)
	require.NotNil(t, v.Explanation)
	require.NotNil(t, v.Explanation.SignedBy)
	assert.Equal(t, signer{ID: elsewhere, Event: webhooks.EventEmailBounced, URL: "https://other.example.com/hooks"}, *v.Explanation.SignedBy)

	res = explain(explainBody+"\n", c.secret(clicked), "table")
	assert.Contains(t, res.stdout, "signed with the secret of webhook "+clicked+" (Email.Clicked → "+url+"), once the body is restored: The body matches the signature once its trailing newline is removed")

	res = explain(explainBody, "whsec-of-no-webhook-here", "table")
	assert.Contains(t, res.stdout, "No webhook of the account signed it either")
}

func TestListenPrintsTheDiagnosis(t *testing.T) {
	c := newCLI(t)
	const secret = "whsec-listen-secret"
	l := c.start("listen", "-s", secret, "--addr", "127.0.0.1:0")
	sent := []byte(explainBody)
	post := func(body []byte, header http.Header) int {
		req, err := http.NewRequest(http.MethodPost, "http://"+l.addr+"/hook", bytes.NewReader(body))
		require.NoError(t, err)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	sig := webhooks.Sign(sent, secret)
	assert.Equal(t, http.StatusUnauthorized, post(append(bytes.Clone(sent), '\n'), http.Header{webhooks.SignatureHeader: {sig}}))
	assert.Equal(t, http.StatusUnauthorized, post(sent, http.Header{"X-Hub-Signature-256": {"sha256=" + webhooks.SignHex(sent, secret)}}))
	assert.Equal(t, http.StatusUnauthorized, post(sent, http.Header{webhooks.SignatureHeader: {webhooks.Sign(sent, "whsec-someone-else")}}))

	stderr := l.stderr.String()
	for _, want := range []string{
		"(answered 401)\n  why: The body matches the signature once its trailing newline is removed",
		"(answered 401)\n  why: The delivery has no X-Signature or X-Cakemail-Signature header, only X-Hub-Signature-256: check that",
		"(answered 401)\n  why: The secret given does not match the signature",
		`give listen every secret of the URL's webhooks, with -s "$(cakemail-webhooks secrets -u URL)".`,
	} {
		assert.Contains(t, stderr, want)
	}
	assert.Equal(t, 3, strings.Count(stderr, "  why: "), stderr)
	assertNothingSecret(t, stderr, sent, secret, "whsec-someone-else")
	assert.Equal(t, exitOK, l.stop())
}
