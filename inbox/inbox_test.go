package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
)

func TestDeliveryIsAcknowledgedAfterCommitAndProcessedOnce(t *testing.T) {
	t.Parallel()
	onBothDatabases(t, func(t *testing.T, url string) {
		ti := startInbox(t, url, nil)
		// The CLI guide's spelling: routed and recorded under the canonical name.
		body := payload("email.opened", "a@example.com")
		require.Equal(t, http.StatusAccepted, ti.post(body, testSecret))
		// The job exists as soon as the 2xx is out: that is the promise.
		assert.EqualValues(t, 1, ti.count(t, `SELECT count(*) FROM river_job WHERE kind = 'cakemail_delivery'`))
		ti.waitCount(t, 1, countProcessed, sha(body))
		assert.EqualValues(t, 1, ti.count(t, `SELECT count(*) FROM processed_events WHERE body_sha256 = $1 AND event_type = $2`,
			sha(body), string(webhooks.EventEmailOpened)))

		assert.Equal(t, http.StatusOK, ti.post(body, testSecret), "a duplicate still gets a 2xx, or Cakemail retries it")
		other := payload("email.opened", "b@example.com")
		require.Equal(t, http.StatusAccepted, ti.post(other, testSecret))
		ti.waitCount(t, 1, countProcessed, sha(other))
		assert.EqualValues(t, 1, ti.count(t, countProcessed, sha(body)), "the duplicate was processed again")
		assert.Contains(t, ti.logs.String(), `"level":"DEBUG","msg":"duplicate acknowledged"`, "duplicates are logged at DEBUG: Cakemail retries in bursts")
	})
}

func TestDuplicateIsRememberedAcrossRestarts(t *testing.T) {
	t.Parallel()
	onBothDatabases(t, func(t *testing.T, url string) {
		body := payload("Email.Clicked", "c@example.com")
		first := startInbox(t, url, nil)
		require.Equal(t, http.StatusAccepted, first.post(body, testSecret))
		first.waitCount(t, 1, countProcessed, sha(body))
		require.NoError(t, first.ib.Stop(context.Background()))

		second := startInbox(t, url, nil)
		assert.Equal(t, http.StatusOK, second.post(body, testSecret))
		assert.EqualValues(t, 1, second.count(t, `SELECT count(*) FROM river_job WHERE kind = 'cakemail_delivery'`), "the duplicate became a job")
		// A wrong second run would be queued before this later delivery:
		// once it is processed, the duplicate's chance has passed.
		later := payload("Email.Clicked", "later@example.com")
		require.Equal(t, http.StatusAccepted, second.post(later, testSecret))
		second.waitCount(t, 1, countProcessed, sha(later))
		assert.EqualValues(t, 1, second.count(t, countProcessed, sha(body)))
	})
}

func TestSameBodyAtOnceIsOneJob(t *testing.T) {
	t.Parallel()
	onBothDatabases(t, func(t *testing.T, url string) {
		ti := startInbox(t, url, nil)
		body := payload("Email.Bounced", "d@example.com")
		codes := make(chan int, 20)
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() { codes <- ti.post(body, testSecret) })
		}
		wg.Wait()
		close(codes)
		count := map[int]int{}
		for c := range codes {
			count[c]++
		}
		assert.Equal(t, map[int]int{http.StatusAccepted: 1, http.StatusOK: 19}, count)
		ti.waitCount(t, 1, countProcessed, sha(body))
	})
}

