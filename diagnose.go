package webhooks

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Cause is why a delivery failed verification, as Diagnose found it.
type Cause string

// The causes Diagnose reports, in the order it looks for them.
const (
	CauseMissingSignature     Cause = "missing_signature"       // no X-Signature or X-Cakemail-Signature header
	CauseMalformedSignature   Cause = "malformed_signature"     // the header is not a SHA-256 digest in base64 or hex
	CauseSecretWhitespace     Cause = "secret_whitespace"       // a secret matches once whitespace, quotes or a newline around it are removed
	CauseBodyTrailingNewline  Cause = "body_trailing_newline"   // the body matches once a trailing newline is added or removed
	CauseBodyReserialized     Cause = "body_reserialized"       // the body matches in another JSON form: it was parsed and encoded again
	CauseSecretLooksLikeToken Cause = "secret_looks_like_token" // a secret is an API access token (a JWT), not a webhook secret
	CauseBodyTruncated        Cause = "body_truncated"          // the body is empty, incomplete JSON or shorter than its Content-Length
	CauseWrongSecret          Cause = "wrong_secret"            // none of the above: the delivery was signed with another secret
)

// Diagnosis says why a delivery failed verification and what to do about it.
// It holds no secret, signature, MAC or body text, so it is safe to log.
type Diagnosis struct {
	Cause Cause
	// Secret is the index, in the secrets given, of the secret that matched once
	// the cause was undone; -1 when none did.
	Secret int
	text   string
}

// String is one sentence: what went wrong, and what to do.
func (d *Diagnosis) String() string {
	if d == nil {
		return "The delivery verifies."
	}
	return d.text
}

// Error returns String, so that a Diagnosis found with errors.As reads as one.
func (d *Diagnosis) Error() string { return d.String() }

// Unwrap returns the sentinel a Verifier reports for the same delivery:
// ErrMissingSignature, ErrMalformedSignature or ErrSignatureMismatch.
func (d *Diagnosis) Unwrap() error {
	switch d.Cause {
	case CauseMissingSignature:
		return ErrMissingSignature
	case CauseMalformedSignature:
		return ErrMalformedSignature
	}
	return ErrSignatureMismatch
}

// The bounds of Diagnose's work, per delivery.
const (
	// maxDiagnoseSecrets is how many secrets the altered bodies and secrets are
	// tried with; every secret is tried on the body as received.
	maxDiagnoseSecrets = 8
	// maxJSONDepth is the deepest JSON Diagnose re-encodes.
	maxJSONDepth = 64
	// maxDiagnoseWorkers is how many goroutines share the JSON forms.
	maxDiagnoseWorkers = 4
)

