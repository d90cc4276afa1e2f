package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
)

// A delivery's Tx ends when its handler returns: a goroutine the handler
// leaves behind gets an error, and can neither wedge nor pin anything.

func init() {
	servingRouters["late-tx"] = func(databaseURL string) *webhooks.Router {
		return lateTxRouter(!strings.HasPrefix(databaseURL, "sqlite:"), func(call string, err error) {
			fmt.Printf("late call %s: %v\n", call, err)
		})
	}
}

// lateTxRouter records every delivery. For a delivery to late…@, the
// handler also leaves a goroutine behind that uses the delivery's
// transaction 200 ms after the handler returned, with a context that is
// never cancelled, as the audit's handler did: through Tx.Exec, DriverTx,
// and on Postgres the pgx.Tx DriverTx gave while the handler ran. Each late
// call's error goes to report.
func lateTxRouter(postgres bool, report func(call string, err error)) *webhooks.Router {
	r := webhooks.NewRouter()
	r.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
		if err := recordEvent(ctx, e); err != nil {
			return err
		}
		if !strings.HasPrefix(emailOf(e), "late") {
			return nil
		}
		d, _ := inbox.DeliveryFromContext(ctx)
		var early pgx.Tx
		if postgres {
			var err error
			if early, err = inbox.DriverTx[pgx.Tx](ctx); err != nil {
				return err
			}
		}
		late := context.WithoutCancel(ctx)
		go func() {
			time.Sleep(200 * time.Millisecond) // the fault: a write after the handler returned
			_, err := d.Tx.Exec(late, `INSERT INTO processed_events (body_sha256, event_type, processed_at) VALUES ($1, 'late', $2)`,
				d.BodySHA256, time.Now().UTC())
			report("Exec", err)
			if postgres {
				_, err = inbox.DriverTx[pgx.Tx](late)
				report("DriverTx", err)
				_, err = early.Exec(late, `INSERT INTO processed_events (body_sha256, event_type, processed_at) VALUES ($1, 'late', now())`, d.BodySHA256)
				report("pgx.Tx.Exec", err)
			} else {
				_, err = inbox.DriverTx[*sql.Tx](late)
				report("DriverTx", err)
			}
		}()
		return nil
	})
	return r
}

func emailOf(e *webhooks.Event) string {
	var data struct{ Email string }
	e.DecodeData(&data) //nolint:errcheck // no email is an email that matches no prefix
	return data.Email
}

// lateCallsPerDelivery is how many calls lateTxRouter's goroutine makes.
func lateCallsPerDelivery(postgres bool) int {
	if postgres {
		return 3
	}
	return 2
}

func TestLateTxUseFailsAndWedgesNothing(t *testing.T) {
	t.Parallel()
	onBothDatabases(t, func(t *testing.T, url string) {
		postgres := !strings.HasPrefix(url, "sqlite:")
		lateErrs := make(chan error, 100)
		ti := startInbox(t, url, lateTxRouter(postgres, func(_ string, err error) { lateErrs <- err }))

		postAccepted(t, ti, "late", 5)
		for range 5 * lateCallsPerDelivery(postgres) {
			select {
			case err := <-lateErrs:
				require.ErrorIs(t, err, inbox.ErrTxDone)
			case <-time.After(15 * time.Second):
				t.Fatal("a late call neither failed nor returned")
			}
		}

		// Later deliveries are acknowledged at once and processed.
		for i := range 25 {
			start := time.Now()
			require.Equal(t, http.StatusAccepted, ti.post(payload("Email.Opened", fmt.Sprintf("after%d@example.com", i)), testSecret))
			assert.Less(t, time.Since(start), 3*time.Second, "delivery %d", i)
		}
		ti.waitCount(t, 30, `SELECT count(*) FROM processed_events WHERE event_type <> 'late'`)
		assert.Zero(t, ti.count(t, `SELECT count(*) FROM processed_events WHERE event_type = 'late'`), "a late call wrote")
		ti.waitCount(t, 0, `SELECT count(*) FROM river_job WHERE state = 'running'`)
		if postgres {
			ti.waitCount(t, 0, pinnedSessions)
		}
		assert.Equal(t, http.StatusOK, ti.get("/healthz").Code, ti.get("/healthz").Body.String())
	})
}

// pinnedSessions counts the test database's sessions left in a transaction
// for over a second: a batch transaction lasts milliseconds.
const pinnedSessions = `SELECT count(*) FROM pg_stat_activity
	WHERE datname = current_database() AND state LIKE 'idle in transaction%' AND state_change < now() - interval '1 second'`

