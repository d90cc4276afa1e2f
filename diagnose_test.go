package webhooks_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
)

// sentBody is a delivery as Cakemail sends it: compact, keys in its own order,
// UTF-8 unescaped, with characters that every escaping treats differently.
const sentBody = `{"event":"Email.Clicked","account_id":42,"created_on":1700000000,"data":{"email":"zoë@example.com","empty":{},"gone":null,"link":"https://example.com/?a=1&b=<2>","none":[],"ok":true,"score":1.5,"tags":["café","naïve 🎉"]}}`

// Re-encodings of sentBody made by the libraries themselves (Python 3's json
// and Node's JSON.stringify), not by the package under test.
const (
	pythonDefault        = "{\"event\": \"Email.Clicked\", \"account_id\": 42, \"created_on\": 1700000000, \"data\": {\"email\": \"zo\\u00eb@example.com\", \"empty\": {}, \"gone\": null, \"link\": \"https://example.com/?a=1&b=<2>\", \"none\": [], \"ok\": true, \"score\": 1.5, \"tags\": [\"caf\\u00e9\", \"na\\u00efve \\ud83c\\udf89\"]}}"
	pythonUTF8Sorted     = "{\"account_id\": 42, \"created_on\": 1700000000, \"data\": {\"email\": \"zoë@example.com\", \"empty\": {}, \"gone\": null, \"link\": \"https://example.com/?a=1&b=<2>\", \"none\": [], \"ok\": true, \"score\": 1.5, \"tags\": [\"café\", \"naïve 🎉\"]}, \"event\": \"Email.Clicked\"}"
	pythonIndent2        = "{\n  \"event\": \"Email.Clicked\",\n  \"account_id\": 42,\n  \"created_on\": 1700000000,\n  \"data\": {\n    \"email\": \"zo\\u00eb@example.com\",\n    \"empty\": {},\n    \"gone\": null,\n    \"link\": \"https://example.com/?a=1&b=<2>\",\n    \"none\": [],\n    \"ok\": true,\n    \"score\": 1.5,\n    \"tags\": [\n      \"caf\\u00e9\",\n      \"na\\u00efve \\ud83c\\udf89\"\n    ]\n  }\n}"
	pythonIndent4Newline = "{\n    \"account_id\": 42,\n    \"created_on\": 1700000000,\n    \"data\": {\n        \"email\": \"zoë@example.com\",\n        \"empty\": {},\n        \"gone\": null,\n        \"link\": \"https://example.com/?a=1&b=<2>\",\n        \"none\": [],\n        \"ok\": true,\n        \"score\": 1.5,\n        \"tags\": [\n            \"café\",\n            \"naïve 🎉\"\n        ]\n    },\n    \"event\": \"Email.Clicked\"\n}\n"
	pythonCompactASCII   = "{\"event\":\"Email.Clicked\",\"account_id\":42,\"created_on\":1700000000,\"data\":{\"email\":\"zo\\u00eb@example.com\",\"empty\":{},\"gone\":null,\"link\":\"https://example.com/?a=1&b=<2>\",\"none\":[],\"ok\":true,\"score\":1.5,\"tags\":[\"caf\\u00e9\",\"na\\u00efve \\ud83c\\udf89\"]}}"
	nodeIndent2          = "{\n  \"event\": \"Email.Clicked\",\n  \"account_id\": 42,\n  \"created_on\": 1700000000,\n  \"data\": {\n    \"email\": \"zoë@example.com\",\n    \"empty\": {},\n    \"gone\": null,\n    \"link\": \"https://example.com/?a=1&b=<2>\",\n    \"none\": [],\n    \"ok\": true,\n    \"score\": 1.5,\n    \"tags\": [\n      \"café\",\n      \"naïve 🎉\"\n    ]\n  }\n}"
)

// bodyFragments are pieces of sentBody no diagnosis may quote.
var bodyFragments = []string{"zoë", "zo\\u00eb", "example.com", "café", "1700000000", "Email.Clicked", "naïve"}