// Diagnose says why body and header fail verification with secrets, or
// returns nil when they pass. It runs apart from verification, so a Verifier
// pays nothing for it; call it on refusals (a Verifier's WithOnReject hook
// gets one with errors.As).
//
// Each cause is found by trying the fix, in this order: a missing header; a
// malformed one; a secret with whitespace, quotes or a newline around it; a
// trailing newline added or removed; the body re-encoded as JSON. Then come
// the causes that can only be seen, not proven: a secret shaped like an API
// token (JWT), and a body that is cut short; else the secret is wrong.
//
// The work is bounded. Every secret is tried on the body as received; then
// the first 8 secrets are each tried trimmed (2 variants), on the body with a
// trailing newline added or removed (up to 4 variants), and on up to 33 JSON
// forms of the body, each with and without a final newline: keys {as
// received, in Cakemail's documented order, sorted} × {compact, Python's ", "
// and ": ", indented by 2, indented by 4} × {UTF-8, \u escapes beyond ASCII,
// Go's escapes of <, > and &}, Go's escapes never with Python's separators.
// Forms that cannot differ from another are skipped, bodies nested deeper than
// 64 levels are not re-encoded, and up to 4 goroutines share the forms. A 1 MiB
// body takes tens of milliseconds per secret (BenchmarkDiagnose). A receiver
// that sorted the keys of an object whose order Cakemail does not document
// (within data, say) lost that order: such a body reads as a wrong secret.
func Diagnose(body []byte, header http.Header, secrets []string) *Diagnosis {
	signature := SignatureFromHeader(header)
	name := SignatureHeader
	if strings.TrimSpace(header.Get(SignatureHeader)) == "" {
		name = LegacySignatureHeader
	}
	if strings.TrimSpace(signature) == "" {
		return missingSignature(header)
	}
	p := &prober{}
	if err := p.cands.parse(signature); err != nil {
		return &Diagnosis{Cause: CauseMalformedSignature, Secret: -1, text: fmt.Sprintf(
			"The %s header is not a SHA-256 digest in base64 or hex: %s; pass the header's whole value as received.",
			name, describeMalformed(signature))}
	}
	var keys []string
	for _, s := range secrets {
		if s != "" {
			keys = append(keys, s)
		}
	}
	for _, s := range keys {
		if p.matches(hmac.New(sha256.New, []byte(s)), body) {
			return nil
		}
	}
	if len(keys) == 0 {
		return &Diagnosis{Cause: CauseWrongSecret, Secret: -1,
			text: "No secret was given to verify with: give the webhook's signing secret, which Client.Get returns."}
	}
	index := indexes(secrets)
	if len(keys) > maxDiagnoseSecrets {
		keys, index = keys[:maxDiagnoseSecrets], index[:maxDiagnoseSecrets]
	}
	ofN := fmt.Sprintf(" of %d", len(secrets))
	if len(secrets) == 1 {
		ofN = ""
	}

	// Proven causes first: each is a MAC that matches once the fix is applied.
	for i, s := range keys {
		for _, variant := range trimmedSecrets(s) {
			if p.matches(hmac.New(sha256.New, []byte(variant)), body) {
				return &Diagnosis{Cause: CauseSecretWhitespace, Secret: index[i], text: fmt.Sprintf(
					"Secret %d%s matches once the %s around it are removed: trim the secret where it is loaded (an .env file or a secret store can add them).",
					index[i]+1, ofN, describeTrimmed(s, variant))}
			}
		}
	}
	p.macs = make([]hash.Hash, len(keys))
	for i, s := range keys {
		p.macs[i] = hmac.New(sha256.New, []byte(s))
	}
	for _, nl := range newlineVariants(body) {
		if k := p.find(nl.parts...); k >= 0 {
			return &Diagnosis{Cause: CauseBodyTrailingNewline, Secret: index[k], text: fmt.Sprintf(
				"The body matches the signature once %s: verify the raw request body exactly as received, without adding or trimming a newline.", nl.what)}
		}
	}
	valid := json.Valid(body)
	var doc *jsonDoc
	if valid {
		doc = parseJSON(body)
	}
	if doc != nil {
		if k, f := p.findForm(doc, body, keys); k >= 0 {
			return &Diagnosis{Cause: CauseBodyReserialized, Secret: index[k], text: fmt.Sprintf(
				"The body was parsed and encoded again before verifying (the signature matches it as %s): hash the raw request body as received, before any JSON decoding.", f)}
		}
	}

	// Then what can be seen without a matching MAC.
	for i, s := range keys {
		if looksLikeJWT(strings.TrimSpace(s)) {
			return &Diagnosis{Cause: CauseSecretLooksLikeToken, Secret: -1, text: fmt.Sprintf(
				"Secret %d%s looks like an API access token (a JWT), not a webhook secret: use the webhook's signing key, which Client.Get returns as Webhook.Secret.",
				index[i]+1, ofN)}
		}
	}
	if why := truncation(body, header, valid); why != "" {
		return &Diagnosis{Cause: CauseBodyTruncated, Secret: -1, text: why}
	}
	return &Diagnosis{Cause: CauseWrongSecret, Secret: -1, text: fmt.Sprintf(
		"The signature matches none of the %d secret(s) tried, nor %d altered form(s) of the body: the delivery was signed with another secret, such as that of another webhook (one per event) for this URL; give the Verifier every secret of the URL's webhooks (Client.Secrets).",
		len(keys), p.forms)}
}

// indexes returns the positions of the non-empty secrets.
func indexes(secrets []string) []int {
	var out []int
	for i, s := range secrets {
		if s != "" {
			out = append(out, i)
		}
	}
	return out
}

