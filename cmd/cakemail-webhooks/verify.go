package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/cakemail-go/webhooks"
)

// maxCapturedBody bounds what verify reads, far above any real delivery.
const maxCapturedBody = 64 << 20

// verifyResult is what the verify command reports.
type verifyResult struct {
	Valid       bool         `json:"valid"`
	Error       string       `json:"error,omitempty"`
	Explanation *explanation `json:"explanation,omitempty"` // with --explain
}

// delivery is what verify checks: a body and the headers it came with.
type delivery struct {
	body   []byte
	header http.Header
	// length is a captured request's Content-Length, -1 when it has none:
	// more than the body's size when the capture is cut short.
	length int64
}

// cut says whether a captured body is shorter than its Content-Length.
func (d *delivery) cut() bool { return d.length > int64(len(d.body)) }

func runVerify(ctx context.Context, a *app, c *invocation) error {
	if len(c.args) > 1 {
		return usagef("want at most one FILE argument")
	}
	if c.url != "" && !c.explain {
		return usagef("%s is for --explain", c.spelled("url"))
	}
	secrets, err := a.secretList(c)
	if err != nil {
		return err
	}
	// A secret with whitespace around it makes every delivery fail, as it
	// does a receiver built on the SDK: verify says so rather than trim it.
	verifier, refused := webhooks.NewVerifier(secrets, webhooks.WithMaxBodyBytes(maxCapturedBody))
	if refused != nil && !errors.Is(refused, webhooks.ErrSecretWhitespace) {
		return usagef("%s: %s", c.secretName(), message(refused))
	}
	raw, err := a.verifyInput(c)
	if err != nil {
		return err
	}
	d, err := readDelivery(raw, c.signature)
	if err != nil {
		return err
	}
	verr := refused
	if verr == nil {
		verr = verifier.Verify(d.body, webhooks.SignatureFromHeader(d.header))
	}
	result := verifyResult{Valid: verr == nil}
	if verr != nil {
		result.Error = verr.Error()
		if c.explain {
			if result.Explanation, err = a.explainVerify(ctx, c, d, secrets); err != nil {
				return err
			}
		} else if d.cut() {
			a.warnf("the captured body is %d bytes but its Content-Length says %d: the capture is cut short (--explain says more)", len(d.body), d.length)
		}
	}
	if c.format == "json" {
		if err := writeJSON(a.stdout, result); err != nil {
			return err
		}
	} else if verr == nil {
		fmt.Fprintln(a.stdout, "valid: the body was signed with this secret")
	} else {
		printExplanation(a, c, result.Explanation)
	}
	switch {
	case verr == nil:
		return nil
	case errors.Is(verr, webhooks.ErrMissingSignature) && c.signature == "" && !c.explain:
		return fmt.Errorf("invalid: %w: the captured request has no %s or %s header; --explain names the headers that look like one, or give --signature",
			verr, webhooks.SignatureHeader, webhooks.LegacySignatureHeader)
	}
	return fmt.Errorf("invalid: %w", verr)
}

// verifyInput reads FILE, or stdin, whole.
func (a *app) verifyInput(c *invocation) ([]byte, error) {
	in := a.stdin
	if len(c.args) == 1 && c.args[0] != "-" {
		f, err := os.Open(c.args[0])
		if err != nil {
			return nil, usagef("%v", err)
		}
		defer f.Close()
		in = f
	}
	raw, err := io.ReadAll(io.LimitReader(in, maxCapturedBody+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxCapturedBody {
		return nil, usagef("the body is over %d MiB; no Cakemail delivery is that large", maxCapturedBody>>20)
	}
	return raw, nil
}

// readDelivery reads verify's input: the body itself when signature is
// given, or else a whole delivery as captured off the wire (request line,
// headers, body). A capture with no signature header, or whose body is
// shorter than its Content-Length, is read as it is, for verify to refuse and
// --explain to diagnose; only input that is no HTTP request is an error.
func readDelivery(raw []byte, signature string) (*delivery, error) {
	if signature != "" {
		return &delivery{body: raw, header: http.Header{webhooks.SignatureHeader: {signature}}, length: -1}, nil
	}
	rd := bufio.NewReader(bytes.NewReader(raw))
	req, err := http.ReadRequest(rd)
	if err != nil {
		// The error quotes the line it stopped at, which may be the body's.
		return nil, usagef("without --signature the input must be a captured HTTP request: a request line (POST /path HTTP/1.1), headers, a blank line, then the body")
	}
	body, err := io.ReadAll(req.Body)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) { // a cut body ends early: keep what there is
		return nil, usagef("reading the captured request's body: %v", err)
	}
	d := &delivery{body: body, header: req.Header, length: -1}
	switch {
	case len(req.TransferEncoding) > 0: // chunked: the body has no length to compare
	case req.Header.Get("Content-Length") != "":
		d.length = req.ContentLength
	default:
		// No length given: the body is whatever follows the headers.
		d.body, _ = io.ReadAll(rd)
	}
	return d, nil
}
