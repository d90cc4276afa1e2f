package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/cakemail-go/webhooks"
)

var deadStates = []rivertype.JobState{rivertype.JobStateDiscarded, rivertype.JobStateCancelled}

// delivery is a job's args, as the inbox writes them.
type delivery struct {
	BodySHA256 string             `json:"body_sha256"`
	EventType  webhooks.EventType `json:"event_type"`
	Body       []byte             `json:"body"`
}

func decodeDelivery(job *rivertype.JobRow) delivery {
	var d delivery
	json.Unmarshal(job.EncodedArgs, &d) //nolint:errcheck // an undecodable job lists with what it has
	return d
}

// filter selects deliveries by type, finalization time and text.
type filter struct {
	eventType    webhooks.EventType // canonical; "" for any
	since, until time.Time          // zero for unbounded
	grep         string             // lower case; "" for any
}

// filterFlags are the flags as given; parse checks them.
type filterFlags struct {
	eventType, since, until, grep string
}

func (ff *filterFlags) parse(requireSince bool) (filter, error) {
	var f filter
	if ff.eventType != "" {
		t, err := webhooks.ParseEventType(ff.eventType)
		if err != nil {
			return f, usageErrorf("--type: %s", err)
		}
		f.eventType = t
	}
	var err error
	if requireSince && ff.since == "" {
		return f, usageErrorf("--since is required, e.g. --since 24h")
	}
	if f.since, err = parseWhen("--since", ff.since); err != nil {
		return f, err
	}
	if f.until, err = parseWhen("--until", ff.until); err != nil {
		return f, err
	}
	if !f.since.IsZero() && !f.until.IsZero() && f.until.Before(f.since) {
		return f, usageErrorf("--until is before --since")
	}
	f.grep = strings.ToLower(ff.grep)
	return f, nil
}

// finalizedIn reports whether the job finished within the filter's window.
func (f filter) finalizedIn(job *rivertype.JobRow) bool {
	if job.FinalizedAt == nil {
		return f.since.IsZero() && f.until.IsZero()
	}
	return (f.since.IsZero() || !job.FinalizedAt.Before(f.since)) && (f.until.IsZero() || !job.FinalizedAt.After(f.until))
}

func (f filter) matches(job *rivertype.JobRow) bool {
	if !f.finalizedIn(job) {
		return false
	}
	d := decodeDelivery(job)
	if f.eventType != "" && d.EventType != f.eventType {
		return false
	}
	if f.grep != "" {
		if bytes.Contains(bytes.ToLower(d.Body), []byte(f.grep)) {
			return true
		}
		for _, e := range job.Errors {
			if strings.Contains(strings.ToLower(e.Error), f.grep) {
				return true
			}
		}
		return false
	}
	return true
}

// pastSince reports whether a job listed newest finalized first is older than
// the window, and so are all after it.
func (f filter) pastSince(job *rivertype.JobRow) bool {
	return !f.since.IsZero() && job.FinalizedAt != nil && job.FinalizedAt.Before(f.since)
}

// parseWhen reads a time: a duration before now (90m, 24h, 7d, 1d12h) or an
// RFC 3339 time. "" is the zero time.
func parseWhen(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := parseDuration(s)
	if err != nil {
		return time.Time{}, usageErrorf("%s %q: want a duration like 90m, 24h or 7d, or an RFC 3339 time", name, s)
	}
	return now().Add(-d), nil
}

