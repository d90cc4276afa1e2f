package webhooks_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
)

const secret = "whsec_test_0123456789abcdefghijklmnop"

var body = []byte(`{"event":"Email.Opened","account_id":42,"created_on":1700000000,"data":{"email":"jane@example.com"}}`)

// referenceMAC is the digest computed independently of the package under test.
func referenceMAC(payload []byte, key string) []byte {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(payload)
	return m.Sum(nil)
}

func TestSignMatchesOpenSSLVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	require.NoError(t, err)
	var file struct {
		Vectors []struct {
			PayloadFile string `json:"payload_file"`
			Secret      string `json:"secret"`
			Base64      string `json:"base64"`
			Hex         string `json:"hex"`
		} `json:"vectors"`
	}
	require.NoError(t, json.Unmarshal(raw, &file))
	require.NotEmpty(t, file.Vectors)
	for _, v := range file.Vectors {
		t.Run(v.PayloadFile, func(t *testing.T) {
			payload, err := os.ReadFile(filepath.Join("testdata", v.PayloadFile))
			require.NoError(t, err)
			assert.Equal(t, v.Base64, webhooks.Sign(payload, v.Secret))
			assert.Equal(t, v.Hex, webhooks.SignHex(payload, v.Secret))
			assert.NoError(t, webhooks.Verify(payload, v.Base64, v.Secret))
			assert.NoError(t, webhooks.Verify(payload, v.Hex, v.Secret))
			verifier, err := webhooks.NewVerifier([]string{v.Secret})
			require.NoError(t, err)
			assert.NoError(t, verifier.Verify(payload, v.Base64))
		})
	}
}

func TestVerifyAcceptsEveryDocumentedForm(t *testing.T) {
	sum := referenceMAC(body, secret)
	std := base64.StdEncoding.EncodeToString(sum)
	url := base64.URLEncoding.EncodeToString(sum)
	hexLower := hex.EncodeToString(sum)
	cases := map[string]string{
		"standard base64":          std,
		"standard base64 unpadded": strings.TrimRight(std, "="),
		"url-safe base64":          url,
		"url-safe base64 unpadded": strings.TrimRight(url, "="),
		"hex lower case":           hexLower,
		"hex upper case":           strings.ToUpper(hexLower),
		"sha256= prefix":           "sha256=" + hexLower,
		"SHA256= prefix":           "SHA256=" + std,
		"surrounding white space":  " \t" + std + " \n",
		"first of several":         std + ",bogus",
		"last of several, commas":  "bogus, " + base64.StdEncoding.EncodeToString(referenceMAC(body, "old")) + "," + hexLower,
		"several, spaces":          "sha256=" + strings.Repeat("0", 64) + " " + std,
	}
	verifier, err := webhooks.NewVerifier([]string{secret})
	require.NoError(t, err)
	for name, header := range cases {
		t.Run(name, func(t *testing.T) {
			assert.NoError(t, webhooks.Verify(body, header, secret))
			assert.NoError(t, verifier.Verify(body, header))
		})
	}
}