// A batch commits many deliveries' effects at once; a handler that fails
// after writing must lose only its own effect.
func TestFailingHandlerNeverRollsBackItsNeighbours(t *testing.T) {
	t.Parallel()
	onBothDatabases(t, func(t *testing.T, url string) {
		router := webhooks.NewRouter()
		router.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
			if err := recordEvent(ctx, e); err != nil {
				return err
			}
			var d struct{ Email string }
			if err := e.DecodeData(&d); err != nil {
				return err
			}
			if strings.HasPrefix(d.Email, "fail") {
				return errors.New("downstream unavailable")
			}
			if strings.HasPrefix(d.Email, "badsql") {
				// A failed statement spoils a Postgres transaction: it must
				// stay this delivery's problem, behind its savepoint.
				d, _ := inbox.DeliveryFromContext(ctx)
				d.Tx.Exec(ctx, `INSERT INTO no_such_table VALUES (1)`) //nolint:errcheck // the failure is the test
				return nil
			}
			return nil
		})
		ti := startInbox(t, url, router, inbox.WithMaxAttempts(1))
		var good [][]byte
		var wg sync.WaitGroup
		for i := range 60 {
			kind := []string{"ok", "fail", "badsql"}[i%3]
			body := payload("Email.Opened", fmt.Sprintf("%s%d@example.com", kind, i))
			if kind == "ok" {
				good = append(good, body)
			}
			wg.Go(func() { assert.Equal(t, http.StatusAccepted, ti.post(body, testSecret)) })
		}
		wg.Wait()
		ti.waitCount(t, 40, `SELECT count(*) FROM river_job WHERE state = 'discarded'`)
		ti.waitCount(t, 20, `SELECT count(*) FROM river_job WHERE state = 'completed'`)
		assert.EqualValues(t, 20, ti.count(t, `SELECT count(*) FROM processed_events`), "only the good deliveries' effects stay")
		for _, body := range good {
			assert.EqualValues(t, 1, ti.count(t, countProcessed, sha(body)))
		}
	})
}

func TestFailingHandlerIsRetriedLoggedThenKeptForAnOperator(t *testing.T) {
	t.Parallel()
	onBothDatabases(t, func(t *testing.T, url string) {
		var runs atomic.Int32
		router := webhooks.NewRouter()
		router.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
			runs.Add(1)
			// The effect is written first: a failure must roll it back.
			if err := recordEvent(ctx, e); err != nil {
				return err
			}
			return errors.New("downstream unavailable")
		})
		ti := startInbox(t, url, router, inbox.WithMaxAttempts(2))
		body := payload("Email.Opened", "f@example.com")
		require.Equal(t, http.StatusAccepted, ti.post(body, testSecret))

		// Two attempts, a second apart (River's backoff), then discarded:
		// kept in river_job with its errors.
		ti.waitCount(t, 1, `SELECT count(*) FROM river_job WHERE state = 'discarded'`)
		assert.EqualValues(t, 2, runs.Load())
		assert.EqualValues(t, 0, ti.count(t, countProcessed, sha(body)), "a failed attempt's effect was kept")
		logs := ti.logs.String()
		assert.Contains(t, logs, `"level":"WARN","msg":"delivery handler failed: River retries it","event":"Email.Opened"`)
		assert.Contains(t, logs, `"attempt":2`)
		assert.Contains(t, logs, `"err":"downstream unavailable"`)
		// Cakemail's retry of the same delivery is acknowledged, not a new job.
		assert.Equal(t, http.StatusOK, ti.post(body, testSecret))
	})
}

func TestPanicIsLoggedWithItsStackAndRetried(t *testing.T) {
	t.Parallel()
	var runs atomic.Int32
	router := webhooks.NewRouter()
	router.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
		if runs.Add(1) == 1 {
			panic("handler bug")
		}
		return recordEvent(ctx, e)
	})
	ti := startInbox(t, databases[0].url(t), router)
	body := payload("Email.Opened", "g@example.com")
	require.Equal(t, http.StatusAccepted, ti.post(body, testSecret))
	ti.waitCount(t, 1, countProcessed, sha(body))
	assert.EqualValues(t, 2, runs.Load())
	logs := ti.logs.String()
	assert.Contains(t, logs, `"level":"ERROR","msg":"delivery handler panicked"`)
	assert.Contains(t, logs, "handler bug")
	assert.Contains(t, logs, "inbox_test.go", "the panic's stack is logged")
}

