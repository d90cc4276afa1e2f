package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/cakemail-go/webhooks/inbox"
	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

func (c *cli) status(ctx context.Context, args []string) error {
	fs := c.newFlags("status", "status [--subscriber NAME] [--json]",
		"Deliveries waiting, running, retrying and dead; the oldest waiting; the last hour's completed,\n"+
			"and of those the stale ones: completed without running, a later event for their order key applied.")
	var ff filterFlags
	ff.subscriberFlag(fs, "jobs")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := noPositional(fs, args); err != nil {
		return err
	}
	f, s, err := c.openFiltered(ctx, &ff, false)
	if err != nil {
		return err
	}
	defer s.close()
	counts, err := s.counts(ctx, f.subscriber)
	if err != nil {
		return fmt.Errorf("reading the queue: %w", err)
	}
	oldest, err := s.oldestWaiting(ctx, f.subscriber)
	if err != nil {
		return fmt.Errorf("reading the queue: %w", err)
	}
	out := struct {
		Subscriber           string     `json:"subscriber,omitempty"`
		Waiting              int64      `json:"waiting"`
		Running              int64      `json:"running"`
		Retrying             int64      `json:"retrying"`
		Dead                 int64      `json:"dead"`
		OldestWaitingAt      *time.Time `json:"oldest_waiting_at"`
		OldestWaitingSeconds float64    `json:"oldest_waiting_seconds"`
		CompletedLastHour    int64      `json:"completed_last_hour"`
		StaleLastHour        int64      `json:"stale_last_hour"`
	}{f.subscriber, counts.Waiting, counts.Running, counts.Retrying, counts.Dead, nil, 0, counts.CompletedLastHour, counts.StaleLastHour}
	if oldest != nil {
		at := oldest.ScheduledAt.UTC()
		out.OldestWaitingAt = &at
		out.OldestWaitingSeconds = max(now().Sub(at).Seconds(), 0)
	}
	if *asJSON {
		return writeJSON(c.stdout, out)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	if f.subscriber != "" {
		fmt.Fprintf(tw, "subscriber\t%s\n", f.subscriber)
	}
	fmt.Fprintf(tw, "waiting\t%d\n", out.Waiting)
	fmt.Fprintf(tw, "running\t%d\n", out.Running)
	fmt.Fprintf(tw, "retrying\t%d\n", out.Retrying)
	fmt.Fprintf(tw, "dead\t%d\n", out.Dead)
	if oldest != nil {
		fmt.Fprintf(tw, "oldest waiting\t%s (%s)\n", ago(oldest.ScheduledAt), when(oldest.ScheduledAt))
	} else {
		fmt.Fprintf(tw, "oldest waiting\t-\n")
	}
	fmt.Fprintf(tw, "completed, last hour\t%d (stale: %d)\n", out.CompletedLastHour, out.StaleLastHour)
	return tw.Flush()
}

// replayWarning is printed by every replay, and in its help.
const replayWarning = "warning: a replay runs the handlers again. Effects in the delivery's transaction are written again\n" +
	"(the handler sees inbox.Delivery.Attempt > 1), and effects outside it (emails sent, calls to\n" +
	"other services) happen again.\n"

func (c *cli) replay(ctx context.Context, args []string) error {
	fs := c.newFlags("replay", "replay --since D [--until D] [--type T] [--subscriber NAME] [--dry-run] [--json]",
		"Runs completed deliveries through the handlers again, for after a handler bug is fixed:\n"+
			"they are made available, and the running receiver's workers run them. Completed\n"+
			"deliveries are kept for the duplicate window (7 days by default).\n\n"+
			"With --subscriber NAME, only that subscriber's jobs run again, and a subscriber added\n"+
			"after some deliveries arrived gets a job for each of them that it lacks: the way to\n"+
			"backfill it (jobs of types its router does not handle complete without running).\n\n"+replayWarning)
	var ff filterFlags
	fs.StringVar(&ff.since, "since", "", "deliveries completed within this long (24h, 7d) or since this RFC 3339 time (required)")
	fs.StringVar(&ff.until, "until", "", "and completed before this long ago, or this RFC 3339 time")
	fs.StringVar(&ff.eventType, "type", "", "only this event type, in any documented spelling")
	ff.subscriberFlag(fs, "jobs")
	dryRun := fs.Bool("dry-run", false, "say what would be replayed; change nothing")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := noPositional(fs, args); err != nil {
		return err
	}
	f, s, err := c.openFiltered(ctx, &ff, true)
	if err != nil {
		return err
	}
	defer s.close()
	jobs, err := findCompleted(ctx, s, f)
	if err != nil {
		return err
	}
	var missing []inbox.DeliveryArgs
	if f.subscriber != "" && f.subscriber != inbox.DefaultSubscriber {
		if missing, err = findMissing(ctx, s, f); err != nil {
			return err
		}
	}
	fmt.Fprint(c.stderr, replayWarning)
	if !*dryRun {
		if err := waitSettled(ctx, jobs); err != nil {
			return err
		}
	}
	done, err := c.requeue(ctx, s, sqldb.CompletedStates, jobs, *dryRun)
	if err != nil {
		return err
	}
	backfilled := len(missing)
	if !*dryRun && len(missing) > 0 {
		inserted, err := s.insert(ctx, missing)
		if err != nil {
			return fmt.Errorf("backfilling subscriber %s: %w", f.subscriber, err)
		}
		backfilled = len(inserted)
		done = append(done, inserted...)
	}
	if *asJSON {
		return writeJSON(c.stdout, result{DryRun: *dryRun, Subscriber: f.subscriber, Count: len(done), IDs: done, Backfilled: backfilled})
	}
	what := plural(len(done)-backfilled, "completed delivery", "completed deliveries")
	if f.eventType != "" {
		what += " of " + string(f.eventType)
	}
	if f.subscriber != "" {
		what += " for subscriber " + f.subscriber
	}
	window := "since " + when(f.since)
	if !f.until.IsZero() {
		window += ", until " + when(f.until)
	}
	if backfilled > 0 {
		window += fmt.Sprintf(", and %s it had no job for", plural(backfilled, "delivery", "deliveries"))
	}
	if *dryRun {
		c.printJobs(jobs)
		fmt.Fprintf(c.stdout, "would replay %s finished %s (dry run: nothing changed)\n", what, window)
		return nil
	}
	fmt.Fprintf(c.stdout, "replayed %s finished %s: the running receiver runs their handlers again\n", what, window)
	return nil
}

// waitSettled waits until the newest of jobs completed sqldb.CompletedSettle
// ago, so that a delivery that has just completed is replayed, not left
// alone (a little more, for the database's clock and this one's to differ).
func waitSettled(ctx context.Context, jobs []*rivertype.JobRow) error {
	var newest time.Time
	for _, job := range jobs {
		if job.FinalizedAt != nil && job.FinalizedAt.After(newest) {
			newest = *job.FinalizedAt
		}
	}
	wait := time.Until(newest.Add(sqldb.CompletedSettle + 500*time.Millisecond))
	if wait <= 0 {
		return nil
	}
	select {
	case <-time.After(min(wait, sqldb.CompletedSettle+time.Second)):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// findCompleted lists the completed deliveries that match f, newest first.
func findCompleted(ctx context.Context, s store, f filter) ([]*rivertype.JobRow, error) {
	return findFinished(ctx, s, []rivertype.JobState{rivertype.JobStateCompleted}, f, "completed deliveries")
}

// findFinished lists the deliveries in states, all finished ones, that
// match f, newest first: the list stops at the first one past --since.
func findFinished(ctx context.Context, s store, states []rivertype.JobState, f filter, what string) ([]*rivertype.JobRow, error) {
	var jobs []*rivertype.JobRow
	err := s.list(ctx, states, true, func(job *rivertype.JobRow) bool {
		if f.pastSince(job) {
			return false
		}
		if f.matches(job) {
			jobs = append(jobs, job)
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", what, err)
	}
	return jobs, nil
}

// findMissing is the backfill of an added subscriber: a job of its own for
// each delivery that f selects (by the default subscriber's completed jobs,
// which every delivery has) and that it has no job for, in any state.
func findMissing(ctx context.Context, s store, f filter) ([]inbox.DeliveryArgs, error) {
	has := map[string]bool{}
	mine := filter{subscriber: f.subscriber}
	err := s.list(ctx, allStates, false, func(job *rivertype.JobRow) bool {
		if mine.matches(job) {
			has[decodeDelivery(job).BodySHA256] = true
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("listing subscriber %s's jobs: %w", f.subscriber, err)
	}
	source := f
	source.subscriber = inbox.DefaultSubscriber
	delivered, err := findCompleted(ctx, s, source)
	if err != nil {
		return nil, err
	}
	var missing []inbox.DeliveryArgs
	for _, job := range delivered {
		d := decodeDelivery(job)
		if !has[d.BodySHA256] {
			d.Subscriber = f.subscriber
			missing = append(missing, d)
		}
	}
	return missing, nil
}

func noPositional(fs *flags, args []string) error {
	positional, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(positional) > 0 {
		return usageErrorf("%s: unexpected argument %q", fs.Name(), positional[0])
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func when(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

func ago(t time.Time) string {
	d := now().Sub(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return d.Round(time.Second).String() + " ago"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine fits an error in a table cell.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}
