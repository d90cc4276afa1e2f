package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/cakemail-go/webhooks"
)

func init() {
	commands = []*command{
		{name: "list", summary: "List webhooks, a page at a time.", run: runList, flags: func(c *invocation) {
			c.intFlag(&c.limit, "l", "limit", "webhooks per page, from 1 (the API's default is 50)")
			c.intFlag(&c.page, "p", "page", "page number, from 1")
			c.boolFlag(&c.archived, "", "archived", "include archived webhooks")
		}},
		{name: "get", args: "<id>", summary: "Show a webhook, including its signing secret.", run: runGet},
		{name: "create", summary: "Create a webhook for each of the given events, unless one exists.", run: runCreate,
			help: `The API takes one event per webhook: several events make one webhook each. An
active webhook that already delivers an event to the URL is reported, not
created again, so running the same create twice makes no duplicates. Every
event name is checked before anything is sent.`,
			flags: func(c *invocation) {
				c.stringFlag(&c.url, "u", "url", "", "endpoint URL (https)")
				c.listFlag(&c.events, "e", "events", "events, comma-separated or repeated, such as email.opened,Email.Clicked")
				c.intFlag(&c.rateLimit, "", "rate-limit", "deliveries per period (the API's default is 50)")
				c.stringFlag(&c.period, "", "period", "", "rate limit period: second or minute (the API's default is second)")
				c.stringFlag(&c.name, "n", "name", "", "ignored, with a warning: Cakemail webhooks have no name")
				c.stringFlag(&c.secret, "s", "secret", "", "not supported: Cakemail generates each secret (see secrets)")
			}},
		{name: "update", args: "<id>", summary: "Change a webhook's URL or rate limit.", run: runUpdate,
			help: `A webhook's event and secret cannot change: to change the events of a URL use
apply, to change a secret use rotate.`,
			flags: func(c *invocation) {
				c.stringFlag(&c.url, "u", "url", "", "new endpoint URL (https)")
				c.intFlag(&c.rateLimit, "", "rate-limit", "deliveries per period")
				c.stringFlag(&c.period, "", "period", "", "rate limit period: second or minute")
				c.listFlag(&c.events, "e", "events", "not supported: a webhook's event cannot change (see apply)")
				c.stringFlag(&c.name, "n", "name", "", "ignored, with a warning: Cakemail webhooks have no name")
				c.stringFlag(&c.secret, "s", "secret", "", "not supported: Cakemail generates each secret (see rotate)")
			}},
		{name: "archive", args: "<id>", summary: "Stop a webhook's deliveries (the API has no delete).", run: runArchive},
		{name: "unarchive", args: "<id>", summary: "Resume an archived webhook's deliveries.", run: runUnarchive},
		{name: "delete", args: "<id>", summary: "Archive a webhook: Cakemail cannot delete webhooks.", run: runDelete,
			help: `Cakemail's API has no delete: the webhook is archived, which stops its
deliveries and keeps it, and cakemail-webhooks unarchive <id> brings it back.`,
			flags: func(c *invocation) {
				c.boolFlag(&c.force, "", "force", "accepted for Cakemail's CLI guide; archiving asks for no confirmation")
			}},
		{name: "apply", summary: "Make a URL's webhooks match a set of events and a rate limit.", run: runApply,
			help: `Creates the missing webhooks, updates rate limits that differ, unarchives
archived webhooks that are wanted and, with --prune, archives the URL's
webhooks for events no longer listed. A second run changes nothing, and runs
at once for one URL end with one active webhook per event: after creating, each
lists again and archives the duplicates, keeping the oldest. Prints what was
done to each webhook, or with --dry-run what would be.`,
			flags: func(c *invocation) {
				c.stringFlag(&c.url, "u", "url", "", "endpoint URL (https)")
				c.listFlag(&c.events, "e", "events", "events, comma-separated or repeated")
				c.intFlag(&c.rateLimit, "", "rate-limit", "deliveries per period (default 50)")
				c.stringFlag(&c.period, "", "period", "", "rate limit period: second or minute (default second)")
				c.boolFlag(&c.prune, "", "prune", "archive the URL's webhooks for events not listed")
				c.boolFlag(&c.dryRun, "", "dry-run", "print the plan, change nothing")
			}},
		{name: "secrets", summary: "Print the signing secrets of a URL's active webhooks, comma-separated.", run: runSecrets,
			help: `The list is what a receiver on that URL needs to verify every event it gets:
CAKEMAIL_WEBHOOK_SECRET for the SDK's examples. It is secret: keep it out of
logs, tickets and shell history.`,
			flags: func(c *invocation) {
				c.stringFlag(&c.url, "u", "url", "", "endpoint URL")
				c.boolFlag(&c.env, "", "env", "print CAKEMAIL_WEBHOOK_SECRET=... for a .env file")
			}},
		{name: "rotate", args: "<id>", summary: "Replace a webhook with a new one and a new secret.", run: runRotate,
			help: `Creates a webhook with the same event, URL and rate limit and a new secret, and
prints the secret list to deploy to the receiver (old and new). Once the
receiver has it, archive the old webhook (rotate prints the command), or give
--archive-old to do it at once. While both are active, each event is delivered
twice with the same body; the receiver's duplicate detection drops the second.`,
			flags: func(c *invocation) {
				c.boolFlag(&c.archiveOld, "", "archive-old", "archive the old webhook right after creating the new one")
			}},
		{name: "test", args: "<id>", summary: "Send a signed sample delivery to a webhook's URL.", run: runTest, flags: func(c *invocation) {
			c.stringFlag(&c.event, "e", "event", "", "event type of the sample (default: the webhook's)")
		}},
		{name: "trigger", args: "EVENT", summary: "Send one signed delivery of EVENT to any URL; no account needed.", run: runTrigger,
			help: `The body is what Cakemail sends: the API's shape by default (event, account_id,
ip, user, created_on, data), or with --shape guide the shape of Cakemail's
guides (event, timestamp, data). Each delivery is unique. The signature goes in
X-Signature in base64, or with --hex in X-Cakemail-Signature in hex.`,
			flags: func(c *invocation) {
				c.stringFlag(&c.url, "u", "url", "", "where to send it (http or https)")
				c.stringFlag(&c.secret, "s", "secret", "", "the secret to sign with (default $CAKEMAIL_WEBHOOK_SECRET)")
				c.stringFlag(&c.data, "d", "data", "", "the event's data, a JSON object (default: a realistic sample)")
				c.stringFlag(&c.shape, "", "shape", "api", "payload shape: api or guide")
				c.boolFlag(&c.hex, "", "hex", "sign in hex in X-Cakemail-Signature")
			}},
		{name: "listen", summary: "Receive deliveries locally, verify each and print it as a JSON line.", run: runListen,
			help: `Takes deliveries on any path. Each verified one is printed on stdout as one
JSON line (event, account, created, data) and, with --forward-to, passed on
unchanged (body and headers) to your own handler, whose answer goes back to the
sender. A refused one is answered 401 (or 400, 405, 413) and the reason is
printed on stderr. Stops on SIGINT or SIGTERM.`,
			flags: func(c *invocation) {
				c.stringFlag(&c.secret, "s", "secret", "", "secrets to verify with, comma-separated (default $CAKEMAIL_WEBHOOK_SECRET)")
				c.stringFlag(&c.addr, "", "addr", "127.0.0.1:8080", "address to listen on")
				c.stringFlag(&c.forwardTo, "", "forward-to", "", "URL to pass verified deliveries on to")
			}},
		{name: "verify", args: "[FILE|-]", summary: "Check a captured delivery: a body with --signature, or a whole HTTP request.", run: runVerify,
			help: `With --explain, a delivery that fails is diagnosed: a missing or malformed
header, a secret with spaces or quotes around it, a newline added or removed,
a body parsed and encoded again, a cut body, an access token given as the
secret, or else a wrong secret. With --url as well (and the API's credentials),
the secret of every webhook of the account is tried, and the one that signed
the delivery is named: the usual mix-up when one URL gets several events.
Nothing printed holds a secret, a signature or the body.

The secret is taken as given, as the SDK's Verifier takes it: one with
whitespace around it, such as a file's final newline, fails every delivery,
and --explain says so rather than trim it.

A captured request is the request line, headers, a blank line and the body,
as they came off the wire. To capture one, dump it in the receiver before
anything reads the body (in Go, httputil.DumpRequest(r, true) written to a
file), or keep the next request sent to a port with nc -l 8080 > delivery.http
(send it there with test <id> or trigger -u). A capture cut short, or one with
no signature header, is diagnosed as such.`,
			flags: func(c *invocation) {
				c.stringFlag(&c.secret, "s", "secret", "", "the webhook's secret (default $CAKEMAIL_WEBHOOK_SECRET)")
				c.stringFlag(&c.signature, "", "signature", "", "the signature header's value (default: read from the captured request in FILE)")
				c.boolFlag(&c.explain, "", "explain", "say why a delivery fails, and what to do")
				c.stringFlag(&c.url, "u", "url", "", "with --explain: the receiver's URL; tries every webhook's secret of the account")
			}},
		{name: "events", summary: "List the known event types.", run: runEvents},
		{name: "version", summary: "Print the version.", run: runVersion},
	}
}