// Data that can never decode into the handler's type, or an event the SDK
// refuses, goes to the dead letters at once rather than after 20 days.
func TestUnfixableDeliveryIsADeadLetterOnItsFirstAttempt(t *testing.T) {
	t.Parallel()
	onBothDatabases(t, func(t *testing.T, url string) {
		type strict struct {
			ContactID int `json:"contact_id"`
		}
		var runs atomic.Int32
		router := webhooks.NewRouter()
		router.On(webhooks.EventEmailOpened, webhooks.HandleData(func(ctx context.Context, e *webhooks.Event, d strict) error {
			runs.Add(1)
			return recordEvent(ctx, e)
		}))
		ti := startInbox(t, url, router)
		body := []byte(fmt.Sprintf(`{"event":"Email.Opened","created_on":%d,"data":{"contact_id":"not a number"}}`, time.Now().Unix()))
		require.Equal(t, http.StatusAccepted, ti.post(body, testSecret))
		ti.waitCount(t, 1, `SELECT count(*) FROM river_job WHERE state = 'cancelled' AND attempt = 1`)
		assert.EqualValues(t, 0, runs.Load())
		assert.Contains(t, ti.logs.String(), `"level":"ERROR","msg":"delivery cannot be handled as sent: sent to the dead letters"`)
	})
}

// Every body the verifier accepts is stored byte for byte, and the worker
// dispatches what ParseEvent gives for those bytes.
func TestAwkwardBodiesAreStoredExactlyAndDispatchedAsVerified(t *testing.T) {
	t.Parallel()
	onBothDatabases(t, func(t *testing.T, url string) {
		var mu sync.Mutex
		seen := map[string]webhooks.EventType{}
		router := webhooks.NewRouter()
		router.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
			d, _ := inbox.DeliveryFromContext(ctx)
			mu.Lock()
			seen[d.BodySHA256] = e.Type
			mu.Unlock()
			return recordEvent(ctx, e)
		})
		ti := startInbox(t, url, router)
		now := time.Now().Unix()
		bodies := [][]byte{
			[]byte(fmt.Sprintf(`{"event":"Email.Opened","created_on":%d,"data":{"email":"nul\u0000@example.com"}}`, now)),
			append([]byte(fmt.Sprintf(`{"event":"Email.Clicked","created_on":%d,"data":{"email":"`, now)), 0xff, 0xfe, '"', '}', '}'),
			[]byte(fmt.Sprintf(`{"event":"Email.Opened","event":"Email.Bounced","created_on":%d}`, now)),
			[]byte(fmt.Sprintf(`{"event":null,"created_on":%d,"Event":"Email.Opened"}`, now)),
			[]byte(fmt.Sprintf("{\"event\" : \"Email.Opened\",\n  \"created_on\":%d}", now)),
		}
		// 2,000 ordinary deliveries meanwhile: none may be refused because an
		// awkward one shares its commit.
		var refused atomic.Int32
		var wg sync.WaitGroup
		for s := range 8 {
			wg.Go(func() {
				for i := range 250 {
					if ti.post(payload("Email.Opened", fmt.Sprintf("n%d-%d@example.com", s, i)), testSecret)/100 != 2 {
						refused.Add(1)
					}
				}
			})
		}
		for _, body := range bodies {
			want, err := webhooks.ParseEvent(body)
			if err != nil {
				assert.Equal(t, http.StatusBadRequest, ti.post(body, testSecret), "%q", body)
				continue
			}
			require.Equal(t, http.StatusAccepted, ti.post(body, testSecret), "%q", body)
			ti.waitCount(t, 1, countProcessed, sha(body))
			mu.Lock()
			assert.Equal(t, want.Type, seen[sha(body)], "%q", body)
			mu.Unlock()
		}
		wg.Wait()
		assert.Zero(t, refused.Load(), "ordinary deliveries refused beside awkward ones")
		assert.NotContains(t, ti.logs.String(), "not stored")
	})
}

