package inbox

import (
	"context"
	"fmt"

	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

// Each subscriber's jobs wait in a queue of its own (sqldb.Queue), which only
// processes configured with that subscriber work. A subscriber removed from
// the configuration would leave its jobs waiting for ever: every running
// process records the queues it works, and jobs waiting in a subscriber's
// queue that no live process works become dead letters that say why. During
// a rolling deploy that adds a subscriber, the processes that do not know it
// yet simply leave its jobs to those that do.

// clientQueuesTable holds the queues each running process works.
const clientQueuesTable = `CREATE TABLE IF NOT EXISTS cakemail_inbox_client_queue (
	client_id TEXT NOT NULL,
	queue TEXT NOT NULL,
	PRIMARY KEY (client_id, queue)
)`

// queues are the River queues of the default subscriber and those added.
func (c *config) queues() []string {
	q := []string{sqldb.Queue(DefaultSubscriber)}
	for _, s := range c.subscribers {
		q = append(q, sqldb.Queue(s.name))
	}
	return q
}

// subscriberNames are the default subscriber's name and those added.
func (c *config) subscriberNames() []string {
	names := []string{DefaultSubscriber}
	for _, s := range c.subscribers {
		names = append(names, s.name)
	}
	return names
}

// advertiseQueues records the queues this process works.
func advertiseQueues(ctx context.Context, db sqldb.Conn, clientID string, queues []string) error {
	for _, q := range queues {
		if _, err := db.Exec(ctx, `INSERT INTO cakemail_inbox_client_queue (client_id, queue) VALUES ($1, $2)
			ON CONFLICT (client_id, queue) DO NOTHING`, clientID, q); err != nil {
			return err
		}
	}
	return nil
}

// forgetQueues removes the queues of this process, or of processes whose
// heartbeat row is gone.
func forgetQueues(ctx context.Context, db sqldb.Conn, clientID string) error {
	_, err := db.Exec(ctx, `DELETE FROM cakemail_inbox_client_queue
		WHERE client_id = $1 OR client_id NOT IN (SELECT id FROM cakemail_inbox_client)`, clientID)
	return err
}

// deadLetterOrphans makes dead letters of the jobs waiting in subscriber
// queues that no process with a heartbeat younger than deadAfter works, and
// reports how many, by subscriber.
func deadLetterOrphans(ctx context.Context, db sqldb.Conn) (map[string]int64, error) {
	orphans, err := db.QueryStrings(ctx, `SELECT DISTINCT queue FROM river_job
		WHERE kind = $1 AND state IN ('available', 'retryable', 'scheduled') AND queue LIKE $2 ESCAPE '\'
		AND queue NOT IN (SELECT q.queue FROM cakemail_inbox_client_queue q
			JOIN cakemail_inbox_client c ON c.id = q.client_id
			WHERE c.heartbeat_at > `+db.NowMillis()+` - $3)`,
		DeliveryArgs{}.Kind(), sqldb.SubscriberQueuePattern, deadAfter.Milliseconds())
	if err != nil {
		return nil, err
	}
	moved := map[string]int64{}
	for _, queue := range orphans {
		name := sqldb.Subscriber(queue)
		why := fmt.Sprintf("inbox: no running inbox has subscriber %q (removed from the configuration?): "+
			"retry it with cakemail-inbox deadletters retry --subscriber %s once one does", name, name)
		// The queue is checked again in the same statement: a process that
		// started working it meanwhile keeps its jobs.
		n, err := db.Exec(ctx, `UPDATE river_job SET state = 'cancelled', finalized_at = `+db.Now()+`,
			errors = `+db.ErrorsWith("$3")+`
			WHERE kind = $1 AND queue = $2 AND state IN ('available', 'retryable', 'scheduled')
			AND NOT EXISTS (SELECT 1 FROM cakemail_inbox_client_queue q
				JOIN cakemail_inbox_client c ON c.id = q.client_id
				WHERE q.queue = $2 AND c.heartbeat_at > `+db.NowMillis()+` - $4)`,
			DeliveryArgs{}.Kind(), queue, why, deadAfter.Milliseconds())
		if err != nil {
			return moved, err
		}
		if n > 0 {
			moved[name] = n
		}
	}
	return moved, nil
}

// orphanSweepBeats is how many heartbeats apart the sweep runs.
const orphanSweepBeats = 5

// deadLetterOrphans runs the sweep and logs what it moved.
func (l *liveness) deadLetterOrphans(ctx context.Context) {
	moved, err := deadLetterOrphans(ctx, l.db)
	if err != nil {
		l.log.Warn("inbox: looking for the jobs of removed subscribers", "err", err)
	}
	for name, n := range moved {
		l.log.Error("inbox: no running inbox has this subscriber: its waiting jobs are now dead letters",
			"subscriber", name, "jobs", n)
	}
}
