package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-querystring/query"
)

// Status tells whether a webhook receives deliveries.
type Status string

// The statuses of a webhook.
const (
	StatusActive   Status = "active"
	StatusArchived Status = "archived"
)

// RateLimitPeriod is the period a webhook's rate limit counts over.
type RateLimitPeriod string

// The periods the API accepts.
const (
	PerSecond RateLimitPeriod = "second"
	PerMinute RateLimitPeriod = "minute"
)

// maxURLLength is the API's limit on a webhook URL.
const maxURLLength = 2083

// Ptr returns a pointer to v, for the optional fields of UpdateParams.
func Ptr[T any](v T) *T { return &v }

// Webhook is one webhook: one event delivered to one URL.
//
// fmt (every verb but %p), slog and encoding/json mask Secret when they print a
// Webhook or *Webhook directly, or reach it through exported struct fields,
// slices, maps or interfaces; read the field itself where you need it. fmt
// cannot call methods on values it reaches through unexported struct fields, so
// there it prints Secret: a Webhook held in an unexported field (any verb), a
// *Webhook held in one and printed with a verb meant for other types (%s, %q),
// and any non-pointer value holding a Webhook printed with %p. URL is printed
// as it is, with any user name and password in it.
type Webhook struct {
	ID              string
	Status          Status
	Event           EventType
	URL             string
	ArchivedAt      time.Time // zero while active
	RateLimit       int       // deliveries per RateLimitPeriod
	RateLimitPeriod RateLimitPeriod
	Secret          string // the signing key; only Get fills it
	HashFunction    string // "sha256"; only Get fills it
}

// redacted is w with its secret masked, as a type without methods so fmt prints its fields.
type redactedWebhook Webhook

func (w Webhook) redacted() redactedWebhook {
	if w.Secret != "" {
		w.Secret = "[REDACTED]"
	}
	return redactedWebhook(w)
}

// Format prints w with every fmt verb, its secret masked.
func (w Webhook) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		s := fmt.Sprintf("%#v", w.redacted())
		io.WriteString(f, strings.Replace(s, "webhooks.redactedWebhook", "webhooks.Webhook", 1))
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), w.redacted())
}

// LogValue prints w in slog, its secret masked.
func (w Webhook) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("id", w.ID),
		slog.String("status", string(w.Status)),
		slog.String("event", string(w.Event)),
		slog.String("url", w.URL),
		slog.Int("rate_limit", w.RateLimit),
		slog.String("rate_limit_period", string(w.RateLimitPeriod)),
	}
	if !w.ArchivedAt.IsZero() {
		attrs = append(attrs, slog.Time("archived_at", w.ArchivedAt))
	}
	if w.Secret != "" {
		attrs = append(attrs, slog.String("secret", "[REDACTED]"))
	}
	return slog.GroupValue(attrs...)
}

// wireWebhook is a webhook as the API sends it.
type wireWebhook struct {
	ID              string          `json:"id"`
	Status          Status          `json:"status"`
	Event           EventType       `json:"event"`
	URL             string          `json:"url"`
	ArchivedAt      json.RawMessage `json:"archived_at,omitempty"`
	RateLimit       int             `json:"rate_limit"`
	RateLimitPeriod RateLimitPeriod `json:"rate_limit_period"`
}

func (ww *wireWebhook) webhook() (*Webhook, error) {
	archived, err := eventTime(ww.ArchivedAt, nil)
	if err != nil {
		return nil, fmt.Errorf("webhook %s: archived_at is not Unix seconds", ww.ID)
	}
	return &Webhook{
		ID: ww.ID, Status: ww.Status, Event: ww.Event, URL: ww.URL, ArchivedAt: archived,
		RateLimit: ww.RateLimit, RateLimitPeriod: ww.RateLimitPeriod,
	}, nil
}