func TestDeliveryOlderThanTheDuplicateWindowIsRefused(t *testing.T) {
	t.Parallel()
	onBothDatabases(t, func(t *testing.T, url string) {
		ti := startInbox(t, url, nil)
		old := []byte(fmt.Sprintf(`{"event":"Email.Opened","created_on":%d,"data":{}}`, time.Now().Add(-400*24*time.Hour).Unix()))
		assert.Equal(t, http.StatusBadRequest, ti.post(old, testSecret))
		assert.EqualValues(t, 0, ti.count(t, `SELECT count(*) FROM river_job`))
		logs := ti.logs.String()
		assert.Contains(t, logs, "older than the duplicate window")
		assert.Contains(t, logs, `"age":"9600h0m`)
	})
}

func TestHealthzTellsWhetherDeliveriesWouldBeStored(t *testing.T) {
	t.Parallel()
	ti := startInbox(t, databases[0].url(t), nil)
	assert.Equal(t, http.StatusOK, ti.get("/healthz").Code)
	require.NoError(t, ti.ib.Stop(context.Background()))
	w := ti.get("/healthz")
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Contains(t, w.Body.String(), "not accepting")
}

func TestDeliveryDuringShutdownIsRefusedForRetry(t *testing.T) {
	t.Parallel()
	ti := startInbox(t, databases[0].url(t), nil)
	require.NoError(t, ti.ib.Stop(context.Background()))
	w := ti.postRecorder(payload("Email.Opened", "late@example.com"))
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, "5", w.Header().Get("Retry-After"))
}

func TestOneProcessPerSQLiteFileWhateverThePath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "inbox.db")
	ib, err := inbox.Open(context.Background(), "sqlite://"+path, recordingRouter(), inbox.WithLogger(discard()))
	require.NoError(t, err)
	defer ib.Stop(context.Background())

	require.NoError(t, os.Symlink(path, filepath.Join(dir, "symlink.db")))
	require.NoError(t, os.Link(path, filepath.Join(dir, "hardlink.db")))
	for _, other := range []string{path, filepath.Join(dir, "symlink.db"), filepath.Join(dir, "hardlink.db")} {
		_, err := inbox.Open(context.Background(), "sqlite://"+other, recordingRouter(), inbox.WithLogger(discard()))
		require.Error(t, err, other)
		assert.Contains(t, err.Error(), "another process is using", other)
	}
}

func TestOpenRefusesBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, url := range []string{"mysql://u:hunter2@db/app", "sqlite://", "sqlite:///x.db?mode=ro", "hunter2",
		"postgres://root:hunter2@x:notaport/y"} {
		_, err := inbox.Open(ctx, url, recordingRouter())
		require.Error(t, err, url)
		assert.NotContains(t, err.Error(), "hunter2", "a password reached an error")
	}
	_, err := inbox.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "x.db"), nil)
	assert.ErrorContains(t, err, "nil router")
	_, err = inbox.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "x.db"), recordingRouter(), inbox.WithWorkers(0))
	assert.ErrorContains(t, err, "WithWorkers(0)")
	_, err = inbox.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"), recordingRouter())
	assert.Error(t, err)
}

func TestWorkerAndAcceptorRefuseInvalidOptionsAtOnce(t *testing.T) {
	t.Parallel()
	assert.PanicsWithError(t, "inbox: WithMaxBatch(0): want at least 1", func() {
		inbox.NewWorker[*sql.Tx](recordingRouter(), inbox.WithMaxBatch(0))
	})
	assert.Panics(t, func() { inbox.NewWorker[*sql.Tx](nil) })
}

// River UI lists jobs by kind, tags and time, not args: each delivery's job
// is tagged with its event type, dots made underscores as River's tags want.
func TestJobsAreTaggedWithTheirEventType(t *testing.T) {
	t.Parallel()
	onBothDatabases(t, func(t *testing.T, url string) {
		ti := startInbox(t, url, nil)
		body := payload("email.opened", "tag@example.com")
		require.Equal(t, http.StatusAccepted, ti.post(body, testSecret))
		query := `SELECT count(*) FROM river_job WHERE 'Email_Opened' = ANY(tags)`
		if ti.db != nil {
			query = `SELECT count(*) FROM river_job, json_each(river_job.tags) WHERE json_each.value = 'Email_Opened'`
		}
		assert.EqualValues(t, 1, ti.count(t, query))
	})
}
