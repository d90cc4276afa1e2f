package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/cakemail-go/webhooks"
)

// eventLine is how listen prints a verified delivery: one JSON line.
type eventLine struct {
	Event   webhooks.EventType `json:"event"`
	Account *int               `json:"account"` // null in the guide's shape, which has none
	Created *time.Time         `json:"created"`
	Data    json.RawMessage    `json:"data"`
}

// listener is listen's handler: it verifies, prints and forwards deliveries.
type listener struct {
	a        *app
	verifier *webhooks.Verifier
	secrets  int
	forward  string // empty: answer 204 itself
	client   *http.Client

	mu  sync.Mutex // keeps concurrent deliveries' lines whole
	out io.Writer
}

func runListen(ctx context.Context, a *app, c *invocation) error {
	if err := c.noArgs(); err != nil {
		return err
	}
	verifier, secrets, err := a.verifier(c)
	if err != nil {
		return err
	}
	if c.forwardTo != "" {
		if u, err := url.Parse(c.forwardTo); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("%s %s is not an http or https URL", c.spelled("forward-to"), shownURL(c.forwardTo))
		}
	}
	l := &listener{a: a, verifier: verifier, forward: c.forwardTo, client: a.deliveryClient(c), out: a.stdout, secrets: secrets}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", c.addr, err)
	}
	srv := &http.Server{
		Handler:           l,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(a.stderr, "listen: ", 0),
	}
	where := "Printing verified deliveries on stdout"
	if l.forward != "" {
		where = "Forwarding verified deliveries to " + shownURL(l.forward)
	}
	fmt.Fprintf(a.stderr, "Listening on http://%s (any path), verifying with %d secret(s). %s. Ctrl-C stops.\n", ln.Addr(), l.secrets, where)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if a.listening != nil {
		a.listening <- ln.Addr().String()
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(stopCtx)
	<-served
	fmt.Fprintln(a.stderr, "Stopped.")
	return err
}

func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		l.refuse(w, r, http.StatusMethodNotAllowed, "method "+r.Method+": Cakemail delivers with POST")
		return
	}
	body, err := l.verifier.VerifyRequest(r)
	if err != nil {
		l.refuseUnverified(w, r, err)
		return
	}
	event, err := webhooks.ParseEvent(body)
	if err != nil {
		l.refuse(w, r, http.StatusBadRequest, "signed, but not an event: "+message(err))
		return
	}
	line := eventLine{Event: event.Type, Data: event.Data}
	if event.AccountID != 0 {
		line.Account = &event.AccountID
	}
	if !event.CreatedAt.IsZero() {
		at := event.CreatedAt.UTC()
		line.Created = &at
	}
	if line.Data == nil {
		line.Data = json.RawMessage("null")
	}
	encoded, err := json.Marshal(line)
	if err != nil {
		l.refuse(w, r, http.StatusBadRequest, "signed, but its data is not JSON")
		return
	}
	l.mu.Lock()
	fmt.Fprintf(l.out, "%s\n", encoded)
	l.mu.Unlock()
	if l.forward == "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	l.forwardTo(w, r, event.Type, body)
}

// forwardTo passes a verified delivery on, body and headers unchanged, and
// answers the sender with what the user's handler answered.
func (l *listener) forwardTo(w http.ResponseWriter, r *http.Request, event webhooks.EventType, body []byte) {
	ctx, cancel := context.WithTimeout(r.Context(), deliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.forward, bytes.NewReader(body))
	if err != nil {
		l.refuse(w, r, http.StatusBadGateway, "cannot forward: "+err.Error())
		return
	}
	req.Header = r.Header.Clone()
	for _, h := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		req.Header.Del(h) // hop-by-hop: they describe the sender's connection, not the delivery
	}
	start := time.Now()
	resp, err := l.client.Do(req)
	if err != nil {
		fmt.Fprintf(l.a.stderr, "forwarding %s to %s failed: %v\n", event, shownURL(l.forward), err)
		http.Error(w, "forwarding failed", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	took := float64(time.Since(start).Microseconds()) / 1000
	if isRedirect(resp.StatusCode) {
		// The client follows no redirect: the signed body goes nowhere else.
		// The sender gets the 3xx, without its Location, and why.
		note := redirectNote(redirectHost(resp))
		fmt.Fprintf(l.a.stderr, "forwarded %s to %s: %s (%s) in %.1f ms\n", event, shownURL(l.forward), resp.Status, note, took)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(resp.StatusCode)
		fmt.Fprintf(w, "the handler answered %s (%s): a signed delivery is never sent on to another address\n", resp.Status, note)
		return
	}
	fmt.Fprintf(l.a.stderr, "forwarded %s to %s: %s in %.1f ms\n", event, shownURL(l.forward), resp.Status, took)
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, io.LimitReader(resp.Body, 1<<20))
}

// refuse answers a delivery that did not pass and says why on stderr. The
// reason comes from the SDK's errors, which never hold a MAC or a secret.
func (l *listener) refuse(w http.ResponseWriter, r *http.Request, status int, reason string) {
	fmt.Fprintf(l.a.stderr, "refused %s %s: %s (answered %d)\n", r.Method, r.URL.EscapedPath(), reason, status)
	http.Error(w, reason, status)
}

func refusalStatus(err error) int {
	if errors.Is(err, webhooks.ErrBodyTooLarge) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusUnauthorized
}

// reason says why a delivery failed verification in terms of what to check.
func (l *listener) reason(err error) string {
	switch {
	case errors.Is(err, webhooks.ErrMissingSignature):
		return "no " + webhooks.SignatureHeader + " or " + webhooks.LegacySignatureHeader + " header"
	case errors.Is(err, webhooks.ErrSignatureMismatch):
		if l.secrets == 1 {
			return "the signature does not match the secret: signed with another secret, or the body changed on the way"
		}
		return fmt.Sprintf("the signature matches none of the %d secrets: signed with another secret, or the body changed on the way", l.secrets)
	case errors.Is(err, webhooks.ErrBodyTooLarge):
		return fmt.Sprintf("the body is over %d bytes", webhooks.DefaultMaxBodyBytes)
	}
	return message(err)
}
