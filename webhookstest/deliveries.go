package webhookstest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"time"

	"github.com/cakemail-go/webhooks"
)

// Delivery reports how one webhook's delivery went.
type Delivery struct {
	WebhookID  string             `json:"webhook_id"`
	URL        string             `json:"url"`
	Event      webhooks.EventType `json:"event"`
	StatusCode int                `json:"status_code"` // of the last attempt; 0 if there was no answer
	Attempts   int                `json:"attempts"`
	Err        string             `json:"error,omitempty"` // why the last attempt failed
	Payload    json.RawMessage    `json:"payload"`         // the body as sent and signed
	Signature  string             `json:"signature"`       // the X-Signature header sent
}

// OK reports whether the receiver accepted the delivery with a 2xx.
func (d Delivery) OK() bool { return d.StatusCode >= 200 && d.StatusCode <= 299 }

var errClosed = errors.New("webhookstest: server closed")

// deliveryUserAgent marks deliveries, which the API routes of every fake refuse:
// a webhook whose URL is a fake's own /_fake/trigger must not trigger again.
var deliveryUserAgent = "webhookstest/" + webhooks.Version

// redactedURL shows raw without the user name and password it may hold.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	return u.String()
}

// Trigger sends event to every active webhook of that event, in every account,
// the way Cakemail does: the API's payload (event, account_id, created_on, data),
// signed with each webhook's key in base64 in X-Signature. A delivery that fails
// (no answer or not 2xx) is retried with backoff. Archived webhooks get nothing.
func (s *Server) Trigger(ctx context.Context, event webhooks.EventType, data any) ([]Delivery, error) {
	return s.trigger(ctx, 0, event, data)
}

// TriggerAccount is Trigger for the webhooks of one account only.
func (s *Server) TriggerAccount(ctx context.Context, accountID int, event webhooks.EventType, data any) ([]Delivery, error) {
	return s.trigger(ctx, accountID, event, data)
}

// Deliveries returns the deliveries made so far, oldest first: the last
// WithLogLimit of them.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

// payload is the body of a delivery in the API's shape.
type payload struct {
	Event     webhooks.EventType `json:"event"`
	AccountID int                `json:"account_id"`
	IP        string             `json:"ip"`
	User      payloadUser        `json:"user"`
	CreatedOn int64              `json:"created_on"`
	Data      any                `json:"data"`
}

type payloadUser struct {
	ID        *int    `json:"id"`
	Email     *string `json:"email"`
	AccountID *int    `json:"account_id"`
}

func (s *Server) trigger(ctx context.Context, account int, event webhooks.EventType, data any) ([]Delivery, error) {
	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		return nil, errClosed
	default:
	}
	var targets []hook
	for _, h := range s.order {
		if h.event == event && h.status == webhooks.StatusActive && (account == 0 || h.accountID == account) {
			targets = append(targets, *h)
		}
	}
	s.deliveryWG.Add(1)
	s.mu.Unlock()
	defer s.deliveryWG.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()

	now := time.Now().Unix()
	results := make([]Delivery, len(targets))
	var wg sync.WaitGroup
	for i, h := range targets {
		body, err := json.Marshal(payload{Event: event, AccountID: h.accountID, IP: "127.0.0.1", CreatedOn: now, Data: data})
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.deliver(ctx, h, body)
		}()
	}
	wg.Wait()
	s.mu.Lock()
	s.deliveries = appendBounded(s.deliveries, s.cfg.logLimit, results...)
	s.mu.Unlock()
	if log := s.cfg.logger; log != nil {
		for _, d := range results {
			attrs := []any{"event", d.Event, "webhook_id", d.WebhookID, "url", redactedURL(d.URL), "status", d.StatusCode, "attempts", d.Attempts}
			if d.Err != "" {
				attrs = append(attrs, "error", d.Err)
			}
			log.Info("delivery", attrs...)
		}
	}
	return results, nil
}

// deliver posts body to h, retrying with doubling waits.
func (s *Server) deliver(ctx context.Context, h hook, body []byte) Delivery {
	d := Delivery{WebhookID: h.id, URL: h.url, Event: h.event, Payload: body, Signature: webhooks.Sign(body, h.key)}
	wait := s.cfg.deliveryBackoff
	for d.Attempts < s.cfg.deliveryAttempts {
		if d.Attempts > 0 {
			select {
			case <-time.After(wait):
				wait *= 2
			case <-ctx.Done():
				d.Err = ctx.Err().Error()
				return d
			}
		}
		d.Attempts++
		d.StatusCode, d.Err = 0, ""
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
		if err != nil {
			d.Err = err.Error()
			return d
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", deliveryUserAgent)
		req.Header.Set(webhooks.SignatureHeader, d.Signature)
		resp, err := s.cfg.deliveryClient.Do(req)
		if err != nil {
			d.Err = err.Error()
			continue
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		d.StatusCode = resp.StatusCode
		if d.OK() {
			return d
		}
		d.Err = "receiver answered " + resp.Status
	}
	return d
}

// NewSignedRequest returns a delivery request for target, signed with secret the
// way Cakemail signs, to call a handler directly with an httptest.ResponseRecorder.
func NewSignedRequest(target string, payload []byte, secret string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhooks.SignatureHeader, webhooks.Sign(payload, secret))
	return req
}
