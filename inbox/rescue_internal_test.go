package inbox

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
	"github.com/cakemail-go/webhooks/internal/pgtest"
	"github.com/cakemail-go/webhooks/internal/testutil"
)

// Start after a failed Start, or after Stop's close, starts the heartbeat
// again instead of closing its channel twice.
func TestLivenessStartsAgainAfterClose(t *testing.T) {
	ctx := context.Background()
	db, err := openSQLite(filepath.Join(t.TempDir(), "inbox.db"))
	require.NoError(t, err)
	defer db.close()
	require.NoError(t, migrate(ctx, db, nil))
	l := newLiveness(db.conn(), true, "client-a", []string{"default"}, &inFlight{}, slog.New(slog.DiscardHandler))
	for range 3 {
		require.NoError(t, l.start(ctx))
		require.NoError(t, l.start(ctx), "a second start while running is a no-op")
		l.close(ctx)
		l.close(ctx)
	}
	rows, err := db.conn().QueryInts(ctx, `SELECT count(*) FROM cakemail_inbox_client`)
	require.NoError(t, err)
	assert.Equal(t, []int64{0}, rows, "close removes the process's heartbeat row")
}

// A heartbeat that fails once, then succeeds, leaves no stale reason behind.
func TestHeartbeatForgetsAFailureOnceItBeatsAgain(t *testing.T) {
	ctx := context.Background()
	db, err := openSQLite(filepath.Join(t.TempDir(), "inbox.db"))
	require.NoError(t, err)
	defer db.close()
	l := newLiveness(db.conn(), true, "client-a", []string{"default"}, &inFlight{}, slog.New(slog.DiscardHandler))
	require.Error(t, l.beat(ctx), "no table yet: the beat fails")
	require.NotNil(t, l.lastErr.Load())
	require.NoError(t, migrate(ctx, db, nil))
	require.NoError(t, l.beat(ctx))
	assert.Nil(t, l.lastErr.Load(), "the failure is forgotten once a beat commits")
}

// A rescue that fails for one dead process (here Postgres refuses to update
// its rows) logs it and still rescues the next one's jobs.
func TestRescueGoesOnPastOneOwnersError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := openPostgres(ctx, pgtest.URL(t), DefaultTxTimeout)
	require.NoError(t, err)
	defer db.close()
	require.NoError(t, migrate(ctx, db, nil))
	conn := db.conn()
	for _, owner := range []string{"dead-a", "dead-b"} {
		_, err := conn.Exec(ctx, `INSERT INTO river_job (kind, args, state, attempt, attempted_at, attempted_by, max_attempts)
			VALUES ($1, '{}', 'running', 1, now(), ARRAY[$2], 25)`, DeliveryArgs{}.Kind(), owner)
		require.NoError(t, err)
	}
	// The first owner in the rescue's order is refused.
	_, err = conn.Exec(ctx, `CREATE FUNCTION refuse_dead_a() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF OLD.attempted_by[array_upper(OLD.attempted_by, 1)] = 'dead-a' THEN
				RAISE EXCEPTION 'refusing to update the jobs of dead-a';
			END IF;
			RETURN NEW;
		END $$`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `CREATE TRIGGER refuse_dead_a BEFORE UPDATE ON river_job FOR EACH ROW EXECUTE FUNCTION refuse_dead_a()`)
	require.NoError(t, err)

	logs := &testutil.SyncBuffer{}
	l := newLiveness(conn, false, "alive", []string{"default"}, &inFlight{}, slog.New(slog.NewTextHandler(logs, nil)))
	require.NoError(t, l.beat(ctx))
	l.healthySince = l.healthySince.Add(-deadAfter) // it has beaten long enough to judge others

	require.NoError(t, l.rescue(ctx), "one owner's failure is not the rescue's")
	states, err := conn.QueryStrings(ctx, `SELECT attempted_by[1] || ' ' || state FROM river_job ORDER BY attempted_by[1]`)
	require.NoError(t, err)
	assert.Equal(t, []string{"dead-a running", "dead-b available"}, states)
	var refused string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "client=dead-a") {
			refused = line
		}
	}
	assert.Contains(t, refused, "refusing to update the jobs of dead-a", "the failure is logged with its owner")
}

// The inbox's Postgres sessions end a transaction left idle by a frozen
// process, and its own statements never wait long for a lock; a URL's own
// idle_in_transaction_session_timeout is kept.
func TestPostgresSessionsBoundWhatAFrozenProcessHolds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	for _, c := range []struct{ url, idle string }{{url, "20s"}, {url + "&idle_in_transaction_session_timeout=7000", "7s"}} {
		db, err := openPostgres(ctx, c.url, DefaultTxTimeout)
		require.NoError(t, err)
		river, err := sqldb.PostgresConn(db.pool).QueryStrings(ctx, `SHOW idle_in_transaction_session_timeout`)
		require.NoError(t, err)
		assert.Equal(t, []string{c.idle}, river, "River's sessions")
		own, err := db.conn().QueryStrings(ctx, `SELECT current_setting('idle_in_transaction_session_timeout') || ' ' || current_setting('lock_timeout')`)
		require.NoError(t, err)
		assert.Equal(t, []string{c.idle + " 500ms"}, own, "the heartbeat's and the rescue's sessions")
		db.close()
	}
}