// MarshalJSON writes w in the API's shape, without its secret.
func (w Webhook) MarshalJSON() ([]byte, error) {
	ww := wireWebhook{
		ID: w.ID, Status: w.Status, Event: w.Event, URL: w.URL,
		RateLimit: w.RateLimit, RateLimitPeriod: w.RateLimitPeriod, ArchivedAt: json.RawMessage("null"),
	}
	if !w.ArchivedAt.IsZero() {
		ww.ArchivedAt = json.RawMessage(fmt.Sprint(w.ArchivedAt.Unix()))
	}
	return json.Marshal(ww)
}

// UnmarshalJSON reads a webhook in the API's shape, as MarshalJSON writes it,
// with archived_at as Unix seconds or null.
func (w *Webhook) UnmarshalJSON(b []byte) error {
	var ww wireWebhook
	if err := json.Unmarshal(b, &ww); err != nil {
		return err
	}
	got, err := ww.webhook()
	if err != nil {
		return err
	}
	*w = *got
	return nil
}

// CreateParams describes a new webhook. Zero RateLimit and RateLimitPeriod are
// left out, so the server's defaults apply (50 per second).
type CreateParams struct {
	Event           EventType
	URL             string // https; plain http only on loopback, for local receivers
	RateLimit       int
	RateLimitPeriod RateLimitPeriod
}

// UpdateParams changes a webhook; only the fields set are sent, and at least
// one must be. A webhook's event cannot change: create another webhook instead.
type UpdateParams struct {
	URL             *string
	RateLimit       *int
	RateLimitPeriod *RateLimitPeriod
}

// ListOptions selects a page of webhooks; zero fields take the API's defaults.
type ListOptions struct {
	Page         int  `url:"page,omitempty"`     // from 1
	PerPage      int  `url:"per_page,omitempty"` // the API's default is 50
	WithArchived bool `url:"with_archived,omitempty"`
	WithCount    bool `url:"with_count,omitempty"` // fills WebhookList.Count
}

// WebhookList is one page of webhooks.
type WebhookList struct {
	Webhooks []*Webhook
	Page     int
	PerPage  int
	Count    int // all webhooks matching, when ListOptions.WithCount was set
}

type listResponse struct {
	Pagination struct {
		Page    int `json:"page"`
		PerPage int `json:"per_page"`
		Count   int `json:"count"`
	} `json:"pagination"`
	Data []wireWebhook `json:"data"`
}

// webhookResponse is the answer of every call on one webhook; only Get has a signature.
type webhookResponse struct {
	ID        string      `json:"id"`
	Data      wireWebhook `json:"data"`
	Signature *struct {
		Key          string `json:"key"`
		HashFunction string `json:"hash_function"`
	} `json:"signature"`
}

// List returns one page of webhooks: GET /webhooks.
func (c *Client) List(ctx context.Context, opts *ListOptions) (*WebhookList, error) {
	var o ListOptions
	if opts != nil {
		o = *opts
	}
	if o.Page < 0 || o.PerPage < 0 {
		return nil, fmt.Errorf("%w: ListOptions: page and per page must not be negative", ErrInvalidParams)
	}
	q, err := query.Values(o)
	if err != nil {
		return nil, fmt.Errorf("%w: ListOptions: %v", ErrInvalidParams, err)
	}
	var resp listResponse
	if err := c.do(ctx, call{method: http.MethodGet, path: "/webhooks", query: q}, &resp); err != nil {
		return nil, err
	}
	list := &WebhookList{
		Webhooks: make([]*Webhook, 0, len(resp.Data)),
		Page:     resp.Pagination.Page,
		PerPage:  resp.Pagination.PerPage,
		Count:    resp.Pagination.Count,
	}
	for i := range resp.Data {
		w, err := resp.Data[i].webhook()
		if err != nil {
			return nil, fmt.Errorf("webhooks: GET /webhooks: %w", err)
		}
		list.Webhooks = append(list.Webhooks, w)
	}
	return list, nil
}

// defaultPerPage is the API's page size when none is asked for.
const defaultPerPage = 50

