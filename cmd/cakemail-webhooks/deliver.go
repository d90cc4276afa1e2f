package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cakemail-go/webhooks"
)

// deliveryResult is what test and trigger report.
type deliveryResult struct {
	WebhookID  string             `json:"webhook_id,omitempty"`
	URL        string             `json:"url"`
	Event      webhooks.EventType `json:"event"`
	StatusCode int                `json:"status_code"`
	LatencyMS  float64            `json:"latency_ms"`
	// RedirectHost is where a 3xx answer pointed; the redirect is never followed.
	RedirectHost string `json:"redirect_host,omitempty"`
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
	client, err := a.client(c)
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
	data := sampleData(event)
	data["test"] = true
	data["webhook_id"] = hook.ID
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	payload, err := apiPayload(event, raw)
	if err != nil {
		return err
	}
	result := deliveryResult{WebhookID: hook.ID, URL: hook.URL, Event: event}
	return a.deliver(ctx, c, &result, payload, webhooks.SignatureHeader, webhooks.Sign(payload, hook.Secret))
}

func runTrigger(ctx context.Context, a *app, c *invocation) error {
	name, err := c.oneArg("EVENT")
	if err != nil {
		return err
	}
	event, err := webhooks.ParseEventType(name)
	if err != nil {
		return fmt.Errorf("%w; nothing was sent", err)
	}
	if c.url == "" {
		return usagef("--url URL is required: where to send the delivery")
	}
	if u, err := url.Parse(c.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("%s %s is not an http or https URL", c.spelled("url"), shownURL(c.url))
	}
	secrets, err := a.signingSecrets(c)
	if err != nil {
		return err
	}
	shape := strings.ToLower(c.shape)
	if shape != "api" && shape != "guide" {
		return usagef("%s must be api or guide, not %q", c.spelled("shape"), c.shape)
	}
	var data json.RawMessage
	if c.given("data") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(c.data), &obj); err != nil || obj == nil {
			return usagef(`%s must be a JSON object, such as '{"email": "jane@example.com"}'`, c.spelled("data"))
		}
		data = json.RawMessage(c.data)
	} else if data, err = json.Marshal(sampleData(event)); err != nil {
		return err
	}
	var payload []byte
	if shape == "guide" {
		// The guides spell events as their readers type them ("email.opened").
		payload, err = json.Marshal(struct {
			Event     string          `json:"event"`
			Timestamp string          `json:"timestamp"`
			Data      json.RawMessage `json:"data"`
		}{strings.TrimSpace(name), time.Now().UTC().Format(time.RFC3339), data})
	} else {
		payload, err = apiPayload(event, data)
	}
	if err != nil {
		return err
	}
	header, sign := webhooks.SignatureHeader, webhooks.Sign
	if c.hex {
		header, sign = webhooks.LegacySignatureHeader, webhooks.SignHex
	}
	signatures := make([]string, len(secrets))
	for i, secret := range secrets {
		signatures[i] = sign(payload, secret)
	}
	return a.deliver(ctx, c, &deliveryResult{URL: c.url, Event: event}, payload, header, strings.Join(signatures, ","))
}

// maxSignatures is how many values of one signature header a verifier reads.
const maxSignatures = 8

// signingSecrets are the comma-separated secrets of -s (or
// $CAKEMAIL_WEBHOOK_SECRET), as secrets --env prints them: trigger signs with
// each, one value per secret in one header, so that a receiver holding any one
// of them accepts the delivery, as during a rotation. It signs only with
// secrets a Verifier takes.
func (a *app) signingSecrets(c *invocation) ([]string, error) {
	secrets, err := a.secretList(c)
	if err != nil {
		return nil, err
	}
	if _, err := webhooks.NewVerifier(secrets); err != nil {
		return nil, usagef("%s: %s", c.secretName(), message(err))
	}
	if len(secrets) > maxSignatures {
		return nil, usagef("%s holds %d secrets; a signature header carries at most %d", c.secretName(), len(secrets), maxSignatures)
	}
	return secrets, nil
}

