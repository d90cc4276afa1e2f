package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Cause is why a delivery failed verification, as Diagnose found it.
type Cause string

// The causes Diagnose reports, in the order it looks for them.
const (
	CauseMissingSignature     Cause = "missing_signature"       // no X-Signature or X-Cakemail-Signature header
	CauseMalformedSignature   Cause = "malformed_signature"     // the header is not a SHA-256 digest in base64 or hex
	CauseSecretWhitespace     Cause = "secret_whitespace"       // a secret has whitespace around it, or matches once quotes around it are removed
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

	finding string // what was found, without the final period
	advice  string // what to do, in the SDK's terms
	refused bool   // a secret NewVerifier refuses, rather than one it takes
}

// String is one sentence: what went wrong, and what to do.
func (d *Diagnosis) String() string {
	if d == nil {
		return "The delivery verifies."
	}
	return d.finding + ": " + d.advice + "."
}

// Finding is the sentence of String without its advice, which names the SDK's
// calls, for a program that gives advice in its own terms (a command line
// tool, say) from the Cause.
func (d *Diagnosis) Finding() string {
	if d == nil {
		return "The delivery verifies."
	}
	return d.finding + "."
}

// Error returns String, so that a Diagnosis found with errors.As reads as one.
func (d *Diagnosis) Error() string { return d.String() }

