package webhooks

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
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The headers Cakemail puts the signature in. The API guide shows X-Signature with
// a base64 digest; other Cakemail documents show X-Cakemail-Signature, in base64 or hex.
const (
	SignatureHeader       = "X-Signature"
	LegacySignatureHeader = "X-Cakemail-Signature"
)

// Sign returns the HMAC-SHA256 of payload keyed with secret, in standard base64:
// the value Cakemail sends in the X-Signature header.
func Sign(payload []byte, secret string) string {
	sum := mac(payload, secret)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// SignHex returns the same digest as Sign in lower-case hex.
func SignHex(payload []byte, secret string) string {
	sum := mac(payload, secret)
	return hex.EncodeToString(sum[:])
}

func mac(payload []byte, secret string) [sha256.Size]byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write(payload)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// SignatureFromHeader returns the delivery's signature: X-Signature, or
// X-Cakemail-Signature when that is empty.
func SignatureFromHeader(h http.Header) string {
	if v := h.Get(SignatureHeader); strings.TrimSpace(v) != "" {
		return v
	}
	return h.Get(LegacySignatureHeader)
}

// Verify checks that header holds the HMAC-SHA256 of payload keyed with secret.
// The header may be base64 (standard or URL-safe, padded or not) or hex, with an
// optional "sha256=" prefix; of several comma- or space-separated values one
// must match. For many deliveries, a Verifier is faster and allocates nothing.
func Verify(payload []byte, header, secret string) error {
	switch {
	case strings.TrimSpace(secret) == "":
		return ErrEmptySecret
	case hasSpaceAround(secret):
		return secretWhitespace(secret, "the secret")
	}
	return verifierFor(secret).verify(payload, header)
}

// secretWhitespace is the error for a secret with whitespace around it, which
// no Cakemail secret has but a file or an environment variable often adds. It
// names the secret by which, never by its value.
func secretWhitespace(secret, which string) error {
	return fmt.Errorf("%w: %s has %s; trim it where it is loaded (a file or an environment variable can add whitespace)",
		ErrSecretWhitespace, which, describeAround(secret, strings.TrimSpace(secret)))
}

// lastVerifier keeps the keyed state of the most recent secret given to Verify:
// services nearly always verify with one secret, so they skip the HMAC key
// setup on every call without the package holding more than one key.
var lastVerifier atomic.Pointer[cachedVerifier]

type cachedVerifier struct {
	secret string
	v      *Verifier
}

func verifierFor(secret string) *Verifier {
	if c := lastVerifier.Load(); c != nil && c.secret == secret {
		return c.v
	}
	v := newVerifier([][]byte{[]byte(secret)})
	lastVerifier.Store(&cachedVerifier{secret: secret, v: v})
	return v
}

// ConstructEvent verifies a delivery with secret, then parses it.
func ConstructEvent(payload []byte, header, secret string) (*Event, error) {
	if err := Verify(payload, header, secret); err != nil {
		return nil, err
	}
	return ParseEvent(payload)
}

// DefaultMaxBodyBytes is the largest delivery a Verifier reads unless told otherwise.
const DefaultMaxBodyBytes = 1 << 20

// Verifier checks deliveries against one or more secrets. It is safe for
// concurrent use and, once warm, Verify allocates nothing.
type Verifier struct {
	secrets   int // how many; the keys live only in closures: the pooled HMACs and diagnose
	maxBody   int64
	tolerance time.Duration
	now       func() time.Time
	onReject  func(*http.Request, error)
	states    sync.Pool                                   // of *verifyState
	diagnose  func(body []byte, h http.Header) *Diagnosis // for refusals only
}

// verifyState is one goroutine's scratch: an HMAC keyed with each secret, kept
// so that key setup and buffers are paid once, not on every delivery.
type verifyState struct {
	macs  []hash.Hash
	sum   [sha256.Size]byte
	cands candidates
}

// VerifierOption configures a Verifier.
type VerifierOption func(*Verifier) error

// WithMaxBodyBytes sets the largest body accepted, 1 MiB by default.
func WithMaxBodyBytes(n int64) VerifierOption {
	return func(v *Verifier) error {
		if n <= 0 {
			return fmt.Errorf("webhooks: WithMaxBodyBytes(%d): must be positive", n)
		}
		v.maxBody = n
		return nil
	}
}

// WithTolerance rejects deliveries whose created_on or timestamp is further than
// d from now, after their signature passed. It is off by default because
// Cakemail retries failed deliveries with their original timestamp.
func WithTolerance(d time.Duration) VerifierOption {
	return func(v *Verifier) error {
		if d <= 0 {
			return fmt.Errorf("webhooks: WithTolerance(%s): must be positive", d)
		}
		v.tolerance = d
		return nil
	}
}

// WithClock sets the clock WithTolerance reads, for tests.
func WithClock(now func() time.Time) VerifierOption {
	return func(v *Verifier) error {
		if now == nil {
			return errors.New("webhooks: WithClock(nil)")
		}
		v.now = now
		return nil
	}
}

// WithOnReject sets a function Middleware calls for every delivery it refuses,
// so that refusals can be logged or counted: Cakemail's troubleshooting steps
// start with "check your application logs". err says why and matches one of
// ErrMissingSignature, ErrMalformedSignature, ErrSignatureMismatch,
// ErrBodyTooLarge, ErrTooOld, ErrTooNew, ErrInvalidEvent or ErrUnreadableBody
// with errors.Is; it never holds the signature, a MAC, a secret or body text.
// When the signature failed, errors.As(err, &d) with d a *Diagnosis says why
// (see Diagnose); it is computed on that call, not before, since a 1 MiB body
// costs tens of milliseconds. The response stays generic whatever fn does.
func WithOnReject(fn func(r *http.Request, err error)) VerifierOption {
	return func(v *Verifier) error {
		if fn == nil {
			return errors.New("webhooks: WithOnReject(nil)")
		}
		v.onReject = fn
		return nil
	}
}

// NewVerifier returns a Verifier that accepts a delivery signed with any of
// secrets, so that a secret can be rotated without downtime. It refuses an
// empty secret (ErrEmptySecret) and one with whitespace around it
// (ErrSecretWhitespace), which would refuse every delivery.
func NewVerifier(secrets []string, opts ...VerifierOption) (*Verifier, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: no secrets given", ErrEmptySecret)
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		which := fmt.Sprintf("secret %d of %d", i+1, len(secrets))
		switch {
		case s == "":
			return nil, fmt.Errorf("%w: %s is empty", ErrEmptySecret, which)
		case strings.TrimSpace(s) == "":
			return nil, fmt.Errorf("%w: %s holds only whitespace", ErrEmptySecret, which)
		case hasSpaceAround(s):
			return nil, secretWhitespace(s, which)
		}
		keys[i] = []byte(s)
	}
	v := newVerifier(keys)
	for _, opt := range opts {
		if err := opt(v); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func newVerifier(keys [][]byte) *Verifier {
	v := &Verifier{secrets: len(keys), maxBody: DefaultMaxBodyBytes, now: time.Now}
	v.diagnose = func(body []byte, h http.Header) *Diagnosis {
		secrets := make([]string, len(keys))
		for i, k := range keys {
			secrets[i] = string(k)
		}
		return Diagnose(body, h, secrets)
	}
	v.states.New = func() any {
		st := &verifyState{macs: make([]hash.Hash, len(keys))}
		for i, k := range keys {
			st.macs[i] = hmac.New(sha256.New, k)
		}
		return st
	}
	return v
}

// String describes the Verifier without its secrets.
func (v *Verifier) String() string {
	return fmt.Sprintf("webhooks.Verifier{secrets: %d, maxBody: %d, tolerance: %s}", v.secrets, v.maxBody, v.tolerance)
}

// GoString keeps %#v from printing the keyed HMAC state.
func (v *Verifier) GoString() string { return v.String() }

// LogValue keeps slog from printing the keyed HMAC state.
func (v *Verifier) LogValue() slog.Value { return slog.StringValue(v.String()) }

// Verify checks payload against header with every secret of v; see the package
// function Verify for the header forms accepted.
func (v *Verifier) Verify(payload []byte, header string) error {
	if int64(len(payload)) > v.maxBody {
		return ErrBodyTooLarge
	}
	if err := v.verify(payload, header); err != nil {
		return err
	}
	if v.tolerance > 0 {
		return v.checkTimestamp(payload)
	}
	return nil
}

// verify checks the signature alone, whatever the body's size.
func (v *Verifier) verify(payload []byte, header string) error {
	st := v.states.Get().(*verifyState)
	defer v.states.Put(st)
	if err := st.cands.parse(header); err != nil {
		return err
	}
	matched := false
	for _, m := range st.macs {
		m.Reset()
		m.Write(payload)
		m.Sum(st.sum[:0])
		// Every secret is tried even after a match, so timing does not tell which.
		if st.cands.match(&st.sum) {
			matched = true
		}
	}
	if !matched {
		return ErrSignatureMismatch
	}
	return nil
}

// checkTimestamp enforces WithTolerance on a payload whose signature passed.
func (v *Verifier) checkTimestamp(payload []byte) error {
	var stamps struct {
		CreatedOn json.RawMessage `json:"created_on"`
		Timestamp json.RawMessage `json:"timestamp"`
	}
	if err := json.Unmarshal(payload, &stamps); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalidEvent, jsonProblem(err))
	}
	at, err := eventTime(stamps.CreatedOn, stamps.Timestamp)
	if err != nil {
		return err
	}
	if at.IsZero() {
		return fmt.Errorf("%w: no created_on or timestamp to check the tolerance against", ErrInvalidEvent)
	}
	age := v.now().Sub(at)
	switch {
	case age > v.tolerance:
		return fmt.Errorf("%w: %s old, tolerance %s", ErrTooOld, age.Round(time.Second), v.tolerance)
	case -age > v.tolerance:
		return fmt.Errorf("%w: %s ahead, tolerance %s", ErrTooNew, (-age).Round(time.Second), v.tolerance)
	}
	return nil
}