// secretFlag returns -s, or else $CAKEMAIL_WEBHOOK_SECRET. No message of the
// command holds it, and it is never sent anywhere an answer could echo it.
func (a *app) secretFlag(c *invocation) (string, error) {
	secret := c.secret
	if !c.given("secret") {
		secret = os.Getenv("CAKEMAIL_WEBHOOK_SECRET")
	}
	if strings.TrimSpace(secret) == "" {
		return "", usagef("-s SECRET (or CAKEMAIL_WEBHOOK_SECRET) is required")
	}
	return secret, nil
}

// secretList splits -s (or $CAKEMAIL_WEBHOOK_SECRET) at its commas, dropping
// the spaces that set the list out ("old, new"), empty parts and repeats.
// Whitespace at either end of the value is kept: the command takes the
// secrets a Verifier takes, so that it never answers valid where a receiver
// given the same value, a file's final newline say, refuses every delivery.
func (a *app) secretList(c *invocation) ([]string, error) {
	secret, err := a.secretFlag(c)
	if err != nil {
		return nil, err
	}
	parts := strings.Split(secret, ",")
	var secrets []string
	for i, s := range parts {
		if i > 0 {
			s = strings.TrimLeft(s, " \t")
		}
		if i < len(parts)-1 {
			s = strings.TrimRight(s, " \t")
		}
		if s != "" && !containsString(secrets, s) {
			secrets = append(secrets, s)
		}
	}
	if len(secrets) == 0 {
		return nil, usagef("%s holds no secret, only commas", c.secretName())
	}
	return secrets, nil
}

// verifier accepts what any of the comma-separated secrets of -s (or
// $CAKEMAIL_WEBHOOK_SECRET) signed, as during a rotation.
func (a *app) verifier(c *invocation, opts ...webhooks.VerifierOption) (*webhooks.Verifier, int, error) {
	secrets, err := a.secretList(c)
	if err != nil {
		return nil, 0, err
	}
	v, err := webhooks.NewVerifier(secrets, opts...)
	if err != nil {
		return nil, 0, usagef("%s: %s", c.secretName(), message(err))
	}
	return v, len(secrets), nil
}

// secretName is where the secret came from, for messages.
func (c *invocation) secretName() string {
	if c.given("secret") {
		return c.spelled("secret")
	}
	return "CAKEMAIL_WEBHOOK_SECRET"
}