// parseDuration is time.ParseDuration with days: 7d, 1d12h.
func parseDuration(s string) (time.Duration, error) {
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("bad days in %q", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			s = "0s"
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d += days; d <= 0 {
		return 0, fmt.Errorf("not a positive duration")
	}
	return d, nil
}

// status prints the queue's counts.
func (c *cli) status(ctx context.Context, args []string) error {
	fs := c.newFlags("status", "status [--json]",
		"Deliveries waiting, running, retrying and dead; the oldest waiting; the last hour's completed.")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := noPositional(fs, args); err != nil {
		return err
	}
	s, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	counts, err := s.counts(ctx)
	if err != nil {
		return fmt.Errorf("reading the queue: %w", err)
	}
	oldest, err := s.oldestWaiting(ctx)
	if err != nil {
		return fmt.Errorf("reading the queue: %w", err)
	}
	out := struct {
		Waiting              int64      `json:"waiting"`
		Running              int64      `json:"running"`
		Retrying             int64      `json:"retrying"`
		Dead                 int64      `json:"dead"`
		OldestWaitingAt      *time.Time `json:"oldest_waiting_at"`
		OldestWaitingSeconds float64    `json:"oldest_waiting_seconds"`
		CompletedLastHour    int64      `json:"completed_last_hour"`
	}{counts.Waiting, counts.Running, counts.Retrying, counts.Dead, nil, 0, counts.CompletedLastHour}
	if oldest != nil {
		at := oldest.ScheduledAt.UTC()
		out.OldestWaitingAt = &at
		out.OldestWaitingSeconds = max(now().Sub(at).Seconds(), 0)
	}
	if *asJSON {
		return writeJSON(c.stdout, out)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "waiting\t%d\n", out.Waiting)
	fmt.Fprintf(tw, "running\t%d\n", out.Running)
	fmt.Fprintf(tw, "retrying\t%d\n", out.Retrying)
	fmt.Fprintf(tw, "dead\t%d\n", out.Dead)
	if oldest != nil {
		fmt.Fprintf(tw, "oldest waiting\t%s (%s)\n", ago(oldest.ScheduledAt), when(oldest.ScheduledAt))
	} else {
		fmt.Fprintf(tw, "oldest waiting\t-\n")
	}
	fmt.Fprintf(tw, "completed, last hour\t%d\n", out.CompletedLastHour)
	return tw.Flush()
}

// deadLetter is one dead letter as listed.
type deadLetter struct {
	ID         int64                    `json:"id"`
	EventType  string                   `json:"event_type"`
	State      string                   `json:"state"`
	Attempts   int                      `json:"attempts"`
	LastError  string                   `json:"last_error"`
	FailedAt   *time.Time               `json:"failed_at"`
	BodySHA256 string                   `json:"body_sha256"`
	Errors     []rivertype.AttemptError `json:"errors"`
}

func newDeadLetter(job *rivertype.JobRow) deadLetter {
	d := decodeDelivery(job)
	dl := deadLetter{
		ID:         job.ID,
		EventType:  string(d.EventType),
		State:      string(job.State),
		Attempts:   job.Attempt,
		FailedAt:   job.FinalizedAt,
		BodySHA256: d.BodySHA256,
		Errors:     job.Errors,
	}
	if dl.Errors == nil {
		dl.Errors = []rivertype.AttemptError{}
	}
	if n := len(job.Errors); n > 0 {
		dl.LastError = job.Errors[n-1].Error
		at := job.Errors[n-1].At
		dl.FailedAt = &at
	}
	if dl.FailedAt != nil {
		at := dl.FailedAt.UTC()
		dl.FailedAt = &at
	}
	return dl
}

// findDeadLetters lists the dead letters that match f, newest first.
func findDeadLetters(ctx context.Context, s store, f filter) ([]*rivertype.JobRow, error) {
	var jobs []*rivertype.JobRow
	err := s.list(ctx, deadStates, true, func(job *rivertype.JobRow) bool {
		if f.pastSince(job) {
			return false
		}
		if f.matches(job) {
			jobs = append(jobs, job)
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("listing dead letters: %w", err)
	}
	return jobs, nil
}

func (c *cli) deadLettersList(ctx context.Context, args []string) error {
	fs := c.newFlags("deadletters list", "deadletters list [--type T] [--since D] [--grep TEXT] [--json]",
		"Lists the dead letters, newest first: deliveries whose attempts are exhausted (discarded)\n"+
			"or that cannot be handled as sent (cancelled), with their last error.")
	var ff filterFlags
	fs.StringVar(&ff.eventType, "type", "", "only this event type, in any documented spelling (Email.Opened, email.opened)")
	fs.StringVar(&ff.since, "since", "", "only those that died within this long (24h, 7d) or since this RFC 3339 time")
	fs.StringVar(&ff.grep, "grep", "", "only those whose body or errors contain this text (any letter case)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := noPositional(fs, args); err != nil {
		return err
	}
	f, err := ff.parse(false)
	if err != nil {
		return err
	}
	s, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	jobs, err := findDeadLetters(ctx, s, f)
	if err != nil {
		return err
	}
	list := make([]deadLetter, 0, len(jobs))
	for _, job := range jobs {
		list = append(list, newDeadLetter(job))
	}
	if *asJSON {
		return writeJSON(c.stdout, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(c.stdout, "no dead letters")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tSTATE\tATTEMPTS\tFAILED\tLAST ERROR")
	for _, dl := range list {
		failed := "-"
		if dl.FailedAt != nil {
			failed = when(*dl.FailedAt) + " (" + ago(*dl.FailedAt) + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", dl.ID, orDash(dl.EventType), dl.State, dl.Attempts, failed, oneLine(dl.LastError, 100))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s\n", plural(len(list), "dead letter", "dead letters"))
	return nil
}

func (c *cli) deadLettersRetry(ctx context.Context, args []string) error {
	fs := c.newFlags("deadletters retry", "deadletters retry (ID... | --all) [--type T] [--since D] [--dry-run] [--json]",
		"Puts dead letters back in the queue, to run at once: the running receiver works them\n"+
			"again. Give their ids, or --all for every dead letter that --type and --since select.")
	var ff filterFlags
	all := fs.Bool("all", false, "every dead letter that --type and --since select")
	fs.StringVar(&ff.eventType, "type", "", "only this event type, in any documented spelling")
	fs.StringVar(&ff.since, "since", "", "only those that died within this long (24h, 7d) or since this RFC 3339 time")
	dryRun := fs.Bool("dry-run", false, "say what would be retried; change nothing")
	asJSON := fs.Bool("json", false, "print JSON")
	positional, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	var ids []int64
	for _, a := range positional {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id <= 0 {
			return usageErrorf("deadletters retry: %q is not a job id", a)
		}
		ids = append(ids, id)
	}
	switch {
	case *all && len(ids) > 0:
		return usageErrorf("deadletters retry: give ids or --all, not both")
	case !*all && len(ids) == 0:
		return usageErrorf("deadletters retry: give the ids to retry, or --all")
	}
	f, err := ff.parse(false)
	if err != nil {
		return err
	}
	s, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer s.close()

	var jobs []*rivertype.JobRow
	if *all {
		if jobs, err = findDeadLetters(ctx, s, f); err != nil {
			return err
		}
	} else {
		// Every id is checked before any is retried: a typo changes nothing.
		for _, id := range ids {
			job, err := s.get(ctx, id)
			if err != nil {
				return err
			}
			switch {
			case job.Kind != deliveryKind:
				return fmt.Errorf("job %d is not a delivery (kind %s)", id, job.Kind)
			case job.State != rivertype.JobStateDiscarded && job.State != rivertype.JobStateCancelled:
				return fmt.Errorf("job %d is not a dead letter: it is %s", id, job.State)
			case !f.matches(job):
				return fmt.Errorf("job %d does not match --type or --since", id)
			}
			jobs = append(jobs, job)
		}
	}
	done, err := c.retryAll(ctx, s, jobs, *dryRun)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(c.stdout, result{DryRun: *dryRun, Count: len(done), IDs: done})
	}
	switch {
	case *dryRun:
		c.printJobs(jobs)
		fmt.Fprintf(c.stdout, "would retry %s (dry run: nothing changed)\n", plural(len(done), "dead letter", "dead letters"))
	default:
		fmt.Fprintf(c.stdout, "retried %s: the running receiver works them now\n", plural(len(done), "dead letter", "dead letters"))
	}
	return nil
}

// result is what retry and replay did.
type result struct {
	DryRun bool    `json:"dry_run"`
	Count  int     `json:"count"`
	IDs    []int64 `json:"ids"`
}

// retryAll makes jobs available again and returns the ids it changed; a job
// that started running meanwhile is left alone.
func (c *cli) retryAll(ctx context.Context, s store, jobs []*rivertype.JobRow, dryRun bool) ([]int64, error) {
	done := []int64{}
	for _, job := range jobs {
		if dryRun {
			done = append(done, job.ID)
			continue
		}
		row, err := s.retry(ctx, job.ID)
		if err != nil {
			if len(done) > 0 {
				fmt.Fprintf(c.stderr, "cakemail-inbox: retried %s before this failure\n", plural(len(done), "job", "jobs"))
			}
			return done, fmt.Errorf("retrying job %d: %w", job.ID, err)
		}
		if row.State == rivertype.JobStateAvailable {
			done = append(done, job.ID)
		}
	}
	return done, nil
}

// printJobs lists deliveries briefly, for a dry run.
func (c *cli) printJobs(jobs []*rivertype.JobRow) {
	if len(jobs) == 0 {
		return
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tSTATE\tFINISHED")
	for _, job := range jobs {
		finished := "-"
		if job.FinalizedAt != nil {
			finished = when(*job.FinalizedAt)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", job.ID, orDash(string(decodeDelivery(job).EventType)), job.State, finished)
	}
	tw.Flush()
}

const replayWarning = "warning: a replay runs the handlers again. Effects in the delivery's transaction are written again\n" +
	"(the handler sees inbox.Delivery.Attempt > 1), and effects outside it (emails sent, calls to\n" +
	"other services) happen again.\n"

func (c *cli) replay(ctx context.Context, args []string) error {
	fs := c.newFlags("replay", "replay --since D [--until D] [--type T] [--dry-run] [--json]",
		"Runs completed deliveries through the handlers again, for after a handler bug is fixed:\n"+
			"they are made available, and the running receiver's workers run them. Completed\n"+
			"deliveries are kept for the duplicate window (7 days by default).\n\n"+replayWarning)
	var ff filterFlags
	fs.StringVar(&ff.since, "since", "", "deliveries completed within this long (24h, 7d) or since this RFC 3339 time (required)")
	fs.StringVar(&ff.until, "until", "", "and completed before this long ago, or this RFC 3339 time")
	fs.StringVar(&ff.eventType, "type", "", "only this event type, in any documented spelling")
	dryRun := fs.Bool("dry-run", false, "say what would be replayed; change nothing")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := noPositional(fs, args); err != nil {
		return err
	}
	f, err := ff.parse(true)
	if err != nil {
		return err
	}
	s, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	var jobs []*rivertype.JobRow
	err = s.list(ctx, []rivertype.JobState{rivertype.JobStateCompleted}, true, func(job *rivertype.JobRow) bool {
		if f.pastSince(job) {
			return false
		}
		if f.matches(job) {
			jobs = append(jobs, job)
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("listing completed deliveries: %w", err)
	}
	fmt.Fprint(c.stderr, replayWarning)
	done, err := c.retryAll(ctx, s, jobs, *dryRun)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(c.stdout, result{DryRun: *dryRun, Count: len(done), IDs: done})
	}
	what := plural(len(done), "completed delivery", "completed deliveries")
	if f.eventType != "" {
		what += " of " + string(f.eventType)
	}
	window := "since " + when(f.since)
	if !f.until.IsZero() {
		window += ", until " + when(f.until)
	}
	if *dryRun {
		c.printJobs(jobs)
		fmt.Fprintf(c.stdout, "would replay %s finished %s (dry run: nothing changed)\n", what, window)
		return nil
	}
	fmt.Fprintf(c.stdout, "replayed %s finished %s: the running receiver runs their handlers again\n", what, window)
	return nil
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
