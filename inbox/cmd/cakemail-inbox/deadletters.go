package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

type deadLetter struct {
	ID         int64                    `json:"id"`
	EventType  string                   `json:"event_type"`
	Subscriber string                   `json:"subscriber"`
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
		Subscriber: subscriberOf(d),
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
	return findFinished(ctx, s, deadStates, f, "dead letters")
}

func (c *cli) deadLettersList(ctx context.Context, args []string) error {
	fs := c.newFlags("deadletters list", "deadletters list [--type T] [--subscriber NAME] [--since D] [--grep TEXT] [--json]",
		"Lists the dead letters, newest first: deliveries whose attempts are exhausted (discarded)\n"+
			"or that cannot be handled as sent (cancelled), with their last error.")
	var ff filterFlags
	fs.StringVar(&ff.eventType, "type", "", "only this event type, in any documented spelling (Email.Opened, email.opened)")
	fs.StringVar(&ff.since, "since", "", "only those that died within this long (24h, 7d) or since this RFC 3339 time")
	fs.StringVar(&ff.grep, "grep", "", "only those whose body or errors contain this text (any letter case)")
	ff.subscriberFlag(fs, "dead letters")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := noPositional(fs, args); err != nil {
		return err
	}
	f, s, err := c.openFiltered(ctx, &ff, false)
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
	fmt.Fprintln(tw, "ID\tTYPE\tSUBSCRIBER\tSTATE\tATTEMPTS\tFAILED\tLAST ERROR")
	for _, dl := range list {
		failed := "-"
		if dl.FailedAt != nil {
			failed = when(*dl.FailedAt) + " (" + ago(*dl.FailedAt) + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", dl.ID, orDash(dl.EventType), dl.Subscriber, dl.State, dl.Attempts, failed, oneLine(dl.LastError, 100))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s\n", plural(len(list), "dead letter", "dead letters"))
	return nil
}

func (c *cli) deadLettersRetry(ctx context.Context, args []string) error {
	fs := c.newFlags("deadletters retry", "deadletters retry (ID... | --all) [--type T] [--subscriber NAME] [--since D] [--dry-run] [--json]",
		"Puts dead letters back in the queue, to run at once: the running receiver works them\n"+
			"again. Give their ids, or --all for every dead letter that --type and --since select.")
	var ff filterFlags
	all := fs.Bool("all", false, "every dead letter that --type, --subscriber and --since select")
	fs.StringVar(&ff.eventType, "type", "", "only this event type, in any documented spelling")
	ff.subscriberFlag(fs, "dead letters")
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
		if !slices.Contains(ids, id) { // retry 12 12 retries 12 once, and says so
			ids = append(ids, id)
		}
	}
	switch {
	case *all && len(ids) > 0:
		return usageErrorf("deadletters retry: give ids or --all, not both")
	case !*all && len(ids) == 0:
		return usageErrorf("deadletters retry: give the ids to retry, or --all")
	}
	f, s, err := c.openFiltered(ctx, &ff, false)
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
				return fmt.Errorf("job %d does not match --type, --subscriber or --since", id)
			}
			jobs = append(jobs, job)
		}
	}
	done, err := c.requeue(ctx, s, sqldb.DeadStates, jobs, *dryRun)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(c.stdout, result{DryRun: *dryRun, Subscriber: f.subscriber, Count: len(done), IDs: done})
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
	DryRun     bool    `json:"dry_run"`
	Subscriber string  `json:"subscriber,omitempty"` // as --subscriber gave it
	Count      int     `json:"count"`
	IDs        []int64 `json:"ids"`
	// Backfilled is how many of Count are a subscriber's new jobs for
	// deliveries it had none for (replay --subscriber).
	Backfilled int `json:"backfilled,omitempty"`
}

// requeue makes the jobs that are still in one of states available again,
// and returns the ids it moved: a job another command or River UI moved
// meanwhile, or that started running, is left alone and not counted.
func (c *cli) requeue(ctx context.Context, s store, states []string, jobs []*rivertype.JobRow, dryRun bool) ([]int64, error) {
	ids := make([]int64, 0, len(jobs))
	for _, job := range jobs {
		ids = append(ids, job.ID)
	}
	if dryRun {
		return ids, nil
	}
	moved, err := s.requeue(ctx, states, ids)
	if err != nil {
		if len(moved) > 0 {
			fmt.Fprintf(c.stderr, "cakemail-inbox: moved %s back to the queue before this failure\n", plural(len(moved), "job", "jobs"))
		}
		return moved, err
	}
	if left := len(ids) - len(moved); left > 0 {
		fmt.Fprintf(c.stderr, "cakemail-inbox: left %s alone: no longer %s (another command, River UI or the receiver moved them)\n",
			plural(left, "job", "jobs"), strings.Join(states, " or "))
	}
	return moved, nil
}

// printJobs lists deliveries briefly, for a dry run.
func (c *cli) printJobs(jobs []*rivertype.JobRow) {
	if len(jobs) == 0 {
		return
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tSUBSCRIBER\tSTATE\tFINISHED")
	for _, job := range jobs {
		finished := "-"
		if job.FinalizedAt != nil {
			finished = when(*job.FinalizedAt)
		}
		d := decodeDelivery(job)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", job.ID, orDash(string(d.EventType)), subscriberOf(d), job.State, finished)
	}
	tw.Flush()
}
