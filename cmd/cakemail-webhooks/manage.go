package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/tabwriter"

	"github.com/cakemail-go/webhooks"
)

// changeView is one step of apply, as the json format prints it.
type changeView struct {
	Action    webhooks.Action    `json:"action"`
	Event     webhooks.EventType `json:"event"`
	WebhookID string             `json:"webhook_id,omitempty"`
	Applied   bool               `json:"applied"`
	Error     string             `json:"error,omitempty"`
	// DuplicateOf is, for the archival of a duplicate, the webhook kept instead.
	DuplicateOf string `json:"duplicate_of,omitempty"`
}

// applyView is apply's json output.
type applyView struct {
	URL     string       `json:"url"`
	DryRun  bool         `json:"dry_run"`
	Changes []changeView `json:"changes"`
}

func runApply(ctx context.Context, a *app, c *invocation) error {
	if err := c.noArgs(); err != nil {
		return err
	}
	events, client, err := a.subscriptionFlags(c)
	if err != nil {
		return err
	}
	sub := &webhooks.Subscription{URL: c.url, Events: events, RateLimit: c.rateLimit, RateLimitPeriod: webhooks.RateLimitPeriod(c.period)}
	changes, err := client.Apply(ctx, sub, &webhooks.ApplyOptions{Prune: c.prune, DryRun: c.dryRun})
	if changes == nil {
		return err
	}
	if werr := writeChanges(a, c, changes); werr != nil {
		return werr
	}
	if err == nil && !c.prune && c.format != "json" {
		a.notePrunable(ctx, client, sub)
	}
	if err != nil {
		return applyFailure(changes, err)
	}
	return nil
}