// unsupported warns about -n, which the API has no field for but which costs
// nothing to ignore, and refuses, in one message, every other flag of
// Cakemail's CLI reference the API cannot honour. refused maps a flag's long
// name to why, and what to do instead.
func (a *app) unsupported(c *invocation, refused map[string]string) error {
	if c.given("name") {
		a.warnf("%s ignored: Cakemail webhooks have no name; they are told apart by event and URL", c.spelled("name"))
	}
	var why []string
	for _, long := range []string{"events", "secret"} {
		if reason, ok := refused[long]; ok && c.given(long) {
			why = append(why, c.spelled(long)+": "+reason)
		}
	}
	if len(why) == 0 {
		return nil
	}
	return usagef("not supported: %s", strings.Join(why, "; "))
}

func runList(ctx context.Context, a *app, c *invocation) error {
	if err := c.noArgs(); err != nil {
		return err
	}
	for _, f := range []struct {
		long string
		n    int
	}{{"limit", c.limit}, {"page", c.page}} {
		if c.given(f.long) && f.n < 1 {
			return usagef("%s must be at least 1, not %d", c.spelled(f.long), f.n)
		}
	}
	client, err := a.client(c)
	if err != nil {
		return err
	}
	list, err := client.List(ctx, &webhooks.ListOptions{Page: c.page, PerPage: c.limit, WithArchived: c.archived, WithCount: true})
	if err != nil {
		return err
	}
	count := max(list.Count, len(list.Webhooks))
	hidden := ""
	if !c.archived {
		all, err := client.List(ctx, &webhooks.ListOptions{PerPage: 1, WithArchived: true, WithCount: true})
		if err != nil {
			a.warnf("could not count the archived webhooks: %s", message(err))
		} else if n := all.Count - count; n > 0 {
			hidden = fmt.Sprintf("%d archived webhook(s) not shown; add --archived to list them.", n)
		}
	}
	if c.format == "json" {
		if hidden != "" {
			fmt.Fprintln(a.stderr, "note: "+hidden)
		}
		return writeJSON(a.stdout, listView{Data: viewsOf(list.Webhooks), Count: count})
	}
	what := "active webhook(s)"
	if c.archived {
		what = "webhook(s), archived included"
	}
	footer := fmt.Sprintf("%d %s; page %d.", count, what, max(list.Page, 1))
	if len(list.Webhooks) == 0 && count > 0 {
		footer = fmt.Sprintf("%d %s; page %d is past the last one.", count, what, max(list.Page, 1))
	}
	if hidden != "" {
		footer += " " + hidden
	}
	return writeTable(a.stdout, list.Webhooks, footer)
}