// All walks every page of webhooks: GET /webhooks, page after page. It fetches
// the next page only when the loop gets there, and none after the loop breaks;
// an error is yielded once and ends the walk. opts is not modified. With
// WithCount set, the count also tells where the last page is.
func (c *Client) All(ctx context.Context, opts *ListOptions) iter.Seq2[*Webhook, error] {
	return func(yield func(*Webhook, error) bool) {
		var o ListOptions
		if opts != nil {
			o = *opts
		}
		o.Page = max(o.Page, 1)
		for {
			page, err := c.List(ctx, &o)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, w := range page.Webhooks {
				if !yield(w, nil) {
					return
				}
			}
			perPage := o.PerPage
			if perPage == 0 {
				perPage = page.PerPage
			}
			if perPage == 0 {
				perPage = defaultPerPage
			}
			if len(page.Webhooks) < perPage || (o.WithCount && o.Page*perPage >= page.Count) {
				return
			}
			o.Page++
		}
	}
}

// Get returns a webhook with its signing secret: GET /webhooks/{webhook_id}.
// It is the only call that returns the secret.
func (c *Client) Get(ctx context.Context, id string) (*Webhook, error) {
	path, err := webhookPath(id, "")
	if err != nil {
		return nil, err
	}
	return c.webhookCall(ctx, call{method: http.MethodGet, path: path})
}

// Create makes a webhook: POST /webhooks. The event may be given in any
// documented spelling ("email.opened") and is sent canonical ("Email.Opened");
// an unknown name is an error wrapping ErrInvalidParams and ErrUnknownEventType,
// and nothing is sent. Create is never retried once the request may have
// reached the server, since a repeat could create a second webhook: to make
// webhooks idempotently, use Apply.
func (c *Client) Create(ctx context.Context, params *CreateParams) (*Webhook, error) {
	event, err := params.validate()
	if err != nil {
		return nil, err
	}
	body := map[string]any{"event": event, "url": params.URL}
	if params.RateLimit != 0 {
		body["rate_limit"] = params.RateLimit
	}
	if params.RateLimitPeriod != "" {
		body["rate_limit_period"] = params.RateLimitPeriod
	}
	return c.webhookCall(ctx, call{method: http.MethodPost, path: "/webhooks", body: body, policy: retryUnreachable})
}

// Update changes a webhook's URL or rate limit: PATCH /webhooks/{webhook_id}.
func (c *Client) Update(ctx context.Context, id string, params *UpdateParams) (*Webhook, error) {
	path, err := webhookPath(id, "")
	if err != nil {
		return nil, err
	}
	if err := params.validate(); err != nil {
		return nil, err
	}
	body := map[string]any{}
	if params.URL != nil {
		body["url"] = *params.URL
	}
	if params.RateLimit != nil {
		body["rate_limit"] = *params.RateLimit
	}
	if params.RateLimitPeriod != nil {
		body["rate_limit_period"] = *params.RateLimitPeriod
	}
	return c.webhookCall(ctx, call{method: http.MethodPatch, path: path, body: body})
}

// Archive stops a webhook's deliveries: POST /webhooks/{webhook_id}/archive.
// The API cannot delete webhooks; archiving is how one is retired.
func (c *Client) Archive(ctx context.Context, id string) (*Webhook, error) {
	path, err := webhookPath(id, "/archive")
	if err != nil {
		return nil, err
	}
	return c.webhookCall(ctx, call{method: http.MethodPost, path: path})
}

// Unarchive resumes an archived webhook's deliveries: POST /webhooks/{webhook_id}/unarchive.
func (c *Client) Unarchive(ctx context.Context, id string) (*Webhook, error) {
	path, err := webhookPath(id, "/unarchive")
	if err != nil {
		return nil, err
	}
	return c.webhookCall(ctx, call{method: http.MethodPost, path: path})
}