func TestVerifyRejectsWithTheRightSentinel(t *testing.T) {
	good := webhooks.Sign(body, secret)
	tampered := bytes.Clone(body)
	tampered[10] ^= 0x01
	cases := []struct {
		name    string
		payload []byte
		header  string
		want    error
	}{
		{"tampered byte", tampered, good, webhooks.ErrSignatureMismatch},
		{"wrong secret", body, webhooks.Sign(body, "not-the-secret"), webhooks.ErrSignatureMismatch},
		{"trailing newline added", append(bytes.Clone(body), '\n'), good, webhooks.ErrSignatureMismatch},
		{"re-serialised JSON", reserialise(t, body), good, webhooks.ErrSignatureMismatch},
		{"truncated signature", body, good[:20], webhooks.ErrMalformedSignature},
		{"garbage", body, "not a signature at all!", webhooks.ErrMalformedSignature},
		{"hex with a bad digit", body, "zz" + webhooks.SignHex(body, secret)[2:], webhooks.ErrMalformedSignature},
		{"base64 of the wrong length", body, base64.StdEncoding.EncodeToString(make([]byte, 31)), webhooks.ErrMalformedSignature},
		{"44 characters without padding", body, good[:43] + "A", webhooks.ErrMalformedSignature},
		{"empty header", body, "", webhooks.ErrMissingSignature},
		{"blank header", body, "  \t ", webhooks.ErrMissingSignature},
		{"only separators", body, " , , ", webhooks.ErrMalformedSignature},
		{"sha256= alone", body, "sha256=", webhooks.ErrMalformedSignature},
	}
	verifier, err := webhooks.NewVerifier([]string{secret})
	require.NoError(t, err)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := webhooks.Verify(tc.payload, tc.header, secret)
			assert.ErrorIs(t, err, tc.want)
			assert.ErrorIs(t, verifier.Verify(tc.payload, tc.header), tc.want)
			assertNoSecretIn(t, err.Error(), tc.header)
		})
	}
	assert.ErrorIs(t, webhooks.Verify(body, good, ""), webhooks.ErrEmptySecret)
	assert.ErrorIs(t, webhooks.Verify(body, good, "\n"), webhooks.ErrEmptySecret)
}

// reserialise parses and marshals JSON again, as seed 004's sample wrongly does.
func reserialise(t *testing.T, payload []byte) []byte {
	var v any
	require.NoError(t, json.Unmarshal(payload, &v))
	out, err := json.MarshalIndent(v, "", " ")
	require.NoError(t, err)
	return out
}

// assertNoSecretIn fails if text holds the secret or any form of a MAC.
func assertNoSecretIn(t *testing.T, text, header string) {
	t.Helper()
	assert.NotContains(t, text, secret)
	for _, mac := range []string{webhooks.Sign(body, secret), webhooks.SignHex(body, secret)} {
		assert.NotContains(t, text, mac[:16])
	}
	if len(header) >= 16 {
		assert.NotContains(t, text, strings.TrimSpace(header))
	}
}

func TestHeaderCandidatesAreBounded(t *testing.T) {
	good := webhooks.Sign(body, secret)
	junk := strings.Repeat(webhooks.Sign(body, "junk")+",", 8)
	assert.ErrorIs(t, webhooks.Verify(body, junk+good, secret), webhooks.ErrSignatureMismatch,
		"only the first 8 values are tried, so a huge header costs little")
	assert.NoError(t, webhooks.Verify(body, junk[:len(junk)/2]+good, secret))
}

func TestSignatureFromHeader(t *testing.T) {
	h := http.Header{}
	assert.Empty(t, webhooks.SignatureFromHeader(h))
	h.Set("x-cakemail-signature", "legacy")
	assert.Equal(t, "legacy", webhooks.SignatureFromHeader(h))
	h.Set("x-signature", "current")
	assert.Equal(t, "current", webhooks.SignatureFromHeader(h), "X-Signature wins when both are present")
	h.Set("X-Signature", "  ")
	assert.Equal(t, "legacy", webhooks.SignatureFromHeader(h), "an empty X-Signature falls back to the legacy header")
}

func TestNewVerifierRejectsMissingSecrets(t *testing.T) {
	for _, secrets := range [][]string{nil, {}, {""}, {"ok", ""}, {"ok", " \n"}} {
		_, err := webhooks.NewVerifier(secrets)
		assert.ErrorIs(t, err, webhooks.ErrEmptySecret, "%q", secrets)
	}
	for _, opt := range []webhooks.VerifierOption{webhooks.WithMaxBodyBytes(0), webhooks.WithTolerance(-time.Second), webhooks.WithClock(nil)} {
		_, err := webhooks.NewVerifier([]string{secret}, opt)
		assert.Error(t, err)
	}
}

