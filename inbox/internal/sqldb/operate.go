package sqldb

import (
	"context"
	"fmt"
	"slices"
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

// Requeue makes the deliveries among ids that are in one of states available
// to run now, and returns the ids it moved, in order. Each chunk of ids is one
// statement that checks the state and moves the job at once, so two
// operators, or an operator and River, can never both move a job: one that
// is running, waiting or already moved by someone else is left alone, and
// counts for nobody. A job whose attempts are spent gets one more, as
// River's own retry does.
func Requeue(ctx context.Context, c Conn, states []string, ids []int64) ([]int64, error) {
	moved := []int64{}
	stateList := ""
	for i, s := range states {
		if i > 0 {
			stateList += ", "
		}
		stateList += "'" + s + "'"
	}
	query := `UPDATE river_job SET state = 'available', scheduled_at = ` + c.Now() + `, finalized_at = NULL,
		max_attempts = CASE WHEN attempt >= max_attempts THEN attempt + 1 ELSE max_attempts END,
		metadata = ` + c.MetadataWithout("cancel_attempted_at", StaleMark) + `
		WHERE kind = $1 AND state IN (` + stateList + `) AND ` + c.IDIn("$2") + ` RETURNING id`
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), maxIDsPerStatement)]
		ids = ids[len(chunk):]
		got, err := c.QueryInts(ctx, query, DeliveryKind, c.IDList(chunk))
		if err != nil {
			return moved, fmt.Errorf("moving jobs back to the queue: %w", err)
		}
		moved = append(moved, got...)
	}
	slices.Sort(moved)
	return moved, nil
}
