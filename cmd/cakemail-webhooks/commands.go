package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cakemail-go/webhooks"
)

func init() {
	commands = []*command{
		{name: "list", summary: "List webhooks, a page at a time.", run: runList, flags: func(c *invocation) {
			c.intFlag(&c.limit, "l", "limit", 0, "webhooks per page (the API's default is 50)")
			c.intFlag(&c.page, "p", "page", 0, "page number, from 1")
			c.boolFlag(&c.archived, "archived", "include archived webhooks")
		}},
		{name: "get", args: "<id>", summary: "Show a webhook, including its signing secret.", run: runGet},
		{name: "create", summary: "Create a webhook for each of the given events.", run: runCreate, flags: func(c *invocation) {
			c.stringFlag(&c.url, "u", "url", "", "endpoint URL (https)")
			c.stringFlag(&c.events, "e", "events", "", "comma-separated events, such as email.opened,Email.Clicked")
			c.intFlag(&c.rateLimit, "", "rate-limit", 0, "deliveries per period (the API's default is 50)")
			c.stringFlag(&c.period, "", "period", "", "rate limit period: second or minute")
			refusedFlags(c)
		}},
		{name: "update", args: "<id>", summary: "Change a webhook's URL or rate limit.", run: runUpdate, flags: func(c *invocation) {
			c.stringFlag(&c.url, "u", "url", "", "new endpoint URL (https)")
			c.intFlag(&c.rateLimit, "", "rate-limit", 0, "deliveries per period")
			c.stringFlag(&c.period, "", "period", "", "rate limit period: second or minute")
			c.stringFlag(&c.events, "e", "events", "", "not supported: a webhook's event cannot change")
			refusedFlags(c)
		}},
		{name: "archive", args: "<id>", summary: "Stop a webhook's deliveries (the API has no delete).", run: runArchive},
		{name: "unarchive", args: "<id>", summary: "Resume an archived webhook's deliveries.", run: runUnarchive},
		{name: "test", args: "<id>", summary: "Send a signed sample delivery to a webhook's URL.", run: runTest, flags: func(c *invocation) {
			c.stringFlag(&c.event, "e", "event", "", "event type of the sample (default: the webhook's)")
		}},
		{name: "verify", args: "[FILE|-]", summary: "Check a captured delivery: a body with --signature, or a whole HTTP request.", run: runVerify, flags: func(c *invocation) {
			c.stringFlag(&c.secret, "s", "secret", "", "the webhook's secret (default $CAKEMAIL_WEBHOOK_SECRET)")
			c.stringFlag(&c.signature, "", "signature", "", "the signature header's value (default: read from the captured request in FILE)")
		}},
		{name: "events", summary: "List the known event types.", run: runEvents},
	}
}

// refusedFlags registers the flags Cakemail's CLI docs show but the API has no field for.
func refusedFlags(c *invocation) {
	c.stringFlag(&c.name, "n", "name", "", "not supported: the API has no webhook name")
	c.stringFlag(&c.secret, "s", "secret", "", "not supported: Cakemail generates the secret; get shows it")
}

func checkRefused(c *invocation) error {
	switch {
	case c.set["name"]:
		return usagef("--name is not supported: Cakemail webhooks have no name; tell them apart by event and URL")
	case c.set["secret"]:
		return usagef("--secret is not supported: Cakemail generates each webhook's secret; read it with: cakemail-webhooks get <id>")
	}
	return nil
}

func runList(ctx context.Context, a *app, c *invocation) error {
	if err := c.noArgs(); err != nil {
		return err
	}
	if c.limit < 0 || c.page < 0 {
		return usagef("-l and -p must be positive")
	}
	client, err := a.client()
	if err != nil {
		return err
	}
	list, err := client.List(ctx, &webhooks.ListOptions{Page: c.page, PerPage: c.limit, WithArchived: c.archived, WithCount: true})
	if err != nil {
		return err
	}
	count := list.Count
	if count < len(list.Webhooks) {
		count = len(list.Webhooks)
	}
	if c.format == "json" {
		return writeJSON(a.stdout, listView{Data: viewsOf(list.Webhooks), Count: count})
	}
	return writeTable(a.stdout, list.Webhooks, fmt.Sprintf("%d webhook(s) in all; page %d", count, max(list.Page, 1)))
}

func runGet(ctx context.Context, a *app, c *invocation) error {
	id, err := c.oneArg("webhook id")
	if err != nil {
		return err
	}
	client, err := a.client()
	if err != nil {
		return err
	}
	hook, err := client.Get(ctx, id)
	if err != nil {
		return err
	}
	if c.format == "json" {
		return writeJSON(a.stdout, viewOf(hook))
	}
	return writeDetail(a.stdout, hook)
}

