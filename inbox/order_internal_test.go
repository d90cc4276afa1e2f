package inbox

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The record keeps a key while an older event for it can still run: events
// of the deliveries River keeps, and those a new delivery may carry.
func TestPruneKeepsWhatAnOlderEventCouldStillReach(t *testing.T) {
	ctx := context.Background()
	db, err := openSQLite(filepath.Join(t.TempDir(), "inbox.db"))
	require.NoError(t, err)
	defer db.close()
	require.NoError(t, migrate(ctx, db, nil))
	now := time.Now()
	const window = 24 * time.Hour
	keyAt := func(key string, at time.Time) {
		_, err := db.conn().Exec(ctx, `INSERT INTO cakemail_inbox_order (subscriber, order_key, created_at) VALUES ('default', $1, $2)`,
			key, at.UnixNano())
		require.NoError(t, err)
	}
	keys := func() []string {
		k, err := db.conn().QueryStrings(ctx, `SELECT order_key FROM cakemail_inbox_order ORDER BY order_key`)
		require.NoError(t, err)
		return k
	}
	keyAt("a-ancient", now.Add(-30*24*time.Hour))
	keyAt("b-past-window", now.Add(-window-time.Hour))
	keyAt("c-recent", now.Add(-time.Hour))

	// No delivery kept: only what a new delivery may carry, the window ago.
	require.NoError(t, pruneOrder(ctx, db.driver().GetExecutor(), db, window, now))
	assert.Equal(t, []string{"c-recent"}, keys())

	// A dead letter of an event ten days old can still be retried.
	keyAt("a-ancient", now.Add(-30*24*time.Hour))
	keyAt("b-past-window", now.Add(-window-time.Hour))
	client, err := river.NewClient(db.driver(), &river.Config{})
	require.NoError(t, err)
	_, err = client.Insert(ctx, DeliveryArgs{BodySHA256: "x", EventCreatedAt: now.Add(-10 * 24 * time.Hour).Unix()}, nil)
	require.NoError(t, err)
	require.NoError(t, pruneOrder(ctx, db.driver().GetExecutor(), db, window, now))
	assert.Equal(t, []string{"b-past-window", "c-recent"}, keys())
}
