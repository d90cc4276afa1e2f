package inbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// defaultBringYourOwnWorkers is each subscriber queue's workers when
// RiverConfig is not given WithWorkers: the service's client serves other
// queues too.
const defaultBringYourOwnWorkers = 100

// RiverConfig applies to cfg, the configuration of a service's own River
// client, what the inbox's Worker and Acceptor need, so that the client
// built from it works deliveries as Open's does:
//
//   - a queue for each subscriber (River's default queue for the default
//     one, cakemail_inbox_NAME for each WithSubscriber), with WithWorkers
//     workers, 100 by default, where cfg does not have it already;
//   - CompletedJobRetentionPeriod at least the duplicate window: completed
//     jobs are how duplicates are recognised, and River forgets them after a
//     day by default;
//   - DiscardedJobRetentionPeriod and CancelledJobRetentionPeriod at least
//     the dead-letter retention;
//   - with WithTracing, River's OpenTelemetry middleware and the link from
//     each job to the request that brought it.
//
// A setting cfg already has that the inbox cannot work with (a shorter
// retention, a queue with no workers) is an error, and cfg is left as it
// was. Give the same WithSubscriber options to NewWorker and NewAcceptor.
func RiverConfig(cfg *river.Config, opts ...Option) error {
	if cfg == nil {
		return errors.New("inbox: RiverConfig(nil)")
	}
	c, err := buildConfig(forRiverConfig, opts)
	if err != nil {
		return err
	}
	for _, r := range []struct {
		name string
		have time.Duration
		want time.Duration
	}{
		{"CompletedJobRetentionPeriod", cfg.CompletedJobRetentionPeriod, c.duplicateWindow},
		{"DiscardedJobRetentionPeriod", cfg.DiscardedJobRetentionPeriod, c.deadLetterRetention},
		{"CancelledJobRetentionPeriod", cfg.CancelledJobRetentionPeriod, c.deadLetterRetention},
	} {
		// Zero is River's default (a day, or a week); a negative one keeps jobs for ever.
		if r.have > 0 && r.have < r.want {
			return fmt.Errorf("inbox: RiverConfig: %s is %s, shorter than the inbox's %s: "+
				"jobs would be forgotten sooner, and duplicates or dead letters with them", r.name, r.have, r.want)
		}
	}
	for _, q := range c.queues() {
		if qc, ok := cfg.Queues[q]; ok && qc.MaxWorkers < 1 {
			return fmt.Errorf("inbox: RiverConfig: queue %q has no workers: the inbox's deliveries would wait in it for ever", q)
		}
	}
	if cfg.CompletedJobRetentionPeriod == 0 {
		cfg.CompletedJobRetentionPeriod = c.duplicateWindow
	}
	if cfg.DiscardedJobRetentionPeriod == 0 {
		cfg.DiscardedJobRetentionPeriod = c.deadLetterRetention
	}
	if cfg.CancelledJobRetentionPeriod == 0 {
		cfg.CancelledJobRetentionPeriod = c.deadLetterRetention
	}
	workers := c.workers
	if workers == 0 {
		workers = defaultBringYourOwnWorkers
	}
	if cfg.Queues == nil {
		cfg.Queues = map[string]river.QueueConfig{}
	}
	for _, q := range c.queues() {
		if _, ok := cfg.Queues[q]; !ok {
			cfg.Queues[q] = river.QueueConfig{MaxWorkers: workers}
		}
	}
	cfg.Middleware = append(cfg.Middleware, tracingMiddleware(c)...)
	return nil
}

// queueCheckAfter is how long a queue may go without a client reporting it
// working before the Acceptor says so: River's clients report every ten
// minutes.
const queueCheckAfter = 30 * time.Minute

// checkQueues tells, once, at the first delivery, about the subscribers'
// queues that no River client works: their deliveries would be acknowledged
// and then wait for ever. It is a log line, not a refusal: the workers may
// run in other processes that have not started yet.
func (a *Acceptor) checkQueues(ctx context.Context) {
	if a.queueGet == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, name := range append([]string{DefaultSubscriber}, subscriberNamesOf(a.subscribers)...) {
		queue := DeliveryArgs{}.forSubscriber(name).InsertOpts().Queue
		q, err := a.queueGet(ctx, queue)
		switch {
		case errors.Is(err, rivertype.ErrNotFound):
			a.log.ErrorContext(ctx, "inbox: no River client has ever worked this subscriber's queue: its deliveries are acknowledged and wait; "+
				"add the queue to your client's Queues (inbox.RiverConfig does)", "subscriber", name, "queue", queue)
		case err != nil:
			a.log.WarnContext(ctx, "inbox: checking that a River client works the subscriber's queue", "queue", queue, "err", err)
		case time.Since(q.UpdatedAt) > queueCheckAfter:
			a.log.WarnContext(ctx, "inbox: no River client has reported working this subscriber's queue lately: are its workers running?",
				"subscriber", name, "queue", queue, "last_report", q.UpdatedAt)
		}
	}
}

// subscriberNamesOf are the names of subscribers.
func subscriberNamesOf(subscribers []subscriber) []string {
	names := make([]string, len(subscribers))
	for i, s := range subscribers {
		names[i] = s.name
	}
	return names
}