func writeChanges(a *app, c *invocation, changes []webhooks.Change) error {
	if c.format == "json" {
		v := applyView{URL: c.url, DryRun: c.dryRun, Changes: make([]changeView, len(changes))}
		for i, ch := range changes {
			v.Changes[i] = changeView{Action: ch.Action, Event: ch.Event, Applied: ch.Applied, DuplicateOf: ch.DuplicateOf}
			if ch.Webhook != nil {
				v.Changes[i].WebhookID = ch.Webhook.ID
			}
			if ch.Err != nil {
				v.Changes[i].Error = message(ch.Err)
			}
		}
		return writeJSON(a.stdout, v)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	result := "RESULT"
	if c.dryRun {
		result = "PLAN"
	}
	fmt.Fprintf(tw, "EVENT\tWEBHOOK\tACTION\t%s\n", result)
	made, planned, failed, duplicates := 0, 0, false, 0
	for _, ch := range changes {
		id := "(new)"
		if ch.Webhook != nil {
			id = ch.Webhook.ID
		}
		var outcome string
		switch {
		case ch.Action == webhooks.ActionNone:
			outcome = "-"
		case c.dryRun:
			outcome, planned = "would "+string(ch.Action), planned+1
		case ch.Applied:
			outcome, made = "done", made+1
			if ch.DuplicateOf != "" {
				duplicates++
			}
		case ch.Err != nil:
			outcome, failed = "FAILED: "+message(ch.Err), true
		default:
			outcome, planned = "not done", planned+1
		}
		if ch.DuplicateOf != "" && ch.Err == nil {
			outcome += " (duplicate of " + ch.DuplicateOf + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ch.Event, id, ch.Action, outcome)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	unchanged := len(changes) - made - planned
	if failed {
		unchanged--
	}
	var footer string
	switch {
	case c.dryRun && planned == 0:
		footer = "Dry run: nothing to change; the account already matches."
	case c.dryRun:
		footer = fmt.Sprintf("Dry run: %d change(s) planned, nothing changed. Run again without --dry-run to make them.", planned)
	case failed:
		footer = fmt.Sprintf("Stopped at the first failure: %d change(s) made, 1 failed, %d not made.", made, planned)
	case made == 0:
		footer = "Nothing to change; the account already matches."
	default:
		footer = fmt.Sprintf("%d change(s) made, %d webhook(s) unchanged. Their secrets: cakemail-webhooks secrets -u %s", made, unchanged, shellQuote(c.url))
	}
	if duplicates > 0 {
		footer = fmt.Sprintf("%d duplicate webhook(s) archived: each event keeps its oldest webhook, whichever run made it.\n", duplicates) + footer
	}
	_, err := fmt.Fprintln(a.stdout, footer)
	return err
}

// notePrunable says which of the URL's webhooks apply kept although --prune
// would archive them: those of events not listed, and duplicates of listed
// events made before this run (by a rotation, say).
func (a *app) notePrunable(ctx context.Context, client *webhooks.Client, sub *webhooks.Subscription) {
	plan, err := client.Apply(ctx, sub, &webhooks.ApplyOptions{Prune: true, DryRun: true})
	if err != nil {
		return
	}
	var unlisted, duplicates []string
	for _, ch := range plan {
		switch {
		case ch.Action != webhooks.ActionArchive || ch.Webhook == nil:
		case ch.DuplicateOf != "":
			duplicates = append(duplicates, fmt.Sprintf("%s (%s, a duplicate of %s)", ch.Event, ch.Webhook.ID, ch.DuplicateOf))
		default:
			unlisted = append(unlisted, fmt.Sprintf("%s (%s)", ch.Event, ch.Webhook.ID))
		}
	}
	var note []string
	if len(unlisted) > 0 {
		note = append(note, "Kept, although not listed: "+strings.Join(unlisted, ", ")+".")
	}
	if len(duplicates) > 0 {
		note = append(note, "Kept, although they repeat a listed event: "+strings.Join(duplicates, ", ")+".")
	}
	if len(note) > 0 {
		fmt.Fprintf(a.stdout, "%s --prune archives them.\n", strings.Join(note, " "))
	}
}

// applyFailure says, in the command's words, what apply did and did not do
// before it stopped.
func applyFailure(changes []webhooks.Change, err error) error {
	var failed *webhooks.Change
	var done, notDone []string
	for i := range changes {
		ch := &changes[i]
		switch {
		case ch.Action == webhooks.ActionNone:
		case ch.Err != nil:
			failed = ch
		case ch.Applied:
			done = append(done, describeChange(ch))
		default:
			notDone = append(notDone, describeChange(ch))
		}
	}
	if failed == nil {
		return err
	}
	list := func(s []string) string {
		if len(s) == 0 {
			return "nothing"
		}
		return strings.Join(s, ", ")
	}
	return fmt.Errorf("%s failed: %w; done: %s; not done: %s", describeChange(failed), failed.Err, list(done), list(notDone))
}

func describeChange(ch *webhooks.Change) string {
	if ch.Webhook != nil && ch.Webhook.ID != "" {
		return fmt.Sprintf("%s %s (%s)", ch.Action, ch.Event, ch.Webhook.ID)
	}
	return fmt.Sprintf("%s %s", ch.Action, ch.Event)
}

// secretsView is the json output of secrets.
type secretsView struct {
	URL     string   `json:"url"`
	Secrets []string `json:"secrets"`
}

func runSecrets(ctx context.Context, a *app, c *invocation) error {
	if err := c.noArgs(); err != nil {
		return err
	}
	if c.url == "" {
		return usagef("-u URL is required: the URL whose webhooks' secrets to print")
	}
	if err := settings(c, true); err != nil {
		return err
	}
	if c.env && c.format == "json" {
		return usagef("--env and -f json print different things: pick one")
	}
	client, err := a.client(c)
	if err != nil {
		return err
	}
	secrets, err := client.Secrets(ctx, c.url)
	if errors.Is(err, webhooks.ErrNotFound) && !isAPIError(err) {
		return fmt.Errorf("no active webhook delivers to %s; see them with: cakemail-webhooks list --archived", shownURL(c.url))
	}
	if err != nil {
		return err
	}
	switch {
	case c.format == "json":
		return writeJSON(a.stdout, secretsView{URL: c.url, Secrets: secrets})
	case c.env:
		_, err = fmt.Fprintln(a.stdout, envLine(secrets))
	default:
		_, err = fmt.Fprintln(a.stdout, strings.Join(secrets, ","))
	}
	return err
}

func isAPIError(err error) bool {
	var apiErr *webhooks.APIError
	return errors.As(err, &apiErr)
}

// plainEnvValue is what a .env line can hold without quotes.
var plainEnvValue = regexp.MustCompile(`^[A-Za-z0-9_.,:/+=@-]*$`)

// envLine is the CAKEMAIL_WEBHOOK_SECRET line of a .env file, quoted when needed.
func envLine(secrets []string) string {
	v := strings.Join(secrets, ",")
	if !plainEnvValue.MatchString(v) {
		v = "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
	}
	return "CAKEMAIL_WEBHOOK_SECRET=" + v
}

// rotateView is the json output of rotate.
type rotateView struct {
	Old         webhookView `json:"old"`
	New         webhookView `json:"new"`
	OldArchived bool        `json:"old_archived"`
	Secret      string      `json:"secret"`  // the new webhook's
	Secrets     []string    `json:"secrets"` // for the receiver: every active webhook of the URL
}

func runRotate(ctx context.Context, a *app, c *invocation) error {
	id, err := c.oneArg("webhook id")
	if err != nil {
		return err
	}
	client, err := a.client(c)
	if err != nil {
		return err
	}
	old, err := client.Get(ctx, id)
	if err != nil {
		return err
	}
	if old.Status == webhooks.StatusArchived {
		return fmt.Errorf("webhook %s is archived, so its secret signs nothing; to get its deliveries again run: cakemail-webhooks unarchive %s", id, id)
	}
	replacement, err := client.Rotate(ctx, id)
	if err != nil {
		return err
	}
	var archiveErr error
	if c.archiveOld {
		var archived *webhooks.Webhook
		if archived, archiveErr = client.Archive(ctx, old.ID); archiveErr == nil {
			old = archived
		}
	}
	secrets, err := client.Secrets(ctx, old.URL)
	if err != nil {
		secrets = nil
		a.warnf("could not list the secrets of %s: %s", shownURL(old.URL), message(err))
	}
	old.Secret = ""
	if c.format == "json" {
		err = writeJSON(a.stdout, rotateView{Old: viewOf(old), New: viewOf(replacement), OldArchived: c.archiveOld && archiveErr == nil,
			Secret: replacement.Secret, Secrets: secrets})
	} else {
		err = writeRotation(a, c, old, replacement, secrets, archiveErr == nil)
	}
	if archiveErr != nil {
		return fmt.Errorf("webhook %s replaces %s, but archiving %s failed: %w; archive it with: cakemail-webhooks archive %s",
			replacement.ID, old.ID, old.ID, archiveErr, old.ID)
	}
	return err
}

func writeRotation(a *app, c *invocation, old, replacement *webhooks.Webhook, secrets []string, archived bool) error {
	w := a.stdout
	fmt.Fprintf(w, "Webhook %s replaces %s: %s to %s, with a new secret.\n", replacement.ID, old.ID, replacement.Event, shownURL(replacement.URL))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "New secret:\t%s\t(sensitive: keep it out of logs, tickets and source control)\n", replacement.Secret)
	if len(secrets) > 0 {
		fmt.Fprintf(tw, "Deploy to the receiver:\t%s\n", envLine(secrets))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var err error
	if c.archiveOld && archived {
		_, err = fmt.Fprintf(w, "Webhook %s is archived: only %s delivers %s now.\n", old.ID, replacement.ID, replacement.Event)
	} else {
		_, err = fmt.Fprintf(w, "Both webhooks deliver every %s event, with the same body, until you archive the old one; the receiver's\n"+
			"duplicate detection drops the second copy. Once the receiver has the new secret, run:\n"+
			"  cakemail-webhooks archive %s\n", replacement.Event, old.ID)
	}
	return err
}