func runCreate(ctx context.Context, a *app, c *invocation) error {
	if err := c.noArgs(); err != nil {
		return err
	}
	if err := checkRefused(c); err != nil {
		return err
	}
	if c.url == "" || c.events == "" {
		return usagef("-u URL and -e EVENTS are required")
	}
	events, err := parseEvents(c.events)
	if err != nil {
		return err
	}
	params := webhooks.CreateParams{URL: c.url, RateLimit: c.rateLimit, RateLimitPeriod: webhooks.RateLimitPeriod(c.period)}
	if len(events) > 1 {
		fmt.Fprintf(a.stderr, "A Cakemail webhook listens to one event: creating %d webhooks for %s.\n", len(events), c.url)
	}
	client, err := a.client()
	if err != nil {
		return err
	}
	var created []*webhooks.Webhook
	var createErr error
	for _, event := range events {
		p := params
		p.Event = event
		hook, err := client.Create(ctx, &p)
		if err != nil {
			createErr = fmt.Errorf("creating the %s webhook: %w", event, err)
			break
		}
		created = append(created, hook)
	}
	if createErr != nil && len(created) > 0 {
		ids := make([]string, len(created))
		for i, h := range created {
			ids[i] = h.ID + " (" + string(h.Event) + ")"
		}
		createErr = fmt.Errorf("%w; already created: %s", createErr, strings.Join(ids, ", "))
	}
	if len(created) == 0 {
		return createErr
	}
	var werr error
	switch {
	case c.format == "json" && len(events) == 1:
		werr = writeJSON(a.stdout, viewOf(created[0]))
	case c.format == "json":
		werr = writeJSON(a.stdout, listView{Data: viewsOf(created), Count: len(created)})
	default:
		werr = writeTable(a.stdout, created, fmt.Sprintf("%d webhook(s) created", len(created)))
	}
	return errors.Join(createErr, werr)
}