// A secret read from a file or an environment variable often keeps a newline
// or spaces; a Verifier built with one would refuse every delivery.
func TestNewVerifierRefusesSecretsWithWhitespaceAround(t *testing.T) {
	for _, tc := range []struct {
		secrets []string
		says    string
	}{
		{[]string{secret + "\n"}, "secret 1 of 1 has a newline after it"},
		{[]string{"old-secret", secret + "\r\n"}, "secret 2 of 2 has a newline after it"},
		{[]string{" " + secret}, "secret 1 of 1 has a space before it"},
		{[]string{"\t" + secret + "  \n", "old-secret"}, "secret 1 of 2 has a tab before it and spaces and a newline after it"},
		{[]string{"  " + secret + " "}, "secret 1 of 1 has spaces around it"},
		{[]string{secret + "\u00a0"}, "secret 1 of 1 has a space character after it"},
	} {
		_, err := webhooks.NewVerifier(tc.secrets)
		require.ErrorIs(t, err, webhooks.ErrSecretWhitespace, "%q", tc.secrets)
		assert.Contains(t, err.Error(), tc.says)
		assert.Contains(t, err.Error(), "trim it where it is loaded")
		assert.NotContains(t, err.Error(), secret, "the error names the secret by position, never by value")
	}
	// The package function and ConstructEvent answer alike.
	signed := webhooks.Sign(body, secret)
	assert.ErrorIs(t, webhooks.Verify(body, signed, secret+"\n"), webhooks.ErrSecretWhitespace)
	_, err := webhooks.ConstructEvent(body, signed, " "+secret)
	assert.ErrorIs(t, err, webhooks.ErrSecretWhitespace)
	assert.NotContains(t, err.Error(), secret)

	// Whitespace inside a secret is the secret's own.
	inner := "whsec with spaces"
	verifier, err := webhooks.NewVerifier([]string{inner})
	require.NoError(t, err)
	assert.NoError(t, verifier.Verify(body, webhooks.Sign(body, inner)))
}

func TestVerifierRotation(t *testing.T) {
	verifier, err := webhooks.NewVerifier([]string{"old-secret", "new-secret"})
	require.NoError(t, err)
	assert.NoError(t, verifier.Verify(body, webhooks.Sign(body, "old-secret")))
	assert.NoError(t, verifier.Verify(body, webhooks.SignHex(body, "new-secret")))
	assert.ErrorIs(t, verifier.Verify(body, webhooks.Sign(body, "retired-secret")), webhooks.ErrSignatureMismatch)
}

func TestVerifierVerifyAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items; .ci/run runs this test without -race")
	}
	verifier, err := webhooks.NewVerifier([]string{"old-secret", secret})
	require.NoError(t, err)
	payload := bytes.Repeat([]byte("x"), 2048)
	for name, header := range map[string]string{
		"base64":   webhooks.Sign(payload, secret),
		"hex":      "sha256=" + webhooks.SignHex(payload, secret),
		"mismatch": webhooks.Sign(payload, "wrong"),
	} {
		allocs := testing.AllocsPerRun(200, func() { _ = verifier.Verify(payload, header) })
		assert.Zero(t, allocs, name)
	}
}

