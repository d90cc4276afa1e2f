package main

import (
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
	// OnceTrimmed is set when a secret has whitespace around it and, even
	// trimmed, does not verify: it says why the delivery would still fail.
	OnceTrimmed string `json:"once_trimmed,omitempty"`
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

// seenBy is where the command met the delivery it diagnoses, which decides
// the advice it gives.
type seenBy int

const (
	seenByListen  seenBy = iota // listen received it
	seenAsBody                  // verify read a body, its signature given with --signature
	seenAsCapture               // verify read a captured request
)

// explain is d's sentence with the command's own advice: what the user can
// do with its commands and flags, where the SDK's advice names Go calls.
func explain(d *webhooks.Diagnosis, seen seenBy) string {
	return strings.TrimSuffix(d.Finding(), ".") + ": " + advice(d, seen) + "."
}

func advice(d *webhooks.Diagnosis, seen seenBy) string {
	listening := seen == seenByListen
	switch d.Cause {
	case webhooks.CauseMissingSignature:
		switch seen {
		case seenAsBody:
			return "give the header's value with --signature"
		case seenAsCapture:
			return "check that the capture kept every header as received, that the delivery comes from Cakemail, and that no proxy drops or renames the header"
		}
		return "check that the delivery comes from Cakemail and that no proxy drops or renames the header"
	case webhooks.CauseMalformedSignature:
		switch seen {
		case seenAsBody:
			return "give --signature the header's whole value, as received"
		case seenAsCapture:
			return "check that the capture kept the header's whole value, and that no proxy rewrites it"
		}
		return "check that the delivery comes from Cakemail and that no proxy rewrites the header"
	case webhooks.CauseSecretWhitespace:
		if errors.Is(d, webhooks.ErrSecretWhitespace) {
			return "trim the secret where it is kept (a file saved with a final newline, an .env line with spaces or a CRLF line end); " +
				"the SDK's Verifier refuses a secret with whitespace around it, and so do listen, verify and trigger"
		}
		return "remove the quotes where the secret is kept (an .env file or a secret store can keep them)"
	case webhooks.CauseBodyTrailingNewline:
		if listening {
			return "send the body exactly as it was signed, as something between the sender and listen adds or trims a newline"
		}
		return "give verify the bytes exactly as received, which an editor, echo or a copy from a terminal changes by a final newline; " +
			"in a capture taken byte for byte, the newline changed on the way to the receiver"
	case webhooks.CauseBodyReserialized:
		if listening {
			return "send the body exactly as it was signed, as something between the sender and listen decoded and re-encoded its JSON"
		}
		return "give verify the raw body as received, not one copied from a log, a debugger or a framework that decoded it; " +
			"a receiver must hash the raw body before any JSON decoding"
	case webhooks.CauseSecretLooksLikeToken:
		return "give the webhook's signing secret instead, which cakemail-webhooks get <id> shows (cakemail-webhooks secrets -u URL lists those of a URL)"
	case webhooks.CauseBodyTruncated:
		switch seen {
		case seenByListen:
			return "something between the sender and listen cut the body (a proxy's size limit, say)"
		case seenAsCapture:
			return "capture the whole request (cakemail-webhooks help verify says how); if the capture is whole, something before the receiver cut the body"
		}
		return "give verify the whole body"
	}
	if listening {
		return `give listen every secret of the URL's webhooks, with -s "$(cakemail-webhooks secrets -u URL)"`
	}
	return "give every secret of the URL's webhooks, which cakemail-webhooks secrets -u URL lists, or try every webhook of the account with --url URL"
}

// explainVerify diagnoses a delivery verify refused, with the secrets as
// given. With --url it also tries the secret of every webhook of the account.
// Nothing it prints holds a secret, a MAC or any of the body.
func (a *app) explainVerify(ctx context.Context, c *invocation, d *delivery, secrets []string) (*explanation, error) {
	seen := seenAsCapture
	if c.signature != "" {
		seen = seenAsBody
	}
	diag := webhooks.Diagnose(d.body, d.header, secrets)
	if diag == nil { // Verify and Diagnose read the secrets alike: not expected
		return nil, nil
	}
	ex := &explanation{Cause: diag.Cause, Why: explain(diag, seen)}
	if errors.Is(diag, webhooks.ErrSecretWhitespace) && diag.Secret < 0 {
		trimmed := make([]string, len(secrets))
		for i, s := range secrets {
			trimmed[i] = strings.TrimSpace(s)
		}
		if then := webhooks.Diagnose(d.body, d.header, trimmed); then != nil {
			ex.OnceTrimmed = explain(then, seen)
		}
	}
	if c.url == "" || diag.Secret >= 0 || diag.Cause == webhooks.CauseMissingSignature || diag.Cause == webhooks.CauseMalformedSignature {
		return ex, nil // nothing to search for, or found already
	}
	var err error
	if ex.SignedBy, err = a.findSigner(ctx, c, d.body, d.header, seen); err != nil {
		return nil, err
	}
	return ex, nil
}

// findSigner tries the secret of every webhook of the account, whatever its
// URL or status, and returns the one that signed the delivery: exactly, or
// else once the body is restored. It returns nil when none did.
func (a *app) findSigner(ctx context.Context, c *invocation, body []byte, header http.Header, seen seenBy) (*signer, error) {
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
			found.Why = explain(d, seen)
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
	if ex.OnceTrimmed != "" {
		fmt.Fprintf(a.stdout, "once trimmed: %s\n", ex.OnceTrimmed)
	}
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
		line += "  why: " + explain(d, seenByListen) + "\n"
	}
	fmt.Fprint(l.a.stderr, line)
	http.Error(w, reason, status)
}