// missingSignature names the headers present that look like a signature.
func missingSignature(header http.Header) *Diagnosis {
	var similar []string
	for name := range header {
		lower := strings.ToLower(name)
		if !(strings.Contains(lower, "signature") || strings.Contains(lower, "hmac") ||
			strings.Contains(lower, "digest") || strings.HasSuffix(lower, "sig")) {
			continue
		}
		name = http.CanonicalHeaderKey(name)
		if strings.TrimSpace(header.Get(name)) == "" {
			name += " (empty)"
		}
		similar = append(similar, name)
	}
	slices.Sort(similar)
	similar = slices.Compact(similar)
	there := "and no other signature header either"
	if len(similar) > 0 {
		there = "only " + strings.Join(similar, ", ")
	}
	return &Diagnosis{Cause: CauseMissingSignature, Secret: -1, text: fmt.Sprintf(
		"The delivery has no %s or %s header (it has %s): check that it comes from Cakemail and that no proxy drops or renames the header.",
		SignatureHeader, LegacySignatureHeader, there)}
}

// describeMalformed says what a header that holds no digest looks like,
// without quoting any of its value but a short scheme prefix.
func describeMalformed(header string) string {
	v := strings.TrimSpace(header)
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = strings.TrimSpace(v[:i]) // of several values, the first says enough
	}
	if prefix, rest, ok := strings.Cut(v, "="); ok && rest != "" && isSchemeName(prefix) && !strings.EqualFold(prefix, "sha256") {
		return fmt.Sprintf("its value starts with the prefix %q, where only \"sha256=\" is understood", prefix+"=")
	}
	if len(v) > 7 && strings.EqualFold(v[:7], "sha256=") {
		v = v[7:]
	}
	if v == "" {
		return "it holds no digest after its prefix"
	}
	hexDigits := strings.Trim(v, "0123456789abcdefABCDEF") == ""
	if hexDigits && len(v) != 44 && len(v) != 43 {
		switch {
		case len(v) == 40:
			return "it is 40 hex digits, a SHA-1 digest: Cakemail signs with SHA-256 (64 hex digits)"
		case len(v) == 128:
			return "it is 128 hex digits, a SHA-512 digest: Cakemail signs with SHA-256 (64 hex digits)"
		case len(v) < 64:
			return fmt.Sprintf("it is %d hex digits, not 64: it looks truncated", len(v))
		}
		return fmt.Sprintf("it is %d hex digits, not 64: the wrong length", len(v))
	}
	raw := strings.TrimRight(v, "=")
	if strings.Trim(raw, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_") == "" {
		n := len(raw) * 6 / 8
		if n < sha256.Size {
			return fmt.Sprintf("it is %d base64 characters, %d bytes instead of 32: it looks truncated", len(v), n)
		}
		if n > sha256.Size {
			return fmt.Sprintf("it is %d base64 characters, %d bytes instead of 32: the wrong length", len(v), n)
		}
		return "it is 32 bytes of base64 with misplaced padding"
	}
	return fmt.Sprintf("it is %d characters, some neither hex nor base64", len(v))
}