func TestVerifierIsSafeForConcurrentUse(t *testing.T) {
	verifier, err := webhooks.NewVerifier([]string{"a", secret})
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := []byte(fmt.Sprintf(`{"event":"Email.Opened","n":%d}`, i))
			for range 200 {
				if err := verifier.Verify(payload, webhooks.Sign(payload, secret)); err != nil {
					errs <- err
					return
				}
				if err := verifier.Verify(payload, webhooks.Sign(payload, "b")); err == nil {
					errs <- fmt.Errorf("goroutine %d: wrong secret accepted", i)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestVerifierNeverPrintsSecrets(t *testing.T) {
	verifier, err := webhooks.NewVerifier([]string{secret})
	require.NoError(t, err)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("verifier", "v", verifier)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("verifier", "v", verifier)
	for _, text := range []string{fmt.Sprintf("%v %+v %#v %s", verifier, verifier, verifier, verifier), logs.String()} {
		assert.NotContains(t, text, secret)
		assert.Contains(t, text, "secrets: 1")
	}
}

func TestTolerance(t *testing.T) {
	created := time.Unix(1700000000, 0)
	apiShape := []byte(`{"event":"Email.Opened","created_on":1700000000,"data":{}}`)
	guideShape := []byte(`{"event":"email.opened","timestamp":"2023-11-14T22:13:20Z","data":{}}`)
	noTime := []byte(`{"event":"Email.Opened","data":{}}`)
	cases := []struct {
		name    string
		payload []byte
		now     time.Time
		want    error
	}{
		{"api shape, within", apiShape, created.Add(4 * time.Minute), nil},
		{"api shape, too old", apiShape, created.Add(6 * time.Minute), webhooks.ErrTooOld},
		{"api shape, too new", apiShape, created.Add(-6 * time.Minute), webhooks.ErrTooNew},
		{"guide shape, within", guideShape, created.Add(-4 * time.Minute), nil},
		{"guide shape, too old", guideShape, created.Add(time.Hour), webhooks.ErrTooOld},
		{"no timestamp", noTime, created, webhooks.ErrInvalidEvent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			verifier, err := webhooks.NewVerifier([]string{secret}, webhooks.WithTolerance(5*time.Minute),
				webhooks.WithClock(func() time.Time { return tc.now }))
			require.NoError(t, err)
			err = verifier.Verify(tc.payload, webhooks.Sign(tc.payload, secret))
			if tc.want == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tc.want)
			}
			// The signature is checked first: a bad one is reported as such, whatever the time.
			assert.ErrorIs(t, verifier.Verify(tc.payload, webhooks.Sign(tc.payload, "wrong")), webhooks.ErrSignatureMismatch)
		})
	}
	t.Run("off by default", func(t *testing.T) {
		verifier, err := webhooks.NewVerifier([]string{secret}, webhooks.WithClock(func() time.Time { return created.Add(24 * 365 * time.Hour) }))
		require.NoError(t, err)
		assert.NoError(t, verifier.Verify(apiShape, webhooks.Sign(apiShape, secret)))
	})
}

func TestVerifyRequestRestoresBody(t *testing.T) {
	verifier, err := webhooks.NewVerifier([]string{secret}, webhooks.WithMaxBodyBytes(int64(len(body))))
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(body))
	req.Header.Set(webhooks.LegacySignatureHeader, webhooks.SignHex(body, secret))
	got, err := verifier.VerifyRequest(req)
	require.NoError(t, err)
	assert.Equal(t, body, got)
	again, err := io.ReadAll(req.Body)
	require.NoError(t, err)
	assert.Equal(t, body, again)

	big := append(bytes.Clone(body), ' ')
	req = httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(big))
	req.Header.Set(webhooks.SignatureHeader, webhooks.Sign(big, secret))
	_, err = verifier.VerifyRequest(req)
	assert.ErrorIs(t, err, webhooks.ErrBodyTooLarge)

	// A body whose length is not announced is still cut at the limit.
	req = httptest.NewRequest(http.MethodPost, "/hook", io.MultiReader(bytes.NewReader(big)))
	req.ContentLength = -1
	req.Header.Set(webhooks.SignatureHeader, webhooks.Sign(big, secret))
	_, err = verifier.VerifyRequest(req)
	assert.ErrorIs(t, err, webhooks.ErrBodyTooLarge)

	// A request built for a client may have no body at all.
	req, err = http.NewRequest(http.MethodPost, "/hook", nil)
	require.NoError(t, err)
	req.Header.Set(webhooks.SignatureHeader, webhooks.Sign(nil, secret))
	got, err = verifier.VerifyRequest(req)
	require.NoError(t, err, "the empty body is what was signed")
	assert.Empty(t, got)
}