// ConstructEvent verifies a delivery, then parses it.
func (v *Verifier) ConstructEvent(payload []byte, header string) (*Event, error) {
	if err := v.Verify(payload, header); err != nil {
		return nil, err
	}
	return ParseEvent(payload)
}

// VerifyRequest reads r's body, at most the Verifier's limit, verifies it with
// the request's signature header and returns it. r.Body is replaced by the
// bytes read, so later handlers can read the body again.
func (v *Verifier) VerifyRequest(r *http.Request) ([]byte, error) {
	if r.ContentLength > v.maxBody {
		return nil, ErrBodyTooLarge
	}
	if r.Body == nil { // a client-side request without a body
		r.Body = http.NoBody
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, v.maxBody+1))
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreadableBody, err)
	}
	if int64(len(body)) > v.maxBody {
		return nil, ErrBodyTooLarge
	}
	if err := v.Verify(body, SignatureFromHeader(r.Header)); err != nil {
		return nil, v.refusal(err, body, r)
	}
	return body, nil
}

type eventContextKey struct{}

// Middleware lets through only verified deliveries, with their parsed Event in
// the request context (see EventFromContext). It answers 401 to a missing or
// wrong signature or a timestamp outside the tolerance, 413 to a body over the
// limit, and 400 to a body that cannot be read or is not an event; the
// WithOnReject function, if set, hears why.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := v.VerifyRequest(r)
		var event *Event
		if err == nil {
			event, err = ParseEvent(body)
		}
		if err == nil {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), eventContextKey{}, event)))
			return
		}
		if v.onReject != nil {
			v.onReject(r, err)
		}
		switch {
		case errors.Is(err, ErrBodyTooLarge):
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		case errors.Is(err, ErrMissingSignature), errors.Is(err, ErrMalformedSignature),
			errors.Is(err, ErrSignatureMismatch), errors.Is(err, ErrTooOld), errors.Is(err, ErrTooNew):
			http.Error(w, "invalid signature", http.StatusUnauthorized)
		default:
			http.Error(w, "invalid event payload", http.StatusBadRequest)
		}
	})
}

// EventFromContext returns the Event that Middleware verified for this request.
func EventFromContext(ctx context.Context) (*Event, bool) {
	e, ok := ctx.Value(eventContextKey{}).(*Event)
	return e, ok && e != nil
}
