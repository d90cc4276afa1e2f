package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/cakemail-go/webhooks"
)

// explanation is what verify --explain adds to its result.
type explanation struct {
	Cause    webhooks.Cause `json:"cause"`
	Why      string         `json:"why"`
	SignedBy *signer        `json:"signed_by,omitempty"`
}

// signer is the webhook of the account whose secret signed a delivery.
type signer struct {
	ID    string             `json:"id"`
	Event webhooks.EventType `json:"event"`
	URL   string             `json:"url"`
	// Why is set when the secret matches only once the body is restored
	// (a newline, a re-encoding); it says how.
	Why string `json:"why,omitempty"`
}

func (s *signer) String() string {
	text := fmt.Sprintf("signed with the secret of webhook %s (%s → %s)", s.ID, s.Event, shownURL(s.URL))
	if s.Why != "" {
		text += ", once the body is restored: " + s.Why
	}
	return text
}

// verifySecrets are the secrets verify checks with, as a.verifier reads them.
func (a *app) verifySecrets(c *invocation) ([]string, error) {
	secret, err := a.secretFlag(c)
	if err != nil {
		return nil, err
	}
	var secrets []string
	for _, s := range strings.Split(secret, ",") {
		if s = strings.TrimSpace(s); s != "" {
			secrets = append(secrets, s)
		}
	}
	return secrets, nil
}

// explainVerify diagnoses a delivery verify refused: raw is the input, body
// and signature what verify read from it. With --url it also tries the secret
// of every webhook of the account. Nothing it prints holds a secret, a MAC or
// any of the body.
func (a *app) explainVerify(ctx context.Context, c *invocation, raw, body []byte, signature string) (*explanation, error) {
	header := http.Header{}
	if c.signature != "" {
		header.Set(webhooks.SignatureHeader, signature)
	} else if req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw))); err == nil {
		header = req.Header
		if req.ContentLength > 0 {
			header.Set("Content-Length", fmt.Sprint(req.ContentLength))
		}
	}
	secrets, err := a.verifySecrets(c)
	if err != nil {
		return nil, err
	}
	d := webhooks.Diagnose(body, header, secrets)
	if d == nil { // Verify and Diagnose read the secrets alike: not expected
		return nil, nil
	}
	ex := &explanation{Cause: d.Cause, Why: d.String()}
	if c.url == "" || d.Secret >= 0 || d.Cause == webhooks.CauseMissingSignature || d.Cause == webhooks.CauseMalformedSignature {
		return ex, nil // nothing to search for, or found already
	}
	if ex.SignedBy, err = a.findSigner(ctx, c, body, header); err != nil {
		return nil, err
	}
	return ex, nil
}

// findSigner tries the secret of every webhook of the account, whatever its
// URL or status, and returns the one that signed the delivery: exactly, or
// else once the body is restored. It returns nil when none did.
func (a *app) findSigner(ctx context.Context, c *invocation, body []byte, header http.Header) (*signer, error) {
	client, err := a.client(c)
	if err != nil {
		return nil, err
	}
	var restored *signer
	for hook, err := range client.All(ctx, &webhooks.ListOptions{PerPage: 100, WithArchived: true}) {
		if err != nil {
			return nil, err
		}
		full, err := client.Get(ctx, hook.ID)
		if err != nil {
			return nil, err
		}
		if full.Secret == "" {
			continue
		}
		d := webhooks.Diagnose(body, header, []string{full.Secret})
		found := &signer{ID: full.ID, Event: full.Event, URL: full.URL}
		switch {
		case d == nil:
			return found, nil
		case restored == nil && d.Secret == 0: // the secret matched a restored body
			found.Why = d.String()
			restored = found
		}
	}
	return restored, nil
}

// printExplanation writes verify --explain's text.
func printExplanation(a *app, c *invocation, ex *explanation) {
	if ex == nil {
		return
	}
	fmt.Fprintf(a.stdout, "why: %s\n", ex.Why)
	switch {
	case ex.SignedBy != nil:
		fmt.Fprintf(a.stdout, "%s\n", ex.SignedBy)
		if ex.SignedBy.URL != c.url {
			fmt.Fprintf(a.stdout, "That webhook delivers to another URL: check the URL the delivery was sent to, or add that webhook's secret to the receiver.\n")
		} else {
			fmt.Fprintf(a.stdout, "Each webhook of a URL has its own secret: give the receiver all of them (cakemail-webhooks secrets -u URL).\n")
		}
	case c.url != "" && ex.Cause != webhooks.CauseMissingSignature && ex.Cause != webhooks.CauseMalformedSignature &&
		ex.Cause != webhooks.CauseSecretWhitespace && ex.Cause != webhooks.CauseBodyTrailingNewline && ex.Cause != webhooks.CauseBodyReserialized:
		fmt.Fprintf(a.stdout, "No webhook of the account signed it either: it may come from another account, or not from Cakemail.\n")
	}
}

// refuseUnverified answers a delivery that failed verification and prints,
// on one write, why and, for a signature failure, the diagnosis.
func (l *listener) refuseUnverified(w http.ResponseWriter, r *http.Request, err error) {
	status, reason := refusalStatus(err), l.reason(err)
	line := fmt.Sprintf("refused %s %s: %s (answered %d)\n", r.Method, r.URL.EscapedPath(), reason, status)
	var d *webhooks.Diagnosis
	if errors.As(err, &d) {
		line += "  why: " + d.String() + "\n"
	}
	fmt.Fprint(l.a.stderr, line)
	http.Error(w, reason, status)
}
