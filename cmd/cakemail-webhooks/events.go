package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/cakemail-go/webhooks"
)

// parseEvents reads every -e (comma-separated lists, repeated flags), checks
// every name before anything is sent, and drops repeats. The events only
// Cakemail's guide names are refused like unknown names: the API answers 422
// to them, and a create or apply stopped part-way helps no one.
func (a *app) parseEvents(c *invocation) ([]webhooks.EventType, error) {
	var out []webhooks.EventType
	var unknown, guideOnly []string
	seen := map[webhooks.EventType]bool{}
	for _, list := range c.events {
		for _, name := range strings.Split(list, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			t, err := webhooks.ParseEventType(name)
			switch {
			case err != nil:
				unknown = append(unknown, unknownEvent(message(err)))
				continue
			case t.GuideOnly():
				what := fmt.Sprintf("%q (%s, named only in Cakemail's guide: the API refuses it)", name, t)
				if name == string(t) {
					what = fmt.Sprintf("%q (named only in Cakemail's guide: the API refuses it)", name)
				}
				if !containsString(guideOnly, what) {
					guideOnly = append(guideOnly, what)
				}
				continue
			}
			if !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
	}
	if len(unknown)+len(guideOnly) > 0 {
		return nil, fmt.Errorf("%w; nothing was sent", badEvents(unknown, guideOnly))
	}
	if len(out) == 0 {
		return nil, usagef("%s names no event", c.spelled("events"))
	}
	return out, nil
}

// unknownEvent is the SDK's message for an unknown name, in the CLI's words.
func unknownEvent(m string) string {
	m = strings.TrimPrefix(m, "unknown event type ")
	if before, after, ok := strings.Cut(m, "; did you mean "); ok {
		m = before + " (did you mean " + after + ")"
	}
	return m
}

// badEvents is every name of one command line the API would refuse, as one error.
func badEvents(unknown, guideOnly []string) error {
	n := len(unknown) + len(guideOnly)
	noun := "unknown event type"
	if len(unknown) == 0 {
		noun = "event type the API does not accept:"
		if n > 1 {
			noun = "event types the API does not accept:"
		}
	} else if n > 1 {
		noun = "unknown event types"
	}
	return fmt.Errorf("%w %s", errUnknownEvents{noun}, strings.Join(append(unknown, guideOnly...), ", "))
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
			b.WriteString("\t(named only in Cakemail's guide; the API does not accept it: create and apply refuse it)")
		}
		b.WriteString("\n")
	}
	_, err := fmt.Fprint(a.stdout, b.String())
	return err
}