func runGet(ctx context.Context, a *app, c *invocation) error {
	id, err := c.oneArg("webhook id")
	if err != nil {
		return err
	}
	client, err := a.client(c)
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

// settings checks -u, --rate-limit and --period as the user typed them, so a
// mistake is reported by flag rather than by SDK field.
func settings(c *invocation, urlRequired bool) error {
	if c.given("url") || urlRequired {
		if err := webhooks.ValidateURL(c.url); err != nil {
			return usagef("%s: %v", c.spelled("url"), err)
		}
	}
	if c.given("rate-limit") && c.rateLimit < 1 {
		return usagef("%s must be at least 1, not %d", c.spelled("rate-limit"), c.rateLimit)
	}
	if c.given("period") {
		switch webhooks.RateLimitPeriod(c.period) {
		case webhooks.PerSecond, webhooks.PerMinute:
		default:
			return usagef("%s must be second or minute, not %q", c.spelled("period"), c.period)
		}
	}
	return nil
}

func runCreate(ctx context.Context, a *app, c *invocation) error {
	if err := c.noArgs(); err != nil {
		return err
	}
	if err := a.unsupported(c, map[string]string{
		"secret": "Cakemail generates each webhook's secret; drop it, then read the secrets with: cakemail-webhooks secrets -u URL",
	}); err != nil {
		return err
	}
	events, client, err := a.subscriptionFlags(c)
	if err != nil {
		return err
	}
	existing, err := activeFor(ctx, client, c.url)
	if err != nil {
		return err
	}
	if len(events) > 1 {
		fmt.Fprintf(a.stderr, "A Cakemail webhook listens to one event: %s gets one webhook per event.\n", shownURL(c.url))
	}
	params := webhooks.CreateParams{URL: c.url, RateLimit: c.rateLimit, RateLimitPeriod: webhooks.RateLimitPeriod(c.period)}
	var shown, created []*webhooks.Webhook
	var createErr error
	for _, event := range events {
		if hook := existing[event]; hook != nil {
			fmt.Fprintf(a.stderr, "Webhook %s already delivers %s to this URL: not created again.\n", hook.ID, event)
			shown = append(shown, hook)
			continue
		}
		p := params
		p.Event = event
		hook, err := client.Create(ctx, &p)
		if err != nil {
			createErr = fmt.Errorf("creating the %s webhook: %w", event, err)
			break
		}
		created = append(created, hook)
		shown = append(shown, hook)
	}
	if createErr != nil && len(created) > 0 {
		createErr = fmt.Errorf("%w; already created: %s", createErr, describe(created))
	}
	if len(shown) == 0 {
		return createErr
	}
	var werr error
	switch {
	case c.format == "json" && len(events) == 1:
		werr = writeJSON(a.stdout, viewOf(shown[0]))
	case c.format == "json":
		werr = writeJSON(a.stdout, listView{Data: viewsOf(shown), Count: len(shown)})
	default:
		footer := fmt.Sprintf("%d webhook(s) created", len(created))
		if n := len(shown) - len(created); n > 0 {
			footer += fmt.Sprintf(", %d already there", n)
		}
		werr = writeTable(a.stdout, shown, footer+". Their secrets: cakemail-webhooks secrets -u "+shellQuote(c.url))
	}
	return errors.Join(createErr, werr)
}

// subscriptionFlags checks the flags of the commands that take a URL and a list
// of events (create, apply) before anything is sent, and returns the events
// and a client.
func (a *app) subscriptionFlags(c *invocation) ([]webhooks.EventType, *webhooks.Client, error) {
	if err := requireURLAndEvents(c); err != nil {
		return nil, nil, err
	}
	if err := settings(c, true); err != nil {
		return nil, nil, err
	}
	events, err := a.parseEvents(c)
	if err != nil {
		return nil, nil, err
	}
	client, err := a.client(c)
	if err != nil {
		return nil, nil, err
	}
	return events, client, nil
}

func requireURLAndEvents(c *invocation) error {
	switch {
	case c.url == "" && len(c.events) == 0:
		return usagef("-u URL and -e EVENTS are required")
	case c.url == "":
		return usagef("-u URL is required")
	case len(c.events) == 0:
		return usagef("-e EVENTS is required")
	}
	return nil
}

// plainShellWord is what a shell reads as one word without quotes.
var plainShellWord = regexp.MustCompile(`^[A-Za-z0-9_./:@%+=,-]+$`)

// shellQuote makes s safe to paste into a shell as one word.
func shellQuote(s string) string {
	if plainShellWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// describe lists webhooks as "id (Event), id (Event)".
func describe(hooks []*webhooks.Webhook) string {
	ids := make([]string, len(hooks))
	for i, h := range hooks {
		ids[i] = h.ID + " (" + string(h.Event) + ")"
	}
	return strings.Join(ids, ", ")
}

// activeFor returns the active webhooks delivering to url, by event.
func activeFor(ctx context.Context, client *webhooks.Client, url string) (map[webhooks.EventType]*webhooks.Webhook, error) {
	out := map[webhooks.EventType]*webhooks.Webhook{}
	for hook, err := range client.All(ctx, &webhooks.ListOptions{PerPage: 100}) {
		if err != nil {
			return nil, err
		}
		if hook.URL == url && hook.Status == webhooks.StatusActive && out[hook.Event] == nil {
			out[hook.Event] = hook
		}
	}
	return out, nil
}

func runUpdate(ctx context.Context, a *app, c *invocation) error {
	id, err := c.oneArg("webhook id")
	if err != nil {
		return err
	}
	if err := a.unsupported(c, map[string]string{
		"events": "a webhook's event cannot change; to set the events a URL gets, run: cakemail-webhooks apply -u URL -e EVENTS --prune",
		"secret": "Cakemail generates each webhook's secret; to replace it, run: cakemail-webhooks rotate " + id,
	}); err != nil {
		return err
	}
	if !c.given("url") && !c.given("rate-limit") && !c.given("period") {
		return usagef("nothing to update: give -u, --rate-limit or --period")
	}
	if err := settings(c, false); err != nil {
		return err
	}
	var params webhooks.UpdateParams
	if c.given("url") {
		params.URL = webhooks.Ptr(c.url)
	}
	if c.given("rate-limit") {
		params.RateLimit = webhooks.Ptr(c.rateLimit)
	}
	if c.given("period") {
		params.RateLimitPeriod = webhooks.Ptr(webhooks.RateLimitPeriod(c.period))
	}
	client, err := a.client(c)
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

// runDelete archives, the only way the API retires a webhook, so that the
// guide's "webhooks delete <id> --force" does what its user wants.
func runDelete(ctx context.Context, a *app, c *invocation) error {
	id, err := c.oneArg("webhook id")
	if err != nil {
		return err
	}
	client, err := a.client(c)
	if err != nil {
		return err
	}
	hook, err := client.Archive(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "Cakemail cannot delete webhooks: webhook %s is archived instead and gets no more deliveries. To bring it back: cakemail-webhooks unarchive %s\n",
		hook.ID, shellQuote(hook.ID))
	return writeOne(a.stdout, c.format, hook, "archived")
}

func archiveOrUnarchive(ctx context.Context, a *app, c *invocation,
	call func(*webhooks.Client, context.Context, string) (*webhooks.Webhook, error), done string) error {
	id, err := c.oneArg("webhook id")
	if err != nil {
		return err
	}
	client, err := a.client(c)
	if err != nil {
		return err
	}
	hook, err := call(client, ctx, id)
	if err != nil {
		return err
	}
	return writeOne(a.stdout, c.format, hook, done)
}