func TestMiddleware(t *testing.T) {
	verifier, err := webhooks.NewVerifier([]string{secret}, webhooks.WithMaxBodyBytes(1024))
	require.NoError(t, err)
	signed := func(payload []byte, header, value string) *http.Request {
		req := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(payload))
		if header != "" {
			req.Header.Set(header, value)
		}
		return req
	}
	notEvent := []byte(`["not","an","event"]`)
	big := bytes.Repeat([]byte("a"), 2048)
	cases := []struct {
		name     string
		req      *http.Request
		wantCode int
	}{
		{"valid, X-Signature base64", signed(body, "X-Signature", webhooks.Sign(body, secret)), http.StatusOK},
		{"valid, legacy header hex", signed(body, "X-Cakemail-Signature", webhooks.SignHex(body, secret)), http.StatusOK},
		{"missing signature", signed(body, "", ""), http.StatusUnauthorized},
		{"wrong signature", signed(body, "X-Signature", webhooks.Sign(body, "nope")), http.StatusUnauthorized},
		{"malformed signature", signed(body, "X-Signature", "abc"), http.StatusUnauthorized},
		{"body over the limit", signed(big, "X-Signature", webhooks.Sign(big, secret)), http.StatusRequestEntityTooLarge},
		{"signed but not an event", signed(notEvent, "X-Signature", webhooks.Sign(notEvent, secret)), http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			called := false
			var seen *webhooks.Event
			var seenBody []byte
			h := verifier.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				called = true
				seen, _ = webhooks.EventFromContext(r.Context())
				seenBody, _ = io.ReadAll(r.Body)
			}))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, tc.req)
			assert.Equal(t, tc.wantCode, w.Code)
			assert.Equal(t, tc.wantCode == http.StatusOK, called, "next runs only for verified events")
			assert.NotContains(t, w.Body.String(), webhooks.Sign(body, secret))
			if called {
				require.NotNil(t, seen)
				assert.Equal(t, webhooks.EventEmailOpened, seen.Type)
				assert.Equal(t, 42, seen.AccountID)
				assert.Equal(t, body, seenBody, "the handler can read the body again")
			}
		})
	}
	_, ok := webhooks.EventFromContext(context.Background())
	assert.False(t, ok)
}