// parseEvents reads a comma-separated list of event names, dropping repeats.
func parseEvents(list string) ([]webhooks.EventType, error) {
	var out []webhooks.EventType
	seen := map[webhooks.EventType]bool{}
	for _, name := range strings.Split(list, ",") {
		if strings.TrimSpace(name) == "" {
			continue
		}
		t, err := webhooks.ParseEventType(name)
		if err != nil {
			return nil, err
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, usagef("-e names no event")
	}
	return out, nil
}

func runUpdate(ctx context.Context, a *app, c *invocation) error {
	id, err := c.oneArg("webhook id")
	if err != nil {
		return err
	}
	if err := checkRefused(c); err != nil {
		return err
	}
	if c.set["events"] {
		return usagef("--events is not supported: a webhook's event cannot change; create a webhook for the new event, then archive this one")
	}
	var params webhooks.UpdateParams
	if c.set["url"] {
		params.URL = webhooks.Ptr(c.url)
	}
	if c.set["rate-limit"] {
		params.RateLimit = webhooks.Ptr(c.rateLimit)
	}
	if c.set["period"] {
		params.RateLimitPeriod = webhooks.Ptr(webhooks.RateLimitPeriod(c.period))
	}
	if !c.set["url"] && !c.set["rate-limit"] && !c.set["period"] {
		return usagef("nothing to update: give -u, --rate-limit or --period")
	}
	client, err := a.client()
	if err != nil {
		return err
	}
	hook, err := client.Update(ctx, id, &params)
	if err != nil {
		return err
	}
	return writeOne(a.stdout, c.format, hook, "updated")
}

func runArchive(ctx context.Context, a *app, c *invocation) error {
	return archiveOrUnarchive(ctx, a, c, (*webhooks.Client).Archive, "archived")
}

func runUnarchive(ctx context.Context, a *app, c *invocation) error {
	return archiveOrUnarchive(ctx, a, c, (*webhooks.Client).Unarchive, "unarchived")
}

func archiveOrUnarchive(ctx context.Context, a *app, c *invocation,
	call func(*webhooks.Client, context.Context, string) (*webhooks.Webhook, error), done string) error {
	id, err := c.oneArg("webhook id")
	if err != nil {
		return err
	}
	client, err := a.client()
	if err != nil {
		return err
	}
	hook, err := call(client, ctx, id)
	if err != nil {
		return err
	}
	return writeOne(a.stdout, c.format, hook, done)
}

// testResult is what the test command reports.
type testResult struct {
	WebhookID  string             `json:"webhook_id"`
	URL        string             `json:"url"`
	Event      webhooks.EventType `json:"event"`
	StatusCode int                `json:"status_code"`
	LatencyMS  float64            `json:"latency_ms"`
}

// runTest sends what Cakemail would: the API's payload shape, signed with the
// webhook's secret in X-Signature. The API has no test endpoint, so this is the
// only way to exercise a receiver before a real event happens.
func runTest(ctx context.Context, a *app, c *invocation) error {
	id, err := c.oneArg("webhook id")
	if err != nil {
		return err
	}
	event := webhooks.EventType("")
	if c.event != "" {
		if event, err = webhooks.ParseEventType(c.event); err != nil {
			return err
		}
	}
	client, err := a.client()
	if err != nil {
		return err
	}
	hook, err := client.Get(ctx, id)
	if err != nil {
		return err
	}
	if event == "" {
		event = hook.Event
	}
	if hook.Secret == "" {
		return fmt.Errorf("webhook %s has no signing secret to sign with", hook.ID)
	}
	payload, err := json.Marshal(map[string]any{
		"event":      event,
		"created_on": time.Now().Unix(),
		"data":       map[string]any{"test": true, "webhook_id": hook.ID},
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("webhook %s has an unusable URL: %w", hook.ID, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhooks.SignatureHeader, webhooks.Sign(payload, hook.Secret))
	req.Header.Set("User-Agent", "cakemail-webhooks-test/"+webhooks.Version)
	start := time.Now()
	resp, err := a.httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("delivering to %s: %w", hook.URL, err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	result := testResult{WebhookID: hook.ID, URL: hook.URL, Event: event, StatusCode: resp.StatusCode,
		LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
	if c.format == "json" {
		err = writeJSON(a.stdout, result)
	} else {
		_, err = fmt.Fprintf(a.stdout, "%s delivery to %s: %s in %.1f ms\n", event, hook.URL, resp.Status, result.LatencyMS)
	}
	if err == nil && (resp.StatusCode < 200 || resp.StatusCode > 299) {
		err = fmt.Errorf("the receiver answered %s", resp.Status)
	}
	return err
}

// maxCapturedBody bounds what verify reads, far above any real delivery.
const maxCapturedBody = 64 << 20

// verifyResult is what the verify command reports.
type verifyResult struct {
	Valid bool   `json:"valid"`
	Error string `json:"error,omitempty"`
}

func runVerify(_ context.Context, a *app, c *invocation) error {
	if len(c.args) > 1 {
		return usagef("want at most one FILE argument")
	}
	secret := c.secret
	if secret == "" {
		secret = os.Getenv("CAKEMAIL_WEBHOOK_SECRET")
	}
	if secret == "" {
		return usagef("-s SECRET (or CAKEMAIL_WEBHOOK_SECRET) is required")
	}
	in := a.stdin
	if len(c.args) == 1 && c.args[0] != "-" {
		f, err := os.Open(c.args[0])
		if err != nil {
			return usagef("%v", err)
		}
		defer f.Close()
		in = f
	}
	body, err := io.ReadAll(io.LimitReader(in, maxCapturedBody+1))
	if err != nil {
		return err
	}
	if len(body) > maxCapturedBody {
		return usagef("the body is over %d MiB; no Cakemail delivery is that large", maxCapturedBody>>20)
	}
	signature := c.signature
	if signature == "" {
		if body, signature, err = splitCapturedRequest(body); err != nil {
			return err
		}
	}
	verr := webhooks.Verify(body, signature, secret)
	result := verifyResult{Valid: verr == nil}
	if verr != nil {
		result.Error = verr.Error()
	}
	if c.format == "json" {
		if err := writeJSON(a.stdout, result); err != nil {
			return err
		}
	} else if verr == nil {
		fmt.Fprintln(a.stdout, "valid: the body was signed with this secret")
	}
	if verr != nil {
		return fmt.Errorf("invalid: %w", verr)
	}
	return nil
}

// splitCapturedRequest reads a whole delivery as captured off the wire (request
// line, headers, body), for verify without --signature.
func splitCapturedRequest(raw []byte) (body []byte, signature string, err error) {
	rd := bufio.NewReader(bytes.NewReader(raw))
	req, err := http.ReadRequest(rd)
	if err != nil {
		return nil, "", usagef("without --signature the input must be a captured HTTP request (request line, headers, body): %v", err)
	}
	signature = webhooks.SignatureFromHeader(req.Header)
	if signature == "" {
		return nil, "", usagef("the captured request has no %s or %s header; give --signature", webhooks.SignatureHeader, webhooks.LegacySignatureHeader)
	}
	if body, err = io.ReadAll(req.Body); err != nil {
		return nil, "", usagef("reading the captured request's body: %v", err)
	}
	if req.ContentLength <= 0 && len(req.TransferEncoding) == 0 {
		// No length given: the body is whatever follows the headers.
		body, _ = io.ReadAll(rd)
	}
	return body, signature, nil
}

func runEvents(_ context.Context, a *app, c *invocation) error {
	if err := c.noArgs(); err != nil {
		return err
	}
	if c.format == "json" {
		return writeJSON(a.stdout, webhooks.EventTypes())
	}
	var b strings.Builder
	for _, t := range webhooks.EventTypes() {
		b.WriteString(string(t) + "\n")
	}
	_, err := io.WriteString(a.stdout, b.String())
	return err
}
