package inbox

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