func TestConstructEvent(t *testing.T) {
	event, err := webhooks.ConstructEvent(body, webhooks.Sign(body, secret), secret)
	require.NoError(t, err)
	assert.Equal(t, webhooks.EventEmailOpened, event.Type)
	assert.Equal(t, time.Unix(1700000000, 0).UTC(), event.CreatedAt)

	_, err = webhooks.ConstructEvent(body, webhooks.Sign(body, "x"), secret)
	assert.ErrorIs(t, err, webhooks.ErrSignatureMismatch)

	verifier, err := webhooks.NewVerifier([]string{secret})
	require.NoError(t, err)
	notJSON := []byte("hello")
	_, err = verifier.ConstructEvent(notJSON, webhooks.Sign(notJSON, secret))
	assert.ErrorIs(t, err, webhooks.ErrInvalidEvent, "verified first, then parsed")
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"event":"Email.Opened"}`), "k", "", 0)
	f.Add([]byte{}, "secret", "sha256=00", 3)
	f.Add(body, secret, webhooks.Sign(body, secret), 17)
	f.Fuzz(func(t *testing.T, payload []byte, key, header string, flip int) {
		// Arbitrary input never panics.
		_ = webhooks.Verify(payload, header, key)
		if key == "" {
			return
		}
		verifier, err := webhooks.NewVerifier([]string{key})
		if padded := strings.TrimSpace(key) != key; padded || err != nil {
			// A secret with whitespace around it is refused, and only such a secret.
			if !padded || err == nil {
				t.Fatalf("NewVerifier(%q): %v", key, err)
			}
			return
		}
		_ = verifier.Verify(payload, header)
		if int64(len(payload)) > webhooks.DefaultMaxBodyBytes {
			return
		}
		for _, sig := range []string{webhooks.Sign(payload, key), webhooks.SignHex(payload, key)} {
			if err := webhooks.Verify(payload, sig, key); err != nil {
				t.Fatalf("round trip of %q failed: %v", sig, err)
			}
			if err := verifier.Verify(payload, sig); err != nil {
				t.Fatalf("Verifier round trip failed: %v", err)
			}
			if len(payload) > 0 {
				flipped := bytes.Clone(payload)
				i := (flip%len(flipped) + len(flipped)) % len(flipped)
				flipped[i] ^= 0x01
				if err := webhooks.Verify(flipped, sig, key); err == nil {
					t.Fatalf("a flipped byte %d still verified", i)
				}
			}
		}
	})
}

func TestMiddlewareReportsEveryRejection(t *testing.T) {
	now := time.Unix(1700000000, 0)
	type rejection struct {
		path string
		err  error
	}
	var got []rejection
	verifier, err := webhooks.NewVerifier([]string{secret},
		webhooks.WithMaxBodyBytes(1024),
		webhooks.WithTolerance(5*time.Minute),
		webhooks.WithClock(func() time.Time { return now }),
		webhooks.WithOnReject(func(r *http.Request, err error) { got = append(got, rejection{r.URL.Path, err}) }),
	)
	require.NoError(t, err)
	old := []byte(`{"event":"Email.Opened","created_on":1699990000}`)
	future := []byte(`{"event":"Email.Opened","created_on":1700010000}`)
	notEvent := []byte(`{"no":"event"}`)
	big := bytes.Repeat([]byte("a"), 2048)
	goodMAC := webhooks.Sign(body, secret)
	cases := []struct {
		name    string
		payload []byte
		header  string
		reader  io.Reader // overrides payload when set
		want    error
		code    int
	}{
		{"missing", body, "", nil, webhooks.ErrMissingSignature, http.StatusUnauthorized},
		{"malformed", body, "sha256=" + goodMAC[:20], nil, webhooks.ErrMalformedSignature, http.StatusUnauthorized},
		{"mismatch", body, webhooks.Sign(body, "another secret"), nil, webhooks.ErrSignatureMismatch, http.StatusUnauthorized},
		{"too large", big, webhooks.Sign(big, secret), nil, webhooks.ErrBodyTooLarge, http.StatusRequestEntityTooLarge},
		{"too old", old, webhooks.Sign(old, secret), nil, webhooks.ErrTooOld, http.StatusUnauthorized},
		{"too new", future, webhooks.Sign(future, secret), nil, webhooks.ErrTooNew, http.StatusUnauthorized},
		{"not an event", notEvent, webhooks.Sign(notEvent, secret), nil, webhooks.ErrInvalidEvent, http.StatusBadRequest},
		{"unreadable", body, goodMAC, io.MultiReader(strings.NewReader("{"), errReader{}), webhooks.ErrUnreadableBody, http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			var r io.Reader = bytes.NewReader(tc.payload)
			if tc.reader != nil {
				r = tc.reader
			}
			req := httptest.NewRequest(http.MethodPost, "/hooks/"+strings.ReplaceAll(tc.name, " ", "-"), r)
			if tc.header != "" {
				req.Header.Set(webhooks.SignatureHeader, tc.header)
			}
			w := httptest.NewRecorder()
			verifier.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
				t.Fatal("a refused delivery reached the handler")
			})).ServeHTTP(w, req)
			assert.Equal(t, tc.code, w.Code)
			require.Len(t, got, 1, "the hook hears every refusal once")
			assert.Equal(t, req.URL.Path, got[0].path)
			assert.ErrorIs(t, got[0].err, tc.want)
			msg := got[0].err.Error()
			for _, leak := range []string{secret, tc.header, goodMAC, webhooks.SignHex(tc.payload, secret)} {
				if leak != "" {
					assert.NotContains(t, msg, leak)
				}
			}
			for _, generic := range []string{"invalid signature", "request body too large", "invalid event payload"} {
				if strings.Contains(w.Body.String(), generic) {
					return
				}
			}
			t.Errorf("response body %q is not one of the generic ones", w.Body.String())
		})
	}

	_, err = webhooks.NewVerifier([]string{secret}, webhooks.WithOnReject(nil))
	assert.Error(t, err)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }
