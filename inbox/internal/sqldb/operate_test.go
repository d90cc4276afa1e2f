package sqldb_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

// A replay moves a completed delivery only once River's own record of its
// completion has had time to land, and a retry only a dead letter; each
// reports exactly what it moved, an id given twice once.
func TestRequeueMovesOnlyWhatItsStatesAllow(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", sqldb.SQLiteDSN(filepath.Join(t.TempDir(), "inbox.db"), true))
	require.NoError(t, err)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	migrator, err := rivermigrate.New(riversqlite.New(db), nil)
	require.NoError(t, err)
	_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	require.NoError(t, err)
	conn := sqldb.SQLiteConn(db)
	job := func(state, finalizedAgo string) int64 {
		finalized := "NULL"
		if finalizedAgo != "" {
			finalized = "datetime('now', 'subsec', '-" + finalizedAgo + "')"
		}
		ids, err := conn.QueryInts(ctx, `INSERT INTO river_job (args, kind, max_attempts, queue, state, attempt, finalized_at)
			VALUES (jsonb('{}'), $1, 1, 'default', $2, 1, `+finalized+`) RETURNING id`, sqldb.DeliveryKind, state)
		require.NoError(t, err)
		return ids[0]
	}
	settled, fresh := job("completed", "10 seconds"), job("completed", "0.1 seconds")
	dead, running := job("discarded", "1 minute"), job("running", "")

	moved, err := sqldb.Requeue(ctx, conn, sqldb.CompletedStates, []int64{settled, fresh, dead, running, settled})
	require.NoError(t, err)
	assert.Equal(t, []int64{settled}, moved, "only the completed delivery whose completion has settled")
	moved, err = sqldb.Requeue(ctx, conn, sqldb.DeadStates, []int64{settled, fresh, dead, running})
	require.NoError(t, err)
	assert.Equal(t, []int64{dead}, moved, "only the dead letter")
	moved, err = sqldb.Requeue(ctx, conn, sqldb.DeadStates, []int64{dead})
	require.NoError(t, err)
	assert.Empty(t, moved, "a second run moves nothing the first moved")
	attempts, err := conn.QueryInts(ctx, `SELECT max_attempts FROM river_job WHERE id = $1`, dead)
	require.NoError(t, err)
	assert.Equal(t, []int64{2}, attempts, "a job whose attempts are spent gets one more")
}
