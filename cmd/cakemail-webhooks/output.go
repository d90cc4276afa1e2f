package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/cakemail-go/webhooks"
)

// webhookView is a webhook as the json format prints it: the API's field names,
// plus the events list of Cakemail's CLI reference (always one event), so that
// its jq pipelines such as jq '.events' work.
type webhookView struct {
	ID              string                   `json:"id"`
	Event           webhooks.EventType       `json:"event"`
	Events          []webhooks.EventType     `json:"events"`
	URL             string                   `json:"url"`
	Status          webhooks.Status          `json:"status"`
	RateLimit       int                      `json:"rate_limit"`
	RateLimitPeriod webhooks.RateLimitPeriod `json:"rate_limit_period"`
	ArchivedAt      *time.Time               `json:"archived_at"`
	Secret          string                   `json:"secret,omitempty"`
	HashFunction    string                   `json:"hash_function,omitempty"`
}

// listView is the json format of several webhooks, as in Cakemail's CLI docs.
type listView struct {
	Data  []webhookView `json:"data"`
	Count int           `json:"count"`
}

func viewOf(h *webhooks.Webhook) webhookView {
	v := webhookView{
		ID: h.ID, Event: h.Event, Events: []webhooks.EventType{h.Event}, URL: h.URL, Status: h.Status, RateLimit: h.RateLimit,
		RateLimitPeriod: h.RateLimitPeriod, Secret: h.Secret, HashFunction: h.HashFunction,
	}
	if !h.ArchivedAt.IsZero() {
		at := h.ArchivedAt.UTC()
		v.ArchivedAt = &at
	}
	return v
}

func viewsOf(hooks []*webhooks.Webhook) []webhookView {
	views := make([]webhookView, len(hooks))
	for i, h := range hooks {
		views[i] = viewOf(h)
	}
	return views
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeTable(w io.Writer, hooks []*webhooks.Webhook, footer string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEVENT\tSTATUS\tRATE LIMIT\tURL")
	for _, h := range hooks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.ID, h.Event, h.Status, rate(h), h.URL)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, footer)
	return err
}

func rate(h *webhooks.Webhook) string {
	return strconv.Itoa(h.RateLimit) + "/" + string(h.RateLimitPeriod)
}

// writeDetail prints one webhook as label-value lines.
func writeDetail(w io.Writer, h *webhooks.Webhook) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ID:\t%s\n", h.ID)
	fmt.Fprintf(tw, "Event:\t%s\n", h.Event)
	fmt.Fprintf(tw, "URL:\t%s\n", h.URL)
	fmt.Fprintf(tw, "Status:\t%s\n", h.Status)
	fmt.Fprintf(tw, "Rate limit:\t%s\n", rate(h))
	if !h.ArchivedAt.IsZero() {
		fmt.Fprintf(tw, "Archived at:\t%s\n", h.ArchivedAt.UTC().Format(time.RFC3339))
	}
	if h.Secret != "" {
		fmt.Fprintf(tw, "Secret:\t%s\t(sensitive: keep it out of logs, tickets and source control)\n", h.Secret)
		fmt.Fprintf(tw, "Hash function:\t%s\n", h.HashFunction)
	}
	return tw.Flush()
}

// writeOne reports a webhook a command changed.
func writeOne(w io.Writer, format string, h *webhooks.Webhook, done string) error {
	if format == "json" {
		return writeJSON(w, viewOf(h))
	}
	if _, err := fmt.Fprintf(w, "Webhook %s %s.\n", h.ID, done); err != nil {
		return err
	}
	return writeDetail(w, h)
}
