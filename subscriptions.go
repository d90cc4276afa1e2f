package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Subscription is what people usually mean by "a webhook": one URL receiving a
// set of events at a rate limit. The API stores one webhook per event, each
// with its own secret; Client.Apply makes the account match a Subscription.
type Subscription struct {
	URL string
	// Events are the events the URL should receive, in any documented spelling.
	Events []EventType
	// RateLimit and RateLimitPeriod apply to each event's webhook; zero values
	// mean the API's defaults, 50 per second.
	RateLimit       int
	RateLimitPeriod RateLimitPeriod
}

// The API's rate limit when a webhook is created without one.
const (
	DefaultRateLimit       = 50
	DefaultRateLimitPeriod = PerSecond
)

// ApplyOptions changes what Client.Apply does.
type ApplyOptions struct {
	// Prune archives the URL's active webhooks for events not in the
	// Subscription, and extra webhooks that repeat a wanted event.
	Prune bool
	// DryRun returns the plan without changing anything.
	DryRun bool
}

// Action is what Client.Apply does, or would do, to one webhook.
type Action string

// The actions of a plan.
const (
	ActionNone      Action = "unchanged"
	ActionCreate    Action = "create"
	ActionUpdate    Action = "update"
	ActionUnarchive Action = "unarchive"
	ActionArchive   Action = "archive"
)

// Change is one step of Client.Apply's plan and how it went.
type Change struct {
	Action Action
	Event  EventType
	// Webhook is the webhook after the change, or as it was when the change
	// was not made; nil for a creation that was not made.
	Webhook *Webhook
	// Applied reports that the change was made. It is false for a dry run, for
	// ActionNone, for the change that failed and for every change after it.
	Applied bool
	// Err is why this change failed.
	Err error
	// DuplicateOf is, for an ActionArchive of a webhook that repeats a wanted
	// event, the id of the webhook kept for that event; empty otherwise.
	DuplicateOf string
}

// Apply makes the webhooks of sub.URL match sub: it creates the missing ones,
// updates rate limits that differ, unarchives archived webhooks for wanted
// events and, with opts.Prune, archives the URL's webhooks for events no longer
// wanted. Running it twice changes nothing the second time.
//
// Runs for the same URL may overlap, and each may then create a webhook for
// the same event. So after creating or unarchiving, Apply lists the URL's
// webhooks again and, for each of those events, keeps the one listed first
// (the API lists the oldest first) and archives the other active ones, as
// ActionArchive changes with DuplicateOf set. Every run applies the same rule,
// so however many overlap, each event ends with one active webhook.
//
// sub is checked before anything is sent: an unknown event name or a bad URL
// is an error wrapping ErrInvalidParams. The returned changes describe every
// step in order. Apply stops at the first failure and returns an error naming
// what was done and what was not; the failed Change holds the cause.
func (c *Client) Apply(ctx context.Context, sub *Subscription, opts *ApplyOptions) ([]Change, error) {
	want, err := sub.validate()
	if err != nil {
		return nil, err
	}
	var o ApplyOptions
	if opts != nil {
		o = *opts
	}
	existing, err := c.webhooksFor(ctx, sub.URL, true)
	if err != nil {
		return nil, err
	}
	changes := plan(want, existing, o.Prune)
	if o.DryRun {
		return changes, nil
	}
	for i := range changes {
		ch := &changes[i]
		if ch.Action == ActionNone {
			continue
		}
		done, err := c.applyChange(ctx, ch, want)
		if err != nil {
			ch.Err = err
			return changes, applyError(sub.URL, changes, i)
		}
		ch.Webhook, ch.Applied = done, true
	}
	return c.archiveDuplicates(ctx, sub.URL, changes)
}

// archiveDuplicates lists the URL's webhooks again after changes and archives
// the active duplicates of every event a change created or unarchived, which
// a run overlapping this one may have made too. The rule of pickWebhook, the
// first active one in list order, is the same for every run, so two runs never
// keep different webhooks for one event.
func (c *Client) archiveDuplicates(ctx context.Context, rawURL string, changes []Change) ([]Change, error) {
	var check []EventType
	for _, ch := range changes {
		if ch.Applied && (ch.Action == ActionCreate || ch.Action == ActionUnarchive) && !slices.Contains(check, ch.Event) {
			check = append(check, ch.Event)
		}
	}
	if len(check) == 0 {
		return changes, nil
	}
	hooks, err := c.webhooksFor(ctx, rawURL, true)
	if err != nil {
		return changes, fmt.Errorf("webhooks: apply %s: every change was made, but listing the webhooks again to find duplicates made by another run failed: %w",
			redactURL(rawURL), err)
	}
	byEvent := make(map[EventType][]*Webhook)
	for _, w := range hooks {
		t := canonicalEventType(string(w.Event))
		byEvent[t] = append(byEvent[t], w)
	}
	first := len(changes)
	for _, event := range check {
		keep := pickWebhook(byEvent[event])
		for _, w := range byEvent[event] {
			if w != keep && w.Status == StatusActive {
				changes = append(changes, Change{Action: ActionArchive, Event: event, Webhook: w, DuplicateOf: keep.ID})
			}
		}
	}
	for i := first; i < len(changes); i++ {
		ch := &changes[i]
		done, err := c.Archive(ctx, ch.Webhook.ID)
		if err != nil {
			ch.Err = err
			return changes, applyError(rawURL, changes, i)
		}
		ch.Webhook, ch.Applied = done, true
	}
	return changes, nil
}

