package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
	"github.com/cakemail-go/webhooks/internal/pgtest"
)

// On Postgres, DriverTx's pgx.Tx is the delivery's Tx in pgx's clothes: it
// reads and writes as pgx does, commits with the job, and lets the handler
// neither commit the batch nor complete a delivery whose statement failed.
func TestDriverTxOnPostgresBehavesAsTheDeliverysTx(t *testing.T) {
	t.Parallel()
	const effects = `CREATE TABLE IF NOT EXISTS effects (body_sha256 TEXT PRIMARY KEY, n INT NOT NULL)`
	const insert = `INSERT INTO effects (body_sha256, n) VALUES ($1, 1)`
	router := webhooks.NewRouter()
	router.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
		d, _ := inbox.DeliveryFromContext(ctx)
		tx, err := inbox.DriverTx[pgx.Tx](ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, insert, d.BodySHA256); err != nil {
			return err
		}
		switch kind, _, _ := strings.Cut(emailOf(e), "@"); kind {
		case "commit":
			if tx.Commit(ctx) == nil || tx.Rollback(ctx) == nil {
				return errors.New("the handler committed or rolled back the batch")
			}
		case "savepoint":
			// Insert or ignore, through a savepoint of the handler's own.
			sp, err := tx.Begin(ctx)
			if err != nil {
				return err
			}
			if _, err := sp.Exec(ctx, insert, d.BodySHA256); err == nil {
				return errors.New("a duplicate key was inserted")
			}
			return sp.Rollback(ctx)
		case "reads":
			var n int
			if err := tx.QueryRow(ctx, `SELECT n FROM effects WHERE body_sha256 = $1`, d.BodySHA256).Scan(&n); err != nil || n != 1 {
				return fmt.Errorf("QueryRow: %d, %v", n, err)
			}
			if err := tx.QueryRow(ctx, `SELECT n FROM effects WHERE false`).Scan(&n); !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("QueryRow of no row: %v", err)
			}
			rows, _ := tx.Query(ctx, `SELECT generate_series(1, 3)`)
			series, err := pgx.CollectRows(rows, pgx.RowTo[int])
			if err != nil || len(series) != 3 {
				return fmt.Errorf("Query: %v, %v", series, err)
			}
			batch := &pgx.Batch{}
			batch.Queue(`UPDATE effects SET n = n + 1 WHERE body_sha256 = $1`, d.BodySHA256)
			batch.Queue(`UPDATE effects SET n = n + 1 WHERE body_sha256 = $1`, d.BodySHA256)
			return tx.SendBatch(ctx, batch).Close()
		case "open-rows":
			// Rows left open hold the connection: the Tx closes them.
			rows, err := tx.Query(ctx, `SELECT generate_series(1, 100000)`)
			if err != nil || !rows.Next() {
				return fmt.Errorf("Query: %v", err)
			}
		case "ignored-failure":
			tx.Exec(ctx, `INSERT INTO no_such_table VALUES (1)`) //nolint:errcheck // the ignored failure is the test
		}
		return nil
	})
	ti := startInbox(t, pgtest.URL(t), router, inbox.WithDDL(effects), inbox.WithMaxAttempts(1))

	want := map[string]int64{"commit": 1, "savepoint": 1, "reads": 3, "open-rows": 1, "ignored-failure": 0}
	bodies := map[string][][]byte{}
	for round := range 3 {
		for kind := range want {
			body := payload("Email.Opened", fmt.Sprintf("%s@example.com", kind)+strings.Repeat(" ", round))
			bodies[kind] = append(bodies[kind], body)
			require.Equal(t, http.StatusAccepted, ti.post(body, testSecret))
		}
	}
	ti.waitCount(t, 12, `SELECT count(*) FROM river_job WHERE state = 'completed'`)
	ti.waitCount(t, 3, `SELECT count(*) FROM river_job WHERE state = 'discarded'`)
	for kind, n := range want {
		for _, body := range bodies[kind] {
			assert.Equal(t, n, ti.count(t, `SELECT coalesce(sum(n), 0) FROM effects WHERE body_sha256 = $1`, sha(body)), kind)
		}
	}
	assert.Contains(t, ti.logs.String(), "aborted its transaction")
}