// jwt is shaped like a Cakemail access token.
var jwt = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
	base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"42","exp":1700000000}`)) + ".c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"

func signedHeader(payload []byte, key string) http.Header {
	h := http.Header{}
	h.Set(webhooks.SignatureHeader, webhooks.Sign(payload, key))
	return h
}

func goMarshal(t testing.TB, payload string, indent bool) string {
	var v any
	require.NoError(t, json.Unmarshal([]byte(payload), &v))
	var out []byte
	var err error
	if indent {
		out, err = json.MarshalIndent(v, "", "  ")
	} else {
		out, err = json.Marshal(v)
	}
	require.NoError(t, err)
	return string(out)
}

type brokenDelivery struct {
	name     string
	received string      // the body the receiver verifies
	header   http.Header // its headers
	secrets  []string    // what the receiver verifies with
	want     webhooks.Cause
	says     []string // what the sentence must say
}

// brokenDeliveries signs deliveries with secret, then breaks each in one known way.
func brokenDeliveries(t testing.TB) []brokenDelivery {
	sent := []byte(sentBody)
	good := signedHeader(sent, secret)
	mine := []string{secret}
	reserialized := func(name, received string, says ...string) brokenDelivery {
		return brokenDelivery{"reserialized: " + name, received, good, mine, webhooks.CauseBodyReserialized, says}
	}
	withHeader := func(name, value string) http.Header {
		h := http.Header{}
		h.Set(name, value)
		return h
	}
	mac := webhooks.Sign(sent, secret)
	macHex := webhooks.SignHex(sent, secret)
	sentLength := http.Header{}
	sentLength.Set(webhooks.SignatureHeader, mac)
	sentLength.Set("Content-Length", strconv.Itoa(len(sent)))
	hub := withHeader("X-Hub-Signature-256", "sha256="+macHex)
	hub.Set("Signature", mac)
	hub.Set("Content-Type", "application/json")
	return []brokenDelivery{
		// Received in another form: the signature matches the body as Cakemail sent it.
		reserialized("Python json.dumps default", pythonDefault, "compact", "UTF-8"),
		reserialized("Python ensure_ascii=False, sort_keys", pythonUTF8Sorted, "compact", "keys in the order Cakemail sends them"),
		reserialized("Python indent=2", pythonIndent2, "compact", "UTF-8"),
		reserialized("Python indent=4, sorted, print()", pythonIndent4Newline, "compact", "keys in the order Cakemail sends them"),
		reserialized("Node JSON.stringify(v, null, 2)", nodeIndent2, "compact"),
		reserialized("Go json.Marshal of a map", goMarshal(t, sentBody, false), "compact", "Cakemail sends", "UTF-8"),
		reserialized("Go json.MarshalIndent of a map", goMarshal(t, sentBody, true), "compact", "Cakemail sends"),
		// Sent in another form than compact UTF-8, received re-encoded.
		{"reserialized: sent with \\u escapes, decoded to UTF-8", sentBody, signedHeader([]byte(pythonCompactASCII), secret), mine,
			webhooks.CauseBodyReserialized, []string{"compact", `\u escapes`}},
		{"reserialized: sent indented, received compact", sentBody, signedHeader([]byte(pythonIndent2), secret), mine,
			webhooks.CauseBodyReserialized, []string{"indented by 2", `\u escapes`}},
		{"reserialized: sent sorted with Python's separators, received indented", pythonIndent2, signedHeader([]byte(pythonUTF8Sorted), secret), mine,
			webhooks.CauseBodyReserialized, []string{`", " and ": "`, "keys sorted", "UTF-8"}},
		{"reserialized: sent by Go, received by Python", pythonDefault, signedHeader([]byte(goMarshal(t, sentBody, false)), secret), mine,
			webhooks.CauseBodyReserialized, []string{"keys sorted", "encoding/json"}},
		{"reserialized: sent indented by 4, printed with a newline, received compact", sentBody,
			signedHeader([]byte(pythonIndent4Newline), secret), mine,
			webhooks.CauseBodyReserialized, []string{"indented by 4", "keys sorted", "final newline"}},

		{"trailing newline added", sentBody + "\n", good, mine, webhooks.CauseBodyTrailingNewline, []string{"removed"}},
		{"trailing CRLF added", sentBody + "\r\n", good, mine, webhooks.CauseBodyTrailingNewline, []string{"removed"}},
		{"trailing newline removed", sentBody, signedHeader(append(bytes.Clone(sent), '\n'), secret), mine,
			webhooks.CauseBodyTrailingNewline, []string{"added"}},
		{"trailing CRLF removed", sentBody, signedHeader(append(bytes.Clone(sent), '\r', '\n'), secret), mine,
			webhooks.CauseBodyTrailingNewline, []string{`\r\n`}},

		{"truncated JSON", sentBody[:len(sentBody)/2], good, mine, webhooks.CauseBodyTruncated, []string{"cut short"}},
		{"shorter than Content-Length", sentBody[:len(sentBody)-1], sentLength, mine, webhooks.CauseBodyTruncated,
			[]string{strconv.Itoa(len(sent) - 1), strconv.Itoa(len(sent)), "Content-Length"}},
		{"empty body", "", good, mine, webhooks.CauseBodyTruncated, []string{"empty"}},

		{"wrong secret", sentBody, good, []string{"whsec_another_webhooks_secret"}, webhooks.CauseWrongSecret, []string{"The secret given does not match", "Client.Secrets"}},
		{"wrong secrets", sentBody, good, []string{"whsec_one", "whsec_two", "whsec_three"}, webhooks.CauseWrongSecret, []string{"None of the 3 secrets given matches"}},

		{"secret with a trailing newline", sentBody, good, []string{secret + "\n"}, webhooks.CauseSecretWhitespace, []string{"newline"}},
		{"secret with spaces", sentBody, good, []string{" " + secret + "\t"}, webhooks.CauseSecretWhitespace, []string{"a space before it and a tab after it"}},
		{"secret in quotes", sentBody, good, []string{`"` + secret + `"`}, webhooks.CauseSecretWhitespace, []string{"quotes"}},
		{"second secret, quoted with a newline", sentBody, good, []string{"whsec_old", "'" + secret + "'\n"}, webhooks.CauseSecretWhitespace,
			[]string{"Secret 2 of 2", "quotes", "newline"}},
		{"JWT-shaped secret", sentBody, good, []string{jwt}, webhooks.CauseSecretLooksLikeToken, []string{"access token", "Client.Get"}},
		{"JWT and a secret with whitespace: the proven cause wins", sentBody, good, []string{jwt, secret + "\n"},
			webhooks.CauseSecretWhitespace, []string{"Secret 2 of 2"}},

		{"missing, X-Hub-Signature-256 and Signature present", sentBody, hub, mine, webhooks.CauseMissingSignature,
			[]string{"only Signature and X-Hub-Signature-256", "X-Signature or X-Cakemail-Signature"}},
		{"missing, no headers", sentBody, http.Header{}, mine, webhooks.CauseMissingSignature, []string{"nor any other header that looks like a signature"}},
		{"missing, blank X-Signature", sentBody, withHeader(webhooks.SignatureHeader, "  "), mine, webhooks.CauseMissingSignature, nil},

		{"malformed: base64 truncated", sentBody, withHeader(webhooks.SignatureHeader, mac[:20]), mine,
			webhooks.CauseMalformedSignature, []string{"truncated", "20 base64 characters"}},
		{"malformed: hex truncated", sentBody, withHeader(webhooks.LegacySignatureHeader, macHex[:63]), mine,
			webhooks.CauseMalformedSignature, []string{"X-Cakemail-Signature", "63 hex digits", "truncated"}},
		{"malformed: sha1= prefix", sentBody, withHeader(webhooks.SignatureHeader, "sha1="+macHex[:40]), mine,
			webhooks.CauseMalformedSignature, []string{`"sha1="`, `"sha256="`}},
		{"malformed: t=,v1= scheme", sentBody, withHeader(webhooks.SignatureHeader, "t=1700000000,v1="+macHex), mine,
			webhooks.CauseMalformedSignature, []string{`"t="`}},
		{"malformed: SHA-1 hex", sentBody, withHeader(webhooks.SignatureHeader, macHex[:40]), mine,
			webhooks.CauseMalformedSignature, []string{"SHA-1"}},
		{"malformed: SHA-512 hex", sentBody, withHeader(webhooks.SignatureHeader, macHex+macHex), mine,
			webhooks.CauseMalformedSignature, []string{"SHA-512"}},
		{"malformed: base64 too long", sentBody, withHeader(webhooks.SignatureHeader, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 48))), mine,
			webhooks.CauseMalformedSignature, []string{"48 bytes", "wrong length"}},
		{"malformed: not base64 or hex", sentBody, withHeader(webhooks.SignatureHeader, "not a signature!"), mine,
			webhooks.CauseMalformedSignature, []string{"neither hex nor base64"}},
	}
}

func TestDiagnoseFindsEachBreak(t *testing.T) {
	sent := []byte(sentBody)
	for _, tc := range brokenDeliveries(t) {
		t.Run(tc.name, func(t *testing.T) {
			received := []byte(tc.received)
			signature := webhooks.SignatureFromHeader(tc.header)
			verifier, err := webhooks.NewVerifier(tc.secrets)
			if errors.Is(err, webhooks.ErrSecretWhitespace) {
				assert.Equal(t, webhooks.CauseSecretWhitespace, tc.want, "NewVerifier refused a secret: %v", err)
			} else {
				require.NoError(t, err)
				require.Error(t, verifier.Verify(received, signature), "the broken delivery must fail verification")
			}

			d := webhooks.Diagnose(received, tc.header, tc.secrets)
			require.NotNil(t, d)
			assert.Equal(t, tc.want, d.Cause, d.String())
			text := d.String()
			for _, s := range tc.says {
				assert.Contains(t, text, s)
			}
			assert.NotContains(t, strings.TrimSuffix(text, "."), ". ", "one sentence")
			assert.True(t, strings.HasSuffix(text, "."), "one sentence")
			assert.Equal(t, text, d.Error())

			// Nothing secret and no body text.
			leaks := []string{secret, strings.TrimSpace(signature)}
			for _, s := range tc.secrets {
				leaks = append(leaks, strings.Trim(s, " \t\r\n\"'"))
			}
			for _, payload := range [][]byte{sent, received} {
				for _, key := range append(tc.secrets, secret) {
					b64, hx := webhooks.Sign(payload, key), webhooks.SignHex(payload, key)
					leaks = append(leaks, b64[:12], hx[:12], strings.ToUpper(hx[:12]), base64.URLEncoding.EncodeToString(referenceMAC(payload, key))[:12])
				}
			}
			for _, leak := range append(leaks, bodyFragments...) {
				if len(leak) >= 6 {
					assert.NotContains(t, text, leak)
					assert.NotContains(t, fmt.Sprintf("%v %+v %#v", d, *d, d), leak)
				}
			}
		})
	}
}

func TestDiagnoseIsNilWhenTheDeliveryVerifies(t *testing.T) {
	sent := []byte(sentBody)
	legacy := http.Header{}
	legacy.Set(webhooks.LegacySignatureHeader, "sha256="+webhooks.SignHex(sent, secret))
	for name, tc := range map[string]struct {
		header  http.Header
		secrets []string
	}{
		"base64":                {signedHeader(sent, secret), []string{secret}},
		"legacy header, hex":    {legacy, []string{secret}},
		"second of two secrets": {signedHeader(sent, secret), []string{"whsec_old", secret}},
		"empty secrets skipped": {signedHeader(sent, secret), []string{"", secret}},
	} {
		assert.Nil(t, webhooks.Diagnose(sent, tc.header, tc.secrets), name)
	}
	var d *webhooks.Diagnosis
	assert.Equal(t, "The delivery verifies.", d.String())
}

func TestDiagnosisNamesTheSecretAndTheSentinel(t *testing.T) {
	sent := []byte(sentBody)
	d := webhooks.Diagnose(append(bytes.Clone(sent), '\n'), signedHeader(sent, secret), []string{"whsec_old", "", secret})
	require.NotNil(t, d)
	assert.Equal(t, webhooks.CauseBodyTrailingNewline, d.Cause)
	assert.Equal(t, 2, d.Secret, "the index among the secrets given")
	assert.ErrorIs(t, d, webhooks.ErrSignatureMismatch)

	d = webhooks.Diagnose(sent, http.Header{}, []string{secret})
	assert.ErrorIs(t, d, webhooks.ErrMissingSignature)
	assert.Equal(t, -1, d.Secret)
	d = webhooks.Diagnose(sent, http.Header{webhooks.SignatureHeader: {"sha256=zz"}}, []string{secret})
	assert.ErrorIs(t, d, webhooks.ErrMalformedSignature)
	d = webhooks.Diagnose(sent, signedHeader(sent, secret), nil)
	assert.Equal(t, webhooks.CauseWrongSecret, d.Cause)
	assert.Contains(t, d.String(), "No secret was given")

	// A secret NewVerifier refuses reads as its refusal; quotes, which it
	// takes, as a mismatch.
	d = webhooks.Diagnose(sent, signedHeader(sent, secret), []string{"whsec_old", secret + "\n"})
	assert.ErrorIs(t, d, webhooks.ErrSecretWhitespace)
	assert.Equal(t, 1, d.Secret)
	assert.Equal(t, "Secret 2 of 2 has a newline after it, and matches the signature once trimmed.", d.Finding())
	d = webhooks.Diagnose(sent, signedHeader(sent, secret), []string{`"` + secret + `"`})
	assert.Equal(t, webhooks.CauseSecretWhitespace, d.Cause)
	assert.ErrorIs(t, d, webhooks.ErrSignatureMismatch)
	assert.Equal(t, "Secret 1 has quotes around it, and matches the signature once trimmed.", d.Finding())
	// The refusal comes first, even when another secret verifies.
	d = webhooks.Diagnose(sent, signedHeader(sent, secret), []string{secret, "whsec_new\n"})
	require.NotNil(t, d)
	assert.Equal(t, -1, d.Secret)
	assert.Equal(t, "Secret 2 of 2 has a newline after it, though secret 1 of 2 verifies the delivery.", d.Finding())
}

// Every sentence a diagnosis can say reads as English: no "(s)" plurals, no
// word twice in a row, no dangling conjunction, and a finding that is the
// sentence's start.
func TestDiagnosisSentencesReadWell(t *testing.T) {
	sent := []byte(sentBody)
	var all []*webhooks.Diagnosis
	for _, tc := range brokenDeliveries(t) {
		all = append(all, webhooks.Diagnose([]byte(tc.received), tc.header, tc.secrets))
	}
	for _, secrets := range [][]string{
		{secret + "\n"}, {"whsec_old", secret + "\n"}, {"other\n"}, {"whsec_old", "other\n"}, {secret, "other\n"},
		{"'" + secret + "'"}, {"\"" + secret}, {" \t" + secret + "\r\n"}, nil,
	} {
		all = append(all, webhooks.Diagnose(sent, signedHeader(sent, secret), secrets))
	}
	many := make([]string, 12)
	for i := range many {
		many[i] = fmt.Sprintf("whsec_%d", i)
	}
	all = append(all, webhooks.Diagnose(sent, signedHeader(sent, secret), many))
	all = append(all, webhooks.Diagnose(sent, http.Header{"X-Signature-Ed25519": {""}, "Signature": {"x"}, "X-Hmac": {"y"}}, []string{secret}))

	repeated := regexp.MustCompile(`\b(\w+) (\w+)\b`)
	for _, d := range all {
		require.NotNil(t, d)
		text := d.String()
		assert.NotContains(t, text, "(s)", text)
		for _, bad := range []string{"has and", "(it has", " ,", "..", ": :", "( ", " )", "  "} {
			assert.NotContains(t, text, bad, text)
		}
		for _, m := range repeated.FindAllStringSubmatch(text, -1) {
			assert.NotEqual(t, m[1], m[2], "a word twice: %s", text)
		}
		assert.True(t, strings.HasPrefix(text, strings.TrimSuffix(d.Finding(), ".")+": "), "the finding starts the sentence: %s", text)
		assert.Regexp(t, `^[A-Z]`, text)
		assert.NotContains(t, d.Finding(), "Client.", "Go calls are advice, not findings: %s", d.Finding())
	}
}

func TestDiagnoseKeepsNumbersAndKeyOrderAsSent(t *testing.T) {
	// Literals a float64 round trip would change, and keys in no order.
	sent := []byte(`{"z":1.50,"a":1e3,"m":[-0.0,12345678901234567890],"k":"\u00e9"}`)
	received := []byte("{\n    \"z\": 1.50,\n    \"a\": 1e3,\n    \"m\": [\n        -0.0,\n        12345678901234567890\n    ],\n    \"k\": \"é\"\n}")
	d := webhooks.Diagnose(received, signedHeader(sent, secret), []string{secret})
	require.NotNil(t, d)
	assert.Equal(t, webhooks.CauseBodyReserialized, d.Cause, d.String())
}

func TestRejectHookGetsTheDiagnosis(t *testing.T) {
	sent := []byte(sentBody)
	var got error
	verifier, err := webhooks.NewVerifier([]string{"whsec_old", secret},
		webhooks.WithOnReject(func(_ *http.Request, err error) { got = err }))
	require.NoError(t, err)
	handler := verifier.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Fatal("a refused delivery reached the handler")
	}))
	cases := []struct {
		name     string
		body     []byte
		header   http.Header
		sentinel error
		cause    webhooks.Cause
	}{
		{"re-serialized", []byte(pythonDefault), signedHeader(sent, secret), webhooks.ErrSignatureMismatch, webhooks.CauseBodyReserialized},
		{"newline", append(bytes.Clone(sent), '\n'), signedHeader(sent, secret), webhooks.ErrSignatureMismatch, webhooks.CauseBodyTrailingNewline},
		{"missing", sent, http.Header{"X-Hub-Signature-256": {"sha256=00"}}, webhooks.ErrMissingSignature, webhooks.CauseMissingSignature},
		{"malformed", sent, http.Header{webhooks.SignatureHeader: {"sha1=abc"}}, webhooks.ErrMalformedSignature, webhooks.CauseMalformedSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			req := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(tc.body))
			for k, v := range tc.header {
				req.Header[k] = v
			}
			w := httptest.NewRecorder()
			handler.ServeHTTP(w, req)
			assert.Equal(t, http.StatusUnauthorized, w.Code)
			require.Error(t, got)
			assert.ErrorIs(t, got, tc.sentinel)
			assert.Equal(t, tc.sentinel.Error(), got.Error(), "the message stays the sentinel's")
			var d *webhooks.Diagnosis
			require.True(t, errors.As(got, &d))
			assert.Equal(t, tc.cause, d.Cause)
			if tc.cause == webhooks.CauseBodyReserialized || tc.cause == webhooks.CauseBodyTrailingNewline {
				assert.Equal(t, 1, d.Secret, "signed with the second secret")
			}
			var again *webhooks.Diagnosis
			require.True(t, errors.As(got, &again))
			assert.Same(t, d, again, "computed once")
		})
	}

	// Refusals for other reasons carry no diagnosis.
	notEvent := []byte(`{"no":"event"}`)
	req := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(notEvent))
	req.Header.Set(webhooks.SignatureHeader, webhooks.Sign(notEvent, secret))
	handler.ServeHTTP(httptest.NewRecorder(), req)
	var d *webhooks.Diagnosis
	assert.ErrorIs(t, got, webhooks.ErrInvalidEvent)
	assert.False(t, errors.As(got, &d))
}

func TestVerifyRequestErrorSaysTruncatedFromContentLength(t *testing.T) {
	sent := []byte(sentBody)
	verifier, err := webhooks.NewVerifier([]string{secret})
	require.NoError(t, err)
	// What a proxy that cut the body but kept the header passes on.
	req := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(sent[:100]))
	req.Header.Set(webhooks.SignatureHeader, webhooks.Sign(sent, secret))
	req.Header.Set("Content-Length", strconv.Itoa(len(sent)))
	_, err = verifier.VerifyRequest(req)
	var d *webhooks.Diagnosis
	require.True(t, errors.As(err, &d))
	assert.Equal(t, webhooks.CauseBodyTruncated, d.Cause)
	assert.Contains(t, d.String(), "Content-Length says "+strconv.Itoa(len(sent)))
}

func TestNoErrorQuotesTheBody(t *testing.T) {
	const private = "jane.private@example.com"
	payloads := map[string]string{
		"account id a string":        `{"event":"Email.Opened","account_id":"` + private + `"}`,
		"user id an object":          `{"event":"Email.Opened","user":{"id":{"email":"` + private + `"}}}`,
		"user account id an array":   `{"event":"Email.Opened","user":{"account_id":["` + private + `"]}}`,
		"event a number":             `{"event":31415926535,"data":{"email":"` + private + `"}}`,
		"a number, not an object":    `31415926535`,
		"bad character":              `{"event":"Email.Opened","data":{"email":` + private + `}}`,
		"ip a number with a literal": `{"event":"Email.Opened","ip":31415926535.5}`,
	}
	verifier, err := webhooks.NewVerifier([]string{secret}, webhooks.WithTolerance(time.Hour))
	require.NoError(t, err)
	for name, payload := range payloads {
		for _, err := range []error{
			func() error { _, err := webhooks.ParseEvent([]byte(payload)); return err }(),
			verifier.Verify([]byte(payload), webhooks.Sign([]byte(payload), secret)),
		} {
			require.ErrorIs(t, err, webhooks.ErrInvalidEvent, name)
			for _, leak := range []string{"jane", "private", "example", "31415926535", "j'"} {
				assert.NotContains(t, err.Error(), leak, name)
			}
		}
	}
	_, err = webhooks.ParseEvent([]byte(payloads["account id a string"]))
	assert.Contains(t, err.Error(), "an id is a string, not an integer")
}

func ExampleDiagnose() {
	secret := "whsec_example"
	sent := []byte(`{"event":"Email.Opened","data":{"email":"jane@example.com"}}`)
	header := http.Header{}
	header.Set(webhooks.SignatureHeader, webhooks.Sign(sent, secret))

	received := append(sent, '\n') // say a test fixture added a newline
	d := webhooks.Diagnose(received, header, []string{secret})
	fmt.Println(d.Cause)
	fmt.Println(d)
	// Output:
	// body_trailing_newline
	// The body matches the signature once its trailing newline is removed: verify the raw request body exactly as received, without adding or trimming a newline.
}

// A program with advice of its own keeps the finding and maps the cause.
func ExampleDiagnosis_Finding() {
	secret := "whsec_example"
	sent := []byte(`{"event":"Email.Opened","data":{"email":"jane@example.com"}}`)
	header := http.Header{}
	header.Set(webhooks.SignatureHeader, webhooks.Sign(sent, secret))

	d := webhooks.Diagnose(sent, header, []string{secret + "\n"}) // read from a file
	fmt.Println(d.Cause)
	fmt.Println(d.Finding())
	fmt.Println(errors.Is(d, webhooks.ErrSecretWhitespace))
	// Output:
	// secret_whitespace
	// Secret 1 has a newline after it, and matches the signature once trimmed.
	// true
}

// The reject hook logs why a signature failed; the diagnosis is computed only
// when asked for.
func ExampleWithOnReject_diagnosis() {
	verifier, err := webhooks.NewVerifier([]string{"whsec_example"},
		webhooks.WithOnReject(func(r *http.Request, err error) {
			var d *webhooks.Diagnosis
			if errors.As(err, &d) {
				slog.Warn("delivery refused", "path", r.URL.Path, "cause", d.Cause, "why", d.String())
				return
			}
			slog.Warn("delivery refused", "path", r.URL.Path, "reason", err)
		}))
	if err != nil {
		log.Fatal(err)
	}
	_ = verifier
}
