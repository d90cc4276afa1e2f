package sqldb

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DeliveryKind is the River job kind of a delivery, inbox.DeliveryArgs{}.Kind().
const DeliveryKind = "cakemail_delivery"

// States of a delivery that an operator can put back in the queue.
var (
	// DeadStates are the dead letters: attempts exhausted (discarded) or
	// unfit to run as sent (cancelled).
	DeadStates = []string{"discarded", "cancelled"}
	// CompletedStates are the deliveries a replay runs again.
	CompletedStates = []string{"completed"}
)

// StaleMark is the metadata key, set to true, of a job that completed
// without running its handler because a later event for its order key was
// applied; a requeue clears it.
const StaleMark = "cakemail_inbox_stale"

// maxIDsPerStatement bounds one statement's list of ids.
const maxIDsPerStatement = 1000

// CompletedSettle is how long ago a delivery must have completed for a
// replay to move it. The inbox completes a job in its effects' transaction;
// River's completer then records the same outcome a moment later, matching
// the job by id and a running state only. A job moved and already running
// again within that moment would be marked completed by the late record, and
// its new run's effects refused: the replay would count a run that never
// happened.
const CompletedSettle = 2 * time.Second

// Requeue makes the deliveries among ids that are in one of states available
// to run now, and returns the ids it moved, in order. Each chunk of ids is one
// statement that checks the state and moves the job at once, so two
// operators, or an operator and River, can never both move a job: one that
// is running, waiting or already moved by someone else is left alone, and
// counts for nobody. A completed job is moved only once it completed
// CompletedSettle ago. A job whose attempts are spent gets one more, as
// River's own retry does.
func Requeue(ctx context.Context, c Conn, states []string, ids []int64) ([]int64, error) {
	stateList := sqlList(states)
	query := `UPDATE river_job SET state = 'available', scheduled_at = ` + c.Now() + `, finalized_at = NULL,
		max_attempts = CASE WHEN attempt >= max_attempts THEN attempt + 1 ELSE max_attempts END,
		metadata = ` + c.MetadataWithout("cancel_attempted_at", StaleMark) + `
		WHERE kind = $1 AND (state <> 'completed' OR ` + c.SecondsSince("finalized_at") + ` >= $2)
		AND state IN (` + stateList + `) AND ` + c.IDIn("$3") + ` RETURNING id`
	return inChunks(ctx, c, "moving jobs back to the queue", query, ids, DeliveryKind, int64(CompletedSettle.Seconds()))
}

// WaitingStates are the jobs waiting to run: new, scheduled, or waiting
// for a retry. None of them has been handled yet.
var WaitingStates = []string{"available", "pending", "retryable", "scheduled"}

// DeleteDead deletes the jobs among ids that are dead letters, and returns
// the ids it deleted, in order. Nothing else can be deleted: a job that has
// not been handled yet is an acknowledged event, and a completed delivery is
// how a resend is recognised as a duplicate. The check and the delete are
// one statement, so a job retried meanwhile is left alone.
func DeleteDead(ctx context.Context, c Conn, ids []int64) ([]int64, error) {
	query := `DELETE FROM river_job WHERE state IN (` + sqlList(DeadStates) + `) AND ` + c.IDIn("$1") + ` RETURNING id`
	return inChunks(ctx, c, "deleting dead letters", query, ids)
}

// CancelWaiting makes the jobs among ids that wait to run (WaitingStates)
// dead letters (cancelled), and returns the ids it moved, in order: they stay
// with the other dead letters, to be retried or deleted. A running job is
// left to finish, and a finished one is left as it is, so cancelling never
// cuts a handler's transaction short nor races its completion.
func CancelWaiting(ctx context.Context, c Conn, ids []int64) ([]int64, error) {
	query := `UPDATE river_job SET state = 'cancelled', finalized_at = ` + c.Now() + `
		WHERE state IN (` + sqlList(WaitingStates) + `) AND ` + c.IDIn("$1") + ` RETURNING id`
	return inChunks(ctx, c, "cancelling jobs", query, ids)
}

// Job is what an operator is told about a job a change left alone.
type Job struct {
	ID          int64
	Kind, State string
}

// Jobs reads the kind and state of the jobs among ids that exist, by id.
func Jobs(ctx context.Context, c Conn, ids []int64) (map[int64]Job, error) {
	jobs := map[int64]Job{}
	for chunk := range slices.Chunk(ids, maxIDsPerStatement) {
		rows, err := c.QueryStrings(ctx, `SELECT CAST(id AS TEXT) || ' ' || CAST(state AS TEXT) || ' ' || kind FROM river_job WHERE `+c.IDIn("$1"), c.IDList(chunk))
		if err != nil {
			return jobs, fmt.Errorf("reading jobs: %w", err)
		}
		for _, row := range rows {
			fields := strings.SplitN(row, " ", 3)
			if len(fields) != 3 {
				continue
			}
			id, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				continue
			}
			jobs[id] = Job{ID: id, State: fields[1], Kind: fields[2]}
		}
	}
	return jobs, nil
}

// inChunks runs query, whose rows are the ids it changed, for each chunk of
// ids, with args and then the chunk as its parameters, and returns every id
// changed, in order. An id given twice is changed once: in two chunks it
// could be changed, run and changed again.
func inChunks(ctx context.Context, c Conn, what, query string, ids []int64, args ...any) ([]int64, error) {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	changed := []int64{}
	for chunk := range slices.Chunk(ids, maxIDsPerStatement) {
		got, err := c.QueryInts(ctx, query, append(slices.Clip(args), c.IDList(chunk))...)
		if err != nil {
			return changed, fmt.Errorf("%s: %w", what, err)
		}
		changed = append(changed, got...)
	}
	slices.Sort(changed)
	return changed, nil
}

// sqlList is states as an SQL list; they are River's state names, never input.
func sqlList(states []string) string {
	quoted := make([]string, len(states))
	for i, s := range states {
		quoted[i] = "'" + s + "'"
	}
	return strings.Join(quoted, ", ")
}