func isSchemeName(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// secretJunk is what loading a secret from a file or a store often adds around it.
const secretJunk = " \t\r\n\"'`"

// trimmedSecrets are s without surrounding whitespace, and without surrounding
// whitespace and quotes, when those differ from s.
func trimmedSecrets(s string) []string {
	var out []string
	for _, t := range []string{strings.TrimSpace(s), strings.Trim(s, secretJunk)} {
		if t != "" && t != s && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// describeTrimmed names the kinds of characters removed from s to give t.
func describeTrimmed(s, t string) string {
	removed := strings.Replace(s, t, "", 1)
	var kinds []string
	if strings.ContainsAny(removed, " \t") {
		kinds = append(kinds, "spaces")
	}
	if strings.ContainsAny(removed, "\r\n") {
		kinds = append(kinds, "newline")
	}
	if strings.ContainsAny(removed, "\"'`") {
		kinds = append(kinds, "quotes")
	}
	return strings.Join(kinds, " and ")
}

type newlineVariant struct {
	what  string
	parts [][]byte
}

// newlineVariants are body with a trailing newline added or removed.
func newlineVariants(body []byte) []newlineVariant {
	vs := []newlineVariant{
		{"a trailing newline (\\n) is added", [][]byte{body, []byte("\n")}},
		{"a trailing \\r\\n is added", [][]byte{body, []byte("\r\n")}},
	}
	if bytes.HasSuffix(body, []byte("\n")) {
		vs = append(vs, newlineVariant{"its trailing newline is removed", [][]byte{body[:len(body)-1]}})
	}
	if trimmed := bytes.TrimRight(body, "\r\n"); len(trimmed) < len(body)-1 {
		vs = append(vs, newlineVariant{"its trailing newlines are removed", [][]byte{trimmed}})
	}
	return vs
}

// prober tries forms of a delivery against the signature's digests.
type prober struct {
	cands candidates
	macs  []hash.Hash
	sum   [sha256.Size]byte
	forms int // altered bodies tried
}

// matches says whether m over the concatenated parts gives one of the digests.
func (p *prober) matches(m hash.Hash, parts ...[]byte) bool {
	m.Reset()
	for _, part := range parts {
		m.Write(part)
	}
	m.Sum(p.sum[:0])
	return p.cands.match(&p.sum)
}

// find returns the index of the secret whose MAC of parts matches, or -1.
func (p *prober) find(parts ...[]byte) int {
	p.forms++
	for k, m := range p.macs {
		if p.matches(m, parts...) {
			return k
		}
	}
	return -1
}

// jsonForm is one way of encoding a parsed body.
type jsonForm struct {
	keys   keysIn
	layout layout
	esc    escaping
}

// jsonForms are the forms worth trying for doc: escapings that cannot differ
// and key orders that are the received one are left out, and Go's HTML
// escaping is never combined with Python's separators.
func jsonForms(doc *jsonDoc) []jsonForm {
	escapes := []escaping{escapeUTF8}
	if doc.nonASCII {
		escapes = append(escapes, escapeASCII)
	}
	if doc.htmlChars {
		escapes = append(escapes, escapeHTML)
	}
	orders := []keysIn{keysAsReceived}
	if doc.reordered {
		orders = append(orders, keysCakemail)
	}
	if doc.unsorted {
		orders = append(orders, keysSorted)
	}
	var forms []jsonForm
	for _, keys := range orders {
		for _, l := range []layout{layoutCompact, layoutPython, layoutIndent2, layoutIndent4} {
			for _, esc := range escapes {
				if !(esc == escapeHTML && l == layoutPython) {
					forms = append(forms, jsonForm{keys, l, esc})
				}
			}
		}
	}
	return forms
}

// findForm re-encodes doc in each form, each with and without a final
// newline, and returns the index of the secret that signed one and the form's
// description; -1 when none matches. The forms are shared among up to
// maxDiagnoseWorkers goroutines; the first form in order that matches wins,
// whichever goroutine finds it.
func (p *prober) findForm(doc *jsonDoc, body []byte, keys []string) (int, string) {
	forms := jsonForms(doc)
	var (
		next, tried atomic.Int32
		mu          sync.Mutex
		best        = len(forms) // the first matching form, or len(forms)
		bestKey     = -1
		bestNewline bool
		wg          sync.WaitGroup
	)
	work := func() {
		defer wg.Done()
		macs := make([]hash.Hash, len(keys))
		for k, s := range keys {
			macs[k] = hmac.New(sha256.New, []byte(s))
		}
		buf := make([]byte, 0, 3*len(body)+64) // room for the widest form
		var sum [sha256.Size]byte
		for {
			i := int(next.Add(1) - 1)
			mu.Lock()
			done := i >= best
			mu.Unlock()
			if done {
				return
			}
			f := forms[i]
			e := encoder{doc: doc, buf: buf[:0], keys: f.keys, layout: f.layout, esc: f.esc}
			e.value(0, 0)
			buf = e.buf
			if bytes.Equal(buf, body) {
				continue // tried already
			}
			tried.Add(2)
			for k, m := range macs {
				m.Reset()
				m.Write(buf)
				m.Sum(sum[:0])
				newline := false
				if !p.cands.match(&sum) {
					m.Write([]byte("\n")) // Sum left the state as it was
					m.Sum(sum[:0])
					if !p.cands.match(&sum) {
						continue
					}
					newline = true
				}
				mu.Lock()
				if i < best {
					best, bestKey, bestNewline = i, k, newline
				}
				mu.Unlock()
				return
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), maxDiagnoseWorkers, len(forms))
	wg.Add(workers)
	for range workers - 1 {
		go work()
	}
	work()
	wg.Wait()
	p.forms += int(tried.Load())
	if bestKey < 0 {
		return -1, ""
	}
	f := forms[best]
	return bestKey, describeForm(f.keys, f.layout, f.esc, bestNewline)
}

func describeForm(keys keysIn, l layout, esc escaping, newline bool) string {
	parts := []string{[...]string{"compact JSON", `JSON with Python's ", " and ": " separators`, "JSON indented by 2 spaces", "JSON indented by 4 spaces"}[l]}
	switch keys {
	case keysSorted:
		parts = append(parts, "keys sorted")
	case keysCakemail:
		parts = append(parts, "keys in the order Cakemail sends them")
	}
	switch esc {
	case escapeASCII:
		parts = append(parts, `non-ASCII characters as \u escapes`)
	case escapeHTML:
		parts = append(parts, `<, > and & as \u escapes (Go's encoding/json)`)
	default:
		parts = append(parts, "UTF-8 characters unescaped")
	}
	if newline {
		parts = append(parts, "a final newline")
	}
	return strings.Join(parts, ", ")
}

// looksLikeJWT says whether s is three base64url parts whose first decodes to
// a JSON header with "alg": an access token, not a webhook secret.
func looksLikeJWT(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[1] == "" {
		return false
	}
	head, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[0], "="))
	if err != nil {
		return false
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(head, &fields) != nil {
		return false
	}
	_, ok := fields["alg"]
	return ok
}

// truncation says how body looks cut short, or returns "".
func truncation(body []byte, header http.Header, valid bool) string {
	if n, err := strconv.ParseInt(strings.TrimSpace(header.Get("Content-Length")), 10, 64); err == nil && n > int64(len(body)) {
		return fmt.Sprintf("The body is %d bytes but its Content-Length says %d: it was cut short; read the whole request body before verifying.", len(body), n)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return "The body is empty: something read it before verifying; verify the raw request body before any other middleware or framework reads it."
	}
	if valid {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var raw json.RawMessage
	err := dec.Decode(&raw)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "The body ends before its JSON is complete: it was cut short; read the whole request body (mind any size limit) before verifying."
	}
	if err != nil {
		return "The body is not valid JSON, which Cakemail always sends: it was changed on the way; verify the raw request body before anything reads or rewrites it."
	}
	return ""
}

// signatureRefusal is the error VerifyRequest returns for a signature that
// fails: it reads as the sentinel it wraps, and gives errors.As a *Diagnosis,
// computed on the first request for it, so a refusal nobody asks about costs
// no diagnosis.
type signatureRefusal struct {
	err      error
	once     sync.Once
	diagnose func() *Diagnosis
	d        *Diagnosis
}

func (e *signatureRefusal) Error() string { return e.err.Error() }

func (e *signatureRefusal) Unwrap() error { return e.err }

// As fills a *Diagnosis target with the diagnosis.
func (e *signatureRefusal) As(target any) bool {
	p, ok := target.(**Diagnosis)
	if !ok {
		return false
	}
	e.once.Do(func() {
		e.d = e.diagnose()
		e.diagnose = nil // lets the body go
	})
	if e.d == nil {
		return false
	}
	*p = e.d
	return true
}

// refusal wraps a signature failure of VerifyRequest with its lazy diagnosis.
func (v *Verifier) refusal(err error, body []byte, r *http.Request) error {
	if v.diagnose == nil || !(errors.Is(err, ErrMissingSignature) || errors.Is(err, ErrMalformedSignature) || errors.Is(err, ErrSignatureMismatch)) {
		return err
	}
	header := r.Header.Clone()
	if header == nil {
		header = http.Header{}
	}
	if r.ContentLength > 0 && header.Get("Content-Length") == "" {
		header.Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	diagnose := v.diagnose
	return &signatureRefusal{err: err, diagnose: func() *Diagnosis { return diagnose(body, header) }}
}