// Unwrap returns the sentinel a Verifier reports for the same delivery:
// ErrMissingSignature, ErrMalformedSignature, ErrSecretWhitespace or
// ErrSignatureMismatch.
func (d *Diagnosis) Unwrap() error {
	switch {
	case d.Cause == CauseMissingSignature:
		return ErrMissingSignature
	case d.Cause == CauseMalformedSignature:
		return ErrMalformedSignature
	case d.refused:
		return ErrSecretWhitespace
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
	// diagnoseWork is the most work one Diagnose call does, counted in bytes
	// hashed: about 120 ms of one core hashing at 1.7 GB/s. It is enough for
	// one secret to try every form of a 1 MiB body, and for 8 secrets a third.
	diagnoseWork = 192 << 20
	// tokenWork and charWork are the costs, in bytes hashed, of writing one
	// JSON value, and of writing one byte of a string that is decoded and
	// escaped again rather than copied.
	tokenWork = 32
	charWork  = 4
	// diagnoseTime is how long after it starts Diagnose stops trying altered
	// bodies whatever work is left: on a slow or busy machine, or under the
	// race detector, the work above takes several times as long.
	diagnoseTime = 200 * time.Millisecond
)

// workBudget is what is left of diagnoseWork and diagnoseTime. Its spending
// is not safe for concurrent use, but expired is.
type workBudget struct {
	left     int64
	deadline time.Time
	skipped  int // altered bodies not tried for want of work or time
}

func newWorkBudget() *workBudget {
	return &workBudget{left: diagnoseWork, deadline: time.Now().Add(diagnoseTime)}
}

// take spends n if that much is left and the time is not up, and says
// whether it did.
func (w *workBudget) take(n int64) bool {
	if n > w.left || w.expired() {
		return false
	}
	w.left -= n
	return true
}

func (w *workBudget) expired() bool { return !time.Now().Before(w.deadline) }

// Diagnose says why body and header fail verification with secrets, or
// returns nil when they pass. It runs apart from verification, so a Verifier
// pays nothing for it; call it on refusals (a Verifier's WithOnReject hook
// gets one with errors.As).
//
// Each cause is found by trying the fix, in this order: a missing header; a
// malformed one; a secret with whitespace around it, which NewVerifier
// refuses, or with quotes around it; a trailing newline added or removed; the
// body re-encoded as JSON. Then come the causes that can only be seen, not
// proven: a secret shaped like an API token (JWT), and a body that is cut
// short; else the secret is wrong.
//
// Every secret is tried on the body as received; then the first 8 secrets are
// each tried trimmed (2 variants), on the body with a trailing newline added
// or removed (up to 4 variants), and on up to 33 JSON forms of the body, each
// with and without a final newline: keys {as received, in Cakemail's
// documented order, sorted} × {compact, Python's ", " and ": ", indented by 2,
// indented by 4} × {UTF-8, \u escapes beyond ASCII, Go's escapes of <, > and
// &}, Go's escapes never with Python's separators. Forms that cannot differ
// from another are skipped, bodies nested deeper than 64 levels are not
// re-encoded, and up to 4 goroutines share the forms. A receiver that sorted
// the keys of an object whose order Cakemail does not document (within data,
// say) lost that order: such a body reads as a wrong secret.
//
// Diagnose is safe on any body anyone can send: its work is bounded by a
// budget of about 192 MiB hashed or written, which takes tens of milliseconds,
// and by 200 ms of wall time for a slow or busy machine; its memory is a few
// times the body's size (under 64 MiB for 1 MiB and 8 secrets). Past the
// budget it fails soft: it tries no more altered bodies and reports the cause
// found so far, or a wrong secret whose sentence says how many forms were not
// tried. One secret tries every form of a 1 MiB body; 8 secrets, a third.
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
		return &Diagnosis{Cause: CauseMalformedSignature, Secret: -1,
			finding: fmt.Sprintf("The %s header is not a SHA-256 digest in base64 or hex: %s", name, describeMalformed(signature)),
			advice:  "pass the header's whole value as received"}
	}
	var keys []string
	index := indexes(secrets) // of the secrets tried
	for _, i := range index {
		keys = append(keys, secrets[i])
	}
	if len(keys) == 0 {
		return &Diagnosis{Cause: CauseWrongSecret, Secret: -1, finding: "No secret was given to verify with",
			advice: "give the webhook's signing secret, which Client.Get returns"}
	}
	work := newWorkBudget()
	length := int64(len(body))
	// The body as received: every secret, as a Verifier would.
	matched := -1
	for i, s := range keys {
		work.left -= length
		if p.matches(hmac.New(sha256.New, []byte(s)), body) && matched < 0 {
			matched = i
		}
	}
	if len(keys) > maxDiagnoseSecrets {
		keys, index = keys[:maxDiagnoseSecrets], index[:maxDiagnoseSecrets]
	}
	of := ofSecrets(len(secrets))

	// A secret NewVerifier refuses comes first: with it, nothing verifies.
	for i, s := range keys {
		if !hasSpaceAround(s) {
			continue
		}
		d := &Diagnosis{Cause: CauseSecretWhitespace, Secret: -1, refused: true, advice: "trim the secret where it is loaded " +
			"(a file or an environment variable can add whitespace), as NewVerifier refuses a secret with whitespace around it"}
		for _, variant := range trimmedSecrets(s) {
			if work.take(length) && p.matches(hmac.New(sha256.New, []byte(variant)), body) {
				d.Secret = index[i]
				d.finding = fmt.Sprintf("Secret %d%s has %s, and matches the signature once trimmed", index[i]+1, of, describeAround(s, variant))
				return d
			}
		}
		d.finding = fmt.Sprintf("Secret %d%s has %s", index[i]+1, of, describeAround(s, strings.TrimSpace(s)))
		switch {
		case matched >= 0:
			d.finding += fmt.Sprintf(", though secret %d%s verifies the delivery", index[matched]+1, of)
		case len(secrets) > 1:
			d.finding += ", and even trimmed it does not match the signature, nor does any other secret"
		default:
			d.finding += ", and even trimmed it does not match the signature"
		}
		return d
	}
	if matched >= 0 {
		return nil
	}

	// Proven causes first: each is a MAC that matches once the fix is applied.
	for i, s := range keys {
		for _, variant := range trimmedSecrets(s) {
			if work.take(length) && p.matches(hmac.New(sha256.New, []byte(variant)), body) {
				return &Diagnosis{Cause: CauseSecretWhitespace, Secret: index[i],
					finding: fmt.Sprintf("Secret %d%s has %s, and matches the signature once trimmed", index[i]+1, of, describeAround(s, variant)),
					advice:  "remove the quotes where the secret is loaded (an .env file or a secret store can keep them)"}
			}
		}
	}
	p.macs = make([]hash.Hash, len(keys))
	for i, s := range keys {
		p.macs[i] = hmac.New(sha256.New, []byte(s))
	}
	for _, nl := range newlineVariants(body) {
		if !work.take((length + 2) * int64(len(keys))) {
			work.skipped++
			continue
		}
		if k := p.find(nl.parts...); k >= 0 {
			return &Diagnosis{Cause: CauseBodyTrailingNewline, Secret: index[k],
				finding: "The body matches the signature once " + nl.what,
				advice:  "verify the raw request body exactly as received, without adding or trimming a newline"}
		}
	}
	valid := json.Valid(body)
	if valid {
		if doc := parseJSON(body, work); doc != nil {
			if k, f := p.findForm(doc, body, keys, work); k >= 0 {
				return &Diagnosis{Cause: CauseBodyReserialized, Secret: index[k],
					finding: "The body was parsed and encoded again before verifying: the signature matches it as " + f,
					advice:  "hash the raw request body as received, before any JSON decoding"}
			}
		}
	}

	// Then what can be seen without a matching MAC.
	for i, s := range keys {
		if looksLikeJWT(strings.TrimSpace(s)) {
			return &Diagnosis{Cause: CauseSecretLooksLikeToken, Secret: -1,
				finding: fmt.Sprintf("Secret %d%s looks like an API access token (a JWT), not a webhook secret", index[i]+1, of),
				advice:  "use the webhook's signing key, which Client.Get returns as Webhook.Secret"}
		}
	}
	if d := truncation(body, header, valid); d != nil {
		return d
	}
	finding := noMatch(len(index), len(keys), p.forms)
	if work.skipped > 0 {
		finding += fmt.Sprintf(" (%s not tried: the diagnosis stops at a bound on its work)", count(work.skipped, "other form"))
	}
	return &Diagnosis{Cause: CauseWrongSecret, Secret: -1,
		finding: finding + ": the delivery was signed with another secret, such as that of another webhook (one per event) for this URL",
		advice:  "give the Verifier every secret of the URL's webhooks (Client.Secrets)"}
}

// indexes returns the positions of the secrets that are not empty, nor only
// whitespace.
func indexes(secrets []string) []int {
	var out []int
	for i, s := range secrets {
		if strings.TrimSpace(s) != "" {
			out = append(out, i)
		}
	}
	return out
}

// ofSecrets is what follows "Secret N" when there are n: " of n", or nothing
// when there is one.
func ofSecrets(n int) string {
	if n == 1 {
		return ""
	}
	return " of " + strconv.Itoa(n)
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