// wantedState is a validated Subscription: canonical events, concrete limits.
type wantedState struct {
	url       string
	events    []EventType
	rateLimit int
	period    RateLimitPeriod
}

func (sub *Subscription) validate() (*wantedState, error) {
	if sub == nil {
		return nil, fmt.Errorf("%w: nil Subscription", ErrInvalidParams)
	}
	if err := validateSettings(&sub.URL, &sub.RateLimit, &sub.RateLimitPeriod, "Subscription"); err != nil {
		return nil, err
	}
	events, err := resolveEvents(sub.Events)
	if err != nil {
		return nil, err
	}
	w := &wantedState{url: sub.URL, events: events, rateLimit: sub.RateLimit, period: sub.RateLimitPeriod}
	if w.rateLimit == 0 {
		w.rateLimit = DefaultRateLimit
	}
	if w.period == "" {
		w.period = DefaultRateLimitPeriod
	}
	return w, nil
}

// resolveEvents turns every name into its canonical event, dropping repeats,
// and reports every unknown name at once so that nothing is sent for a list
// with a typo in it.
func resolveEvents(names []EventType) ([]EventType, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: no events", ErrInvalidParams)
	}
	var events []EventType
	var unknown []error
	for _, name := range names {
		t, err := ParseEventType(string(name))
		if err != nil {
			unknown = append(unknown, err)
			continue
		}
		if !slices.Contains(events, t) {
			events = append(events, t)
		}
	}
	if len(unknown) > 0 {
		return nil, invalidParams(errors.Join(unknown...))
	}
	return events, nil
}

// plan lists the changes that take existing, every webhook of one URL, to want.
// Creations, unarchivals and updates come first and archivals last, so that a
// wanted event never goes without a webhook in between.
func plan(want *wantedState, existing []*Webhook, prune bool) []Change {
	byEvent := make(map[EventType][]*Webhook)
	for _, w := range existing {
		t := canonicalEventType(string(w.Event))
		byEvent[t] = append(byEvent[t], w)
	}
	var changes, archivals []Change
	for _, event := range want.events {
		hooks := byEvent[event]
		delete(byEvent, event)
		keep := pickWebhook(hooks)
		switch {
		case keep == nil:
			changes = append(changes, Change{Action: ActionCreate, Event: event})
		case keep.Status == StatusArchived:
			changes = append(changes, Change{Action: ActionUnarchive, Event: event, Webhook: keep})
			if !want.limitMatches(keep) {
				changes = append(changes, Change{Action: ActionUpdate, Event: event, Webhook: keep})
			}
		case !want.limitMatches(keep):
			changes = append(changes, Change{Action: ActionUpdate, Event: event, Webhook: keep})
		default:
			changes = append(changes, Change{Action: ActionNone, Event: event, Webhook: keep})
		}
		for _, extra := range hooks {
			if extra != keep && extra.Status == StatusActive && prune {
				archivals = append(archivals, Change{Action: ActionArchive, Event: event, Webhook: extra, DuplicateOf: keep.ID})
			}
		}
	}
	if prune {
		for _, w := range existing {
			if _, unwanted := byEvent[canonicalEventType(string(w.Event))]; unwanted && w.Status == StatusActive {
				archivals = append(archivals, Change{Action: ActionArchive, Event: w.Event, Webhook: w})
			}
		}
	}
	return append(changes, archivals...)
}

// pickWebhook chooses which of an event's webhooks to keep: the first active
// one in list order, which is the oldest, or else the most recently archived
// (the first listed of those archived in the same second).
func pickWebhook(hooks []*Webhook) *Webhook {
	var best *Webhook
	for _, w := range hooks {
		switch {
		case w.Status == StatusActive:
			return w
		case best == nil || w.ArchivedAt.After(best.ArchivedAt):
			best = w
		}
	}
	return best
}

func (w *wantedState) limitMatches(h *Webhook) bool {
	return h.RateLimit == w.rateLimit && h.RateLimitPeriod == w.period
}

