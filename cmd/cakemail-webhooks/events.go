package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/cakemail-go/webhooks"
)

// parseEvents reads every -e (comma-separated lists, repeated flags), checks
// every name before anything is sent, and drops repeats. The events only
// Cakemail's guide names are kept, with a warning, since the server decides.
func (a *app) parseEvents(c *invocation) ([]webhooks.EventType, error) {
	var out []webhooks.EventType
	var bad []string
	seen := map[webhooks.EventType]bool{}
	for _, list := range c.events {
		for _, name := range strings.Split(list, ",") {
			if strings.TrimSpace(name) == "" {
				continue
			}
			t, err := webhooks.ParseEventType(strings.TrimSpace(name))
			if err != nil {
				bad = append(bad, message(err))
				continue
			}
			if !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w; nothing was sent", unknownEvents(bad))
	}
	if len(out) == 0 {
		return nil, usagef("%s names no event", c.spelled("events"))
	}
	for _, t := range out {
		if t.GuideOnly() {
			a.warnf("%s is named in Cakemail's webhook guide but not in its API description: the server may refuse it", t)
		}
	}
	return out, nil
}

// unknownEvents is every bad name of one command line, as one error.
func unknownEvents(msgs []string) error {
	for i, m := range msgs {
		m = strings.TrimPrefix(m, "unknown event type ")
		if before, after, ok := strings.Cut(m, "; did you mean "); ok {
			m = before + " (did you mean " + after + ")"
		}
		msgs[i] = m
	}
	noun := "unknown event type"
	if len(msgs) > 1 {
		noun = "unknown event types"
	}
	return fmt.Errorf("%w %s", errUnknownEvents{noun}, strings.Join(msgs, ", "))
}

// errUnknownEvents reads as the CLI's words but still matches ErrUnknownEventType.
type errUnknownEvents struct{ noun string }

func (e errUnknownEvents) Error() string { return e.noun }
func (e errUnknownEvents) Unwrap() error { return webhooks.ErrUnknownEventType }

func runEvents(_ context.Context, a *app, c *invocation) error {
	if err := c.noArgs(); err != nil {
		return err
	}
	if c.format == "json" {
		return writeJSON(a.stdout, webhooks.EventTypes())
	}
	var b strings.Builder
	for _, t := range webhooks.EventTypes() {
		b.WriteString(string(t))
		if t.GuideOnly() {
			b.WriteString("\t(named only in Cakemail's guide; the API description does not list it)")
		}
		b.WriteString("\n")
	}
	_, err := fmt.Fprint(a.stdout, b.String())
	return err
}