func (c *Client) webhookCall(ctx context.Context, op call) (*Webhook, error) {
	var resp webhookResponse
	if err := c.do(ctx, op, &resp); err != nil {
		return nil, err
	}
	w, err := resp.Data.webhook()
	if err != nil {
		return nil, fmt.Errorf("webhooks: %s %s: %w", op.method, op.path, err)
	}
	if w.ID == "" {
		w.ID = resp.ID
	}
	if resp.Signature != nil {
		w.Secret, w.HashFunction = resp.Signature.Key, resp.Signature.HashFunction
	}
	return w, nil
}

// webhookPath escapes id into one path segment, so that an id such as "../token"
// can never address another endpoint.
func webhookPath(id, suffix string) (string, error) {
	if strings.TrimSpace(id) == "" {
		return "", fmt.Errorf("%w: empty webhook id", ErrInvalidParams)
	}
	if id == "." || id == ".." {
		return "", fmt.Errorf("%w: webhook id %q", ErrInvalidParams, id)
	}
	return "/webhooks/" + url.PathEscape(id) + suffix, nil
}

// validate checks p and returns the event to send, resolved from any
// documented spelling, so that a name the server would refuse is never sent.
func (p *CreateParams) validate() (EventType, error) {
	if p == nil {
		return "", fmt.Errorf("%w: nil CreateParams", ErrInvalidParams)
	}
	if strings.TrimSpace(string(p.Event)) == "" {
		return "", fmt.Errorf("%w: CreateParams.Event is empty", ErrInvalidParams)
	}
	event, err := ParseEventType(string(p.Event))
	if err != nil {
		return "", invalidParams(err)
	}
	return event, validateSettings(&p.URL, &p.RateLimit, &p.RateLimitPeriod, "CreateParams")
}

func (p *UpdateParams) validate() error {
	if p == nil {
		return fmt.Errorf("%w: nil UpdateParams", ErrInvalidParams)
	}
	if p.URL == nil && p.RateLimit == nil && p.RateLimitPeriod == nil {
		return fmt.Errorf("%w: UpdateParams sets nothing", ErrInvalidParams)
	}
	return validateSettings(p.URL, p.RateLimit, p.RateLimitPeriod, "UpdateParams")
}

// validateSettings checks the fields Create and Update share; nil ones are absent.
func validateSettings(rawURL *string, rateLimit *int, period *RateLimitPeriod, what string) error {
	if rawURL != nil {
		if err := ValidateURL(*rawURL); err != nil {
			return fmt.Errorf("%w: %s.URL: %v", ErrInvalidParams, what, err)
		}
	}
	if rateLimit != nil && *rateLimit < 0 {
		return fmt.Errorf("%w: %s.RateLimit %d is negative", ErrInvalidParams, what, *rateLimit)
	}
	if period != nil {
		switch *period {
		case PerSecond, PerMinute:
		case "":
			if what == "UpdateParams" {
				return fmt.Errorf("%w: %s.RateLimitPeriod is empty; want second or minute", ErrInvalidParams, what)
			}
		default:
			return fmt.Errorf("%w: %s.RateLimitPeriod %q; want second or minute", ErrInvalidParams, what, *period)
		}
	}
	return nil
}

// ValidateURL reports why Cakemail would refuse rawURL as a webhook URL: it must
// be absolute https, at most 2083 characters, of the characters a URI may hold
// (RFC 3986: percent-encode any other, and write a host in its ASCII form);
// plain http is allowed only for loopback hosts, for local receivers and test
// servers. Its errors never show a password or user name held in the URL.
func ValidateURL(rawURL string) error {
	if rawURL == "" {
		return fmt.Errorf("empty URL")
	}
	if len(rawURL) > maxURLLength {
		return fmt.Errorf("URL is %d characters, over the limit of %d", len(rawURL), maxURLLength)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("not a valid URL%s", urlParseProblem(err))
	}
	shown := redactedURL(u)
	if !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", shown)
	}
	if problem := uriProblem(rawURL); problem != "" {
		return fmt.Errorf("URL %s", problem)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q is plain http: Cakemail delivers only to https (http is allowed for loopback hosts)", shown)
	}
	return fmt.Errorf("%q: scheme %q, want https", shown, u.Scheme)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