// applyChange makes one change and returns the webhook as it now is.
func (c *Client) applyChange(ctx context.Context, ch *Change, want *wantedState) (*Webhook, error) {
	switch ch.Action {
	case ActionCreate:
		return c.Create(ctx, &CreateParams{Event: ch.Event, URL: want.url, RateLimit: want.rateLimit, RateLimitPeriod: want.period})
	case ActionUpdate:
		return c.Update(ctx, ch.Webhook.ID, &UpdateParams{RateLimit: &want.rateLimit, RateLimitPeriod: &want.period})
	case ActionUnarchive:
		return c.Unarchive(ctx, ch.Webhook.ID)
	case ActionArchive:
		return c.Archive(ctx, ch.Webhook.ID)
	}
	return ch.Webhook, nil
}

// applyError says which changes were made before changes[failed] failed, and
// which were not.
func applyError(rawURL string, changes []Change, failed int) error {
	var done, notDone []string
	for i, ch := range changes {
		if ch.Action == ActionNone {
			continue
		}
		switch {
		case ch.Applied:
			done = append(done, describeChange(ch))
		case i != failed:
			notDone = append(notDone, describeChange(ch))
		}
	}
	list := func(s []string) string {
		if len(s) == 0 {
			return "nothing"
		}
		return strings.Join(s, ", ")
	}
	return fmt.Errorf("webhooks: apply %s: %s failed: %w; done: %s; not done: %s",
		redactURL(rawURL), describeChange(changes[failed]), changes[failed].Err, list(done), list(notDone))
}

func describeChange(ch Change) string {
	if ch.Webhook != nil && ch.Webhook.ID != "" {
		return fmt.Sprintf("%s %s (%s)", ch.Action, ch.Event, ch.Webhook.ID)
	}
	return fmt.Sprintf("%s %s", ch.Action, ch.Event)
}

// Secrets returns the signing secrets of rawURL's active webhooks, one per
// webhook in list order, ready to join with commas for CAKEMAIL_WEBHOOK_SECRET:
// a Verifier given them all accepts a delivery of any of the URL's events.
// It is an error wrapping ErrNotFound when no active webhook has that URL.
func (c *Client) Secrets(ctx context.Context, rawURL string) ([]string, error) {
	if err := ValidateURL(rawURL); err != nil {
		return nil, fmt.Errorf("%w: URL: %v", ErrInvalidParams, err)
	}
	hooks, err := c.webhooksFor(ctx, rawURL, false)
	if err != nil {
		return nil, err
	}
	if len(hooks) == 0 {
		return nil, fmt.Errorf("%w: no active webhook delivers to %s", ErrNotFound, redactURL(rawURL))
	}
	secrets := make([]string, 0, len(hooks))
	for _, h := range hooks {
		full, err := c.Get(ctx, h.ID)
		if err != nil {
			return nil, err
		}
		if full.Secret != "" && !slices.Contains(secrets, full.Secret) {
			secrets = append(secrets, full.Secret)
		}
	}
	return secrets, nil
}

// Rotate replaces a webhook's secret the only way the API allows: it creates
// a webhook with the same event, URL and rate limit, and returns it with its
// new secret. Both webhooks then deliver every event; once the receiver
// accepts the new secret, archive the old webhook with Archive.
func (c *Client) Rotate(ctx context.Context, id string) (*Webhook, error) {
	old, err := c.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if old.Status == StatusArchived {
		return nil, fmt.Errorf("%w: webhook %s is archived: its secret signs nothing; unarchive it first", ErrInvalidParams, id)
	}
	created, err := c.Create(ctx, &CreateParams{
		Event: old.Event, URL: old.URL, RateLimit: old.RateLimit, RateLimitPeriod: old.RateLimitPeriod,
	})
	if err != nil {
		return nil, err
	}
	replacement, err := c.Get(ctx, created.ID)
	if err != nil {
		return nil, fmt.Errorf("webhooks: rotate %s: replacement %s was created, but reading its secret failed: %w", id, created.ID, err)
	}
	return replacement, nil
}

// webhooksFor returns every webhook whose URL is rawURL, archived ones too
// when asked.
func (c *Client) webhooksFor(ctx context.Context, rawURL string, withArchived bool) ([]*Webhook, error) {
	var hooks []*Webhook
	for w, err := range c.All(ctx, &ListOptions{PerPage: 100, WithArchived: withArchived}) {
		if err != nil {
			return nil, err
		}
		if w.URL == rawURL && (withArchived || w.Status == StatusActive) {
			hooks = append(hooks, w)
		}
	}
	return hooks, nil
}

// redactURL shows rawURL with any password masked.
func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "the URL"
	}
	return u.Redacted()
}

// invalidParamsError is a cause reported as ErrInvalidParams, matching both
// with errors.Is, without repeating the package prefix in its message.
type invalidParamsError struct{ cause error }

func invalidParams(cause error) error { return &invalidParamsError{cause: cause} }

func (e *invalidParamsError) Error() string {
	msg := strings.ReplaceAll(e.cause.Error(), "webhooks: ", "")
	return ErrInvalidParams.Error() + ": " + strings.ReplaceAll(msg, "\n", "; ")
}

func (e *invalidParamsError) Unwrap() []error { return []error{ErrInvalidParams, e.cause} }