// The same, in a process of its own: SIGTERM still stops it.
func TestLateTxUseLeavesTheProcessStoppable(t *testing.T) {
	t.Parallel()
	onBothDatabases(t, func(t *testing.T, url string) {
		postgres := !strings.HasPrefix(url, "sqlite:")
		p := startServingProcessWith(t, url, "late-tx")
		db := openDatabase(t, url)

		for i := range 5 {
			code := postedTo(t, p.url, payload("Email.Opened", fmt.Sprintf("late%d@example.com", i)))
			require.Equal(t, http.StatusAccepted, code)
		}
		want := 5 * lateCallsPerDelivery(postgres)
		require.Eventually(t, func() bool { return strings.Count(p.output.String(), "late call") == want }, 15*time.Second, 20*time.Millisecond,
			"the late calls never returned: %s", p.output.String())
		assert.Equal(t, want, strings.Count(p.output.String(), "transaction has ended"), p.output.String())

		for i := range 25 {
			code, took := postTimedTo(t, p.url, payload("Email.Opened", fmt.Sprintf("after%d@example.com", i)))
			require.Equal(t, http.StatusAccepted, code)
			assert.Less(t, took, 3*time.Second, "delivery %d", i)
		}
		db.waitCount(t, 30, `SELECT count(*) FROM processed_events WHERE event_type <> 'late'`)
		assert.Zero(t, db.count(t, `SELECT count(*) FROM processed_events WHERE event_type = 'late'`), "a late call wrote")
		if postgres {
			db.waitCount(t, 0, pinnedSessions)
		}

		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		exited := make(chan error, 1)
		go func() { exited <- p.cmd.Wait() }()
		select {
		case err := <-exited:
			require.NoError(t, err, "%s", p.logs.String())
			assert.Contains(t, p.output.String(), "stopped")
		case <-time.After(15 * time.Second):
			t.Fatalf("SIGTERM did not stop the process in 15 s: %s", p.logs.String())
		}
	})
}

// openDatabase is a testInbox that only reads the database another process serves.
func openDatabase(t *testing.T, url string) *testInbox {
	t.Helper()
	path, ok := strings.CutPrefix(url, "sqlite://")
	if !ok {
		return &testInbox{pg: url}
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return &testInbox{db: db}
}

// Goroutines a handler starts may share its Tx while it runs: their
// statements run one at a time, and all of them commit with the delivery.
func TestTxIsSharedSafelyWhileTheHandlerRuns(t *testing.T) {
	t.Parallel()
	onBothDatabases(t, func(t *testing.T, url string) {
		router := webhooks.NewRouter()
		router.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
			d, _ := inbox.DeliveryFromContext(ctx)
			var wg sync.WaitGroup
			errs := make(chan error, 20)
			for g := range 4 {
				wg.Go(func() {
					for i := range 5 {
						_, err := d.Tx.Exec(ctx, `INSERT INTO processed_events (body_sha256, event_type, processed_at) VALUES ($1, $2, $3)`,
							d.BodySHA256, fmt.Sprintf("part-%d-%d", g, i), time.Now().UTC())
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			return errors.Join(slicesFrom(errs)...)
		})
		ti := startInbox(t, url, router)
		bodies := postAccepted(t, ti, "shared", 10)
		ti.waitCount(t, 10, `SELECT count(*) FROM river_job WHERE state = 'completed'`)
		for _, body := range bodies {
			assert.EqualValues(t, 20, ti.count(t, countProcessed, sha(body)))
		}
	})
}

// postAccepted sends n distinct deliveries, to prefix0@… and on, each
// answered 202, and returns their bodies.
func postAccepted(t *testing.T, ti *testInbox, prefix string, n int) [][]byte {
	t.Helper()
	var bodies [][]byte
	for i := range n {
		body := payload("Email.Opened", fmt.Sprintf("%s%d@example.com", prefix, i))
		bodies = append(bodies, body)
		require.Equal(t, http.StatusAccepted, ti.post(body, testSecret))
	}
	return bodies
}

func slicesFrom(errs <-chan error) []error {
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return all
}

// A handler that returns while its goroutine calls the Tx: the call either
// ran before the end, and its effect commits with the delivery, or it fails
// with ErrTxDone and leaves nothing. Never a write without its delivery, nor
// a stuck turn.
func TestHandlerReturningDuringAGoroutinesCallIsConsistent(t *testing.T) {
	t.Parallel()
	onBothDatabases(t, func(t *testing.T, url string) {
		var mu sync.Mutex
		succeeded := map[string]bool{}
		var calls sync.WaitGroup
		router := webhooks.NewRouter()
		router.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
			if err := recordEvent(ctx, e); err != nil {
				return err
			}
			d, _ := inbox.DeliveryFromContext(ctx)
			calls.Add(1)
			go func() {
				defer calls.Done()
				_, err := d.Tx.Exec(context.WithoutCancel(ctx), `INSERT INTO processed_events (body_sha256, event_type, processed_at) VALUES ($1, 'racing', $2)`,
					d.BodySHA256, time.Now().UTC())
				if err != nil && !errors.Is(err, inbox.ErrTxDone) {
					t.Errorf("the racing call failed otherwise: %v", err)
				}
				mu.Lock()
				succeeded[d.BodySHA256] = err == nil
				mu.Unlock()
			}()
			if strings.HasSuffix(emailOf(e), "0@example.com") {
				runtime.Gosched() // some goroutines start before the handler returns, others after
			}
			return nil
		})
		ti := startInbox(t, url, router)
		bodies := postAccepted(t, ti, "racing", 30)
		ti.waitCount(t, 30, `SELECT count(*) FROM river_job WHERE state = 'completed'`)
		calls.Wait()
		ran := 0
		for _, body := range bodies {
			mu.Lock()
			ok := succeeded[sha(body)]
			mu.Unlock()
			want := int64(0)
			if ok {
				want, ran = 1, ran+1
			}
			assert.Equal(t, want, ti.count(t, `SELECT count(*) FROM processed_events WHERE body_sha256 = $1 AND event_type = 'racing'`, sha(body)))
			assert.EqualValues(t, 1, ti.count(t, countProcessed+` AND event_type <> 'racing'`, sha(body)))
		}
		t.Logf("%d of 30 racing calls ran before their handler's end, %d failed with ErrTxDone", ran, 30-ran)
	})
}
