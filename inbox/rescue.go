package inbox

import (
	"context"

	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

// rescue makes the running jobs of dead processes available again. It judges
// others only after beating without a failure for deadAfter itself: after a
// database outage every process's heartbeat is old, and the others need as
// long as this one to beat again. One owner's failure (a statement cut short,
// a row the database refuses) is logged and leaves the others' rescue to go
// on; only failing to list the owners is returned.
func (l *liveness) rescue(ctx context.Context) error {
	if !l.steady() {
		return nil
	}
	owners, err := l.db.QueryStrings(ctx, `SELECT DISTINCT `+l.db.LastAttemptedBy()+` AS owner FROM river_job
		WHERE state = 'running' AND kind = $1 AND `+l.db.LastAttemptedBy()+` IS NOT NULL ORDER BY owner`, DeliveryArgs{}.Kind())
	if err != nil {
		return err
	}
	for _, owner := range owners {
		if ctx.Err() != nil {
			return nil // the next heartbeat's rescue goes on
		}
		var err error
		if owner == l.clientID {
			err = l.rescueOwn(ctx)
		} else {
			err = l.rescueDead(ctx, owner)
		}
		if err != nil {
			l.log.Warn("inbox: cannot rescue the jobs of a process now; trying again at the next heartbeat", "client", owner, "err", err)
		}
	}
	return nil
}

// rescueDead makes available the running jobs of owner if its heartbeat
// stopped. On Postgres it skips the rows another session holds locked: a
// frozen process's open batch holds the jobs it completed, and either
// commits them when it wakes or loses them when Postgres ends its idle
// session (idleInTransactionTimeout); the next rescue takes them then.
func (l *liveness) rescueDead(ctx context.Context, owner string) error {
	if !l.alone {
		alive, err := l.db.QueryInts(ctx, `SELECT count(*) FROM cakemail_inbox_client
			WHERE id = $1 AND heartbeat_at > `+l.db.NowMillis()+` - $2`, owner, deadAfter.Milliseconds())
		if err != nil {
			return err
		}
		if len(alive) == 1 && alive[0] > 0 {
			return nil
		}
	}
	running := `state = 'running' AND kind = $1 AND ` + l.db.LastAttemptedBy() + ` = $2`
	query := `UPDATE river_job SET state = 'available' WHERE ` + running
	if l.db.Name() == sqldb.Postgres.Name() {
		query = `UPDATE river_job SET state = 'available' WHERE state = 'running' AND id IN (
			SELECT id FROM river_job WHERE ` + running + ` FOR UPDATE SKIP LOCKED)`
	}
	n, err := l.db.Exec(ctx, query, DeliveryArgs{}.Kind(), owner)
	if err != nil {
		return err
	}
	if n > 0 {
		l.log.Warn("inbox: running again the jobs of a process that stopped beating", "client", owner, "jobs", n)
	}
	return nil
}

// rescueOwn hands back this process's running jobs that it is not working:
// their outcome was lost on the way to the database.
func (l *liveness) rescueOwn(ctx context.Context) error {
	ids, err := l.db.QueryInts(ctx, `SELECT id FROM river_job WHERE state = 'running' AND kind = $1 AND `+
		l.db.LastAttemptedBy()+` = $2`, DeliveryArgs{}.Kind(), l.clientID)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if l.working.holds(id) {
			continue
		}
		n, err := l.db.Exec(ctx, `UPDATE river_job SET state = 'available' WHERE id = $1 AND state = 'running'`, id)
		if err != nil {
			return err
		}
		if n > 0 {
			l.log.Warn("inbox: running again a job whose outcome was lost", "job_id", id)
		}
	}
	return nil
}
