package inbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks/inbox"
	"github.com/cakemail-go/webhooks/internal/pgtest"
)

// With every Postgres process stopped, many senders at once each get an
// answer within the acknowledge timeout: 503 with Retry-After, and /healthz
// says 503 too. Once Postgres runs again, deliveries are stored again, and
// every one (Cakemail sends a 503'd one again) is processed exactly once.
func TestHungPostgresAnswersEveryDeliveryInTime(t *testing.T) {
	t.Parallel()
	server := pgtest.Start(t)
	// A shorter acknowledge timeout than the default 5 s, so that the
	// freeze can be short and still outlast it.
	const ackTimeout = 2 * time.Second
	ti := startInbox(t, server.URL(t), nil, inbox.WithAcknowledgeTimeout(ackTimeout))

	var (
		mu     sync.Mutex
		bodies [][]byte
		sent   int
	)
	newBody := func() []byte {
		mu.Lock()
		defer mu.Unlock()
		body := payload("Email.Opened", fmt.Sprintf("hung%d@example.com", len(bodies)))
		bodies = append(bodies, body)
		return body
	}
	for range 20 {
		require.Equal(t, http.StatusAccepted, ti.post(newBody(), testSecret))
	}

	thaw := server.Freeze(t)
	frozen := time.Now()
	const senders, freezeFor = 64, 2*ackTimeout + time.Second
	var (
		slowest                        time.Duration
		refused, stored, noRetryAfter  int
		unexpected                     []int
		healthRefused, healthRefusedAt = false, time.Duration(0)
	)
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for time.Since(frozen) < freezeFor {
				start := time.Now()
				w := ti.postRecorder(newBody())
				took := time.Since(start)
				mu.Lock()
				sent++
				slowest = max(slowest, took)
				switch w.Code {
				case http.StatusServiceUnavailable:
					refused++
					if w.Header().Get("Retry-After") == "" {
						noRetryAfter++
					}
				case http.StatusAccepted:
					stored++ // committed just before the freeze
				default:
					unexpected = append(unexpected, w.Code)
				}
				mu.Unlock()
			}
		})
	}
	for !healthRefused && time.Since(frozen) < freezeFor {
		if ti.get("/healthz").Code == http.StatusServiceUnavailable {
			healthRefused, healthRefusedAt = true, time.Since(frozen)
		}
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	thaw()
	t.Logf("Postgres stopped for %s: %d deliveries from %d senders, %d answered 503, %d 202; slowest answer %s; /healthz 503 after %s",
		time.Since(frozen).Round(time.Millisecond), sent, senders, refused, stored, slowest.Round(time.Millisecond), healthRefusedAt.Round(time.Millisecond))
	assert.LessOrEqual(t, slowest, ackTimeout, "a delivery waited past the acknowledge timeout")
	assert.Greater(t, refused, senders, "the freeze was not felt")
	assert.Zero(t, noRetryAfter, "a 503 without Retry-After")
	assert.Empty(t, unexpected)
	assert.True(t, healthRefused, "/healthz never said 503 while Postgres was stopped")

	// Cakemail sends each delivery again until it is acknowledged.
	thawed := time.Now()
	for _, body := range bodies {
		wg.Go(func() { sendUntilAccepted(t, body, ti) })
	}
	wg.Wait()
	t.Logf("every delivery stored %s after Postgres resumed", time.Since(thawed).Round(time.Millisecond))
	ti.waitCount(t, int64(len(bodies)), `SELECT count(*) FROM processed_events`)
	for _, body := range bodies {
		assert.EqualValues(t, 1, ti.count(t, countProcessed, sha(body)), "lost or applied twice")
	}
}

// A delivery the database refuses (here a constraint the operator added)
// fails alone: the deliveries committed in the same batch are stored, and
// the health check does not blame the database.
func TestOneRefusedDeliveryFailsNoNeighbour(t *testing.T) {
	onBothDatabases(t, func(t *testing.T, url string) {
		ti := startInbox(t, url, nil)
		poison := payload("Email.Opened", "refused@example.com")
		refuse := `ALTER TABLE river_job ADD CONSTRAINT refuse_one CHECK (args->>'body_sha256' <> '` + sha(poison) + `') NOT VALID`
		if ti.db != nil {
			refuse = `CREATE TRIGGER refuse_one BEFORE INSERT ON river_job
				WHEN json_extract(NEW.args, '$.body_sha256') = '` + sha(poison) + `'
				BEGIN SELECT RAISE(ABORT, 'refused'); END`
		}
		require.NoError(t, execOn(ti, refuse))

		var wg sync.WaitGroup
		codes := make([]int, 32)
		bodies := make([][]byte, len(codes))
		for i := range codes {
			bodies[i] = payload("Email.Opened", fmt.Sprintf("neighbour%d@example.com", i))
			if i == len(codes)/2 {
				bodies[i] = poison
			}
			wg.Go(func() { codes[i] = ti.post(bodies[i], testSecret) })
		}
		wg.Wait()
		for i, code := range codes {
			if i == len(codes)/2 {
				assert.Equal(t, http.StatusServiceUnavailable, code, "the refused delivery")
				continue
			}
			assert.Equal(t, http.StatusAccepted, code, "a neighbour of the refused delivery")
		}
		assert.Equal(t, http.StatusOK, ti.get("/healthz").Code, "one refused row is not the database failing: %s", ti.get("/healthz").Body)
		ti.waitCount(t, int64(len(codes)-1), `SELECT count(*) FROM processed_events`)
	})
}

// execOn runs a statement on the inbox's database, beside the inbox.
func execOn(ti *testInbox, statement string) error {
	ctx := context.Background()
	if ti.db == nil {
		conn, err := pgx.Connect(ctx, ti.pg)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, statement)
		return err
	}
	var path string
	if err := ti.db.QueryRowContext(ctx, `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&path); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, statement)
	return err
}