// deliver POSTs a signed payload and reports the receiver's answer; a non-2xx
// answer is a failure.
func (a *app) deliver(ctx context.Context, c *invocation, result *deliveryResult, payload []byte, header, signature string) error {
	ctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, result.URL, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("%s is not a usable URL", shownURL(result.URL))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(header, signature)
	req.Header.Set("User-Agent", "cakemail-webhooks/"+webhooks.Version)
	start := time.Now()
	resp, err := a.deliveryClient(c).Do(req)
	if err != nil {
		return fmt.Errorf("delivering to %s: %w", shownURL(result.URL), err)
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	result.StatusCode = resp.StatusCode
	result.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
	status := resp.Status
	if isRedirect(resp.StatusCode) {
		result.RedirectHost = redirectHost(resp)
		status += " (" + redirectNote(result.RedirectHost) + ")"
	}
	if c.format == "json" {
		err = writeJSON(a.stdout, result)
	} else {
		_, err = fmt.Fprintf(a.stdout, "%s delivery to %s: %s in %.1f ms\n", result.Event, shownURL(result.URL), status, result.LatencyMS)
	}
	if err == nil && isRedirect(resp.StatusCode) {
		return fmt.Errorf("the receiver answered %s, %s: a signed delivery is never sent on to another address; give the final URL instead",
			resp.Status, redirectNote(result.RedirectHost))
	}
	if err == nil && (resp.StatusCode < 200 || resp.StatusCode > 299) {
		err = fmt.Errorf("the receiver answered %s", resp.Status)
		if line := firstLine(answer); line != "" {
			err = fmt.Errorf("%w: %s", err, line)
		}
	}
	return err
}

func isRedirect(status int) bool { return status >= 300 && status <= 399 }

// redirectHost is the host a redirect points to, never its user, path or query;
// empty when it has no Location.
func redirectHost(resp *http.Response) string {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return ""
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil || u.Host == "" {
		return "(unreadable Location)"
	}
	return u.Host
}

// redirectNote says where a redirect that was not followed pointed.
func redirectNote(host string) string {
	if host == "" {
		return "a redirect with no Location, not followed"
	}
	return "redirect to " + host + ", not followed"
}

// firstLine is the start of a receiver's answer, short enough for one line.
func firstLine(b []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	return strings.TrimSpace(line)
}

// apiPayload is a delivery in the shape of Cakemail's API guide.
func apiPayload(event webhooks.EventType, data json.RawMessage) ([]byte, error) {
	const account = 123
	type user struct {
		ID        string `json:"id"`
		Email     string `json:"email"`
		AccountID int    `json:"account_id"`
	}
	return json.Marshal(struct {
		Event     webhooks.EventType `json:"event"`
		AccountID int                `json:"account_id"`
		IP        string             `json:"ip"`
		User      user               `json:"user"`
		CreatedOn int64              `json:"created_on"`
		Data      json.RawMessage    `json:"data"`
	}{event, account, "203.0.113.42", user{strconv.FormatInt(randomID(), 10), "admin@example.com", account}, time.Now().Unix(), data})
}

// sampleData is realistic data for event, with fresh ids and a sample_id that
// makes every sample unique, so a receiver's duplicate detection keeps them all.
func sampleData(event webhooks.EventType) map[string]any {
	noun, verb, _ := strings.Cut(string(event), ".")
	const email = "jane.doe@example.com"
	d := map[string]any{}
	switch {
	case noun == "Email":
		d["email"], d["contact_id"], d["list_id"], d["campaign_id"] = email, randomID(), randomID(), randomID()
		d["message_id"] = "msg_" + randomHex(8)
		switch verb {
		case "Clicked":
			d["link"] = "https://www.example.com/spring-sale"
		case "Bounced":
			d["bounce_type"], d["reason"] = "hard", "550 5.1.1 mailbox unavailable"
		}
	case noun == "Contact":
		d["contact_id"], d["email"], d["list_id"] = randomID(), email, randomID()
		if verb == "Tagged" || verb == "Untagged" {
			d["tag"] = "vip"
		}
	case noun == "Campaign":
		d["campaign_id"], d["name"] = randomID(), "Spring newsletter"
	case noun == "List":
		d["list_id"], d["name"] = randomID(), "Newsletter"
	case noun == "Segment":
		d["segment_id"], d["list_id"], d["name"] = randomID(), randomID(), "Engaged readers"
	case noun == "Sender":
		d["sender_id"], d["email"], d["name"] = randomID(), "news@example.com", "Example News"
	case noun == "User" || noun == "MFA":
		d["user_id"], d["email"] = randomID(), "admin@example.com"
		if noun == "MFA" {
			d["method"] = "totp"
		}
	case noun == "Account":
		d["account_id"] = randomID()
	case noun == "SuppressedEmail":
		d["email"] = email
	default: // the exports
		d["export_id"] = randomID()
	}
	d["sample_id"] = randomHex(8)
	return d
}

func randomID() int64 {
	n, err := rand.Int(rand.Reader, big.NewInt(9_000_000))
	if err != nil {
		return time.Now().UnixNano() % 9_000_000
	}
	return 1_000_000 + n.Int64()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return strconv.FormatInt(time.Now().UnixNano(), 16)
	}
	return hex.EncodeToString(b)
}
