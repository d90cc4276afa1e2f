package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/internal/testutil"
	"github.com/cakemail-go/webhooks/webhookstest"
)

// Aliases so the generic tests read the same on both databases.
type (
	sqlTx = sql.Tx
	pgxTx = pgx.Tx
)

const testSecret = "receiver-test-secret-0123456789abcdef"

// testReceiver is a started receiver and its HTTP routes.
type testReceiver[TTx any] struct {
	rc   *receiver[TTx]
	db   *store[TTx]
	h    http.Handler
	logs *testutil.SyncBuffer
}

// startReceiver runs a receiver on db; configure may tune River for the test.
func startReceiver[TTx any](t *testing.T, db *store[TTx], router *webhooks.Router, configure ...func(*river.Config)) *testReceiver[TTx] {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if router == nil {
		router = newRouter(logger)
	}
	v, err := webhooks.NewVerifier([]string{testSecret}, webhooks.WithOnReject(func(r *http.Request, err error) {
		logger.Warn("delivery refused", "remote", r.RemoteAddr, "err", err)
	}))
	require.NoError(t, err)
	ctx := context.Background()
	rc, err := newReceiver(ctx, db, router, logger, configure...)
	require.NoError(t, err)
	require.NoError(t, rc.start(ctx))
	t.Cleanup(func() {
		// stop is idempotent, so tests may stop the receiver themselves.
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		assert.NoError(t, rc.stop(stopCtx))
		assert.NotContains(t, logs.String(), testSecret, "a secret reached the logs")
	})
	return &testReceiver[TTx]{rc: rc, db: db, h: rc.routes(v), logs: logs}
}

func (tr *testReceiver[TTx]) post(body []byte, secret string) int {
	w := httptest.NewRecorder()
	tr.h.ServeHTTP(w, webhookstest.NewSignedRequest("/webhooks/cakemail", body, secret))
	return w.Code
}

func (tr *testReceiver[TTx]) count(t *testing.T, query string, args ...any) int64 {
	t.Helper()
	n, err := tr.db.count(context.Background(), query, args...)
	require.NoError(t, err)
	return n
}

// waitCount waits until query returns want.
func (tr *testReceiver[TTx]) waitCount(t *testing.T, want int64, query string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := tr.count(t, query, args...)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: got %d, want %d", query, n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func payload(event string, email string) []byte {
	return []byte(`{"event":"` + event + `","account_id":7,"created_on":1700000000,"data":{"email":"` + email + `"}}`)
}

func sha(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

func openSQLite(t *testing.T) *store[*sqlTx] {
	t.Helper()
	db, err := newSQLiteStore(filepath.Join(t.TempDir(), "receiver.db"))
	require.NoError(t, err)
	t.Cleanup(db.close)
	return db
}

func openPostgres(t *testing.T) *store[pgxTx] {
	t.Helper()
	url := postgresURL(t)
	db, err := newPostgresStore(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(db.close)
	return db
}

// onBothDatabases runs a test on SQLite and on Postgres: the same code on each.
func onBothDatabases(t *testing.T, sqlite func(*testing.T), postgres func(*testing.T)) {
	t.Run("sqlite", sqlite)
	t.Run("postgres", postgres)
}

const countProcessed = `SELECT count(*) FROM processed_events WHERE body_sha256 = $1`

func TestDeliveryIsAcknowledgedAfterCommitAndProcessedOnce(t *testing.T) {
	t.Parallel()
	onBothDatabases(t,
		func(t *testing.T) { testProcessedOnce(t, openSQLite(t)) },
		func(t *testing.T) { testProcessedOnce(t, openPostgres(t)) })
}

func testProcessedOnce[TTx any](t *testing.T, db *store[TTx]) {
	tr := startReceiver(t, db, nil)
	// The CLI guide's spelling: routed and recorded under the canonical name.
	body := payload("email.opened", "a@example.com")
	require.Equal(t, http.StatusAccepted, tr.post(body, testSecret))
	// The job exists as soon as the 2xx is out: that is the promise.
	assert.EqualValues(t, 1, tr.count(t, `SELECT count(*) FROM river_job WHERE kind = 'cakemail_delivery'`))
	tr.waitCount(t, 1, countProcessed, sha(body))
	assert.EqualValues(t, 1, tr.count(t, `SELECT count(*) FROM processed_events WHERE body_sha256 = $1 AND event_type = $2`,
		sha(body), string(webhooks.EventEmailOpened)))

	assert.Equal(t, http.StatusOK, tr.post(body, testSecret), "a duplicate still gets a 2xx, or Cakemail retries it")
	other := payload("email.opened", "b@example.com")
	require.Equal(t, http.StatusAccepted, tr.post(other, testSecret))
	tr.waitCount(t, 1, countProcessed, sha(other))
	assert.EqualValues(t, 1, tr.count(t, countProcessed, sha(body)), "the duplicate was processed again")
	assert.EqualValues(t, 2, tr.count(t, `SELECT count(*) FROM river_job`))
	assert.Contains(t, tr.logs.String(), `"msg":"duplicate acknowledged"`)

	// An event the SDK does not know yet still reaches OnUnhandled, by its name as sent.
	unknown := payload("email.forwarded_to_a_friend", "c@example.com")
	require.Equal(t, http.StatusAccepted, tr.post(unknown, testSecret))
	tr.waitCount(t, 1, `SELECT count(*) FROM processed_events WHERE body_sha256 = $1 AND event_type = $2`,
		sha(unknown), "email.forwarded_to_a_friend")
}

func TestDuplicateIsRememberedAcrossRestarts(t *testing.T) {
	t.Parallel()
	onBothDatabases(t,
		func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "receiver.db")
			testDuplicateAcrossRestart(t, func() *store[*sqlTx] {
				db, err := newSQLiteStore(path)
				require.NoError(t, err)
				return db
			})
		},
		func(t *testing.T) {
			url := postgresURL(t)
			testDuplicateAcrossRestart(t, func() *store[pgxTx] {
				db, err := newPostgresStore(context.Background(), url)
				require.NoError(t, err)
				return db
			})
		})
}

func testDuplicateAcrossRestart[TTx any](t *testing.T, open func() *store[TTx]) {
	body := payload("Email.Clicked", "c@example.com")

	first := open()
	tr := startReceiver(t, first, nil)
	require.Equal(t, http.StatusAccepted, tr.post(body, testSecret))
	tr.waitCount(t, 1, countProcessed, sha(body))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, tr.rc.stop(ctx))
	first.close()

	second := open()
	t.Cleanup(second.close)
	tr2 := startReceiver(t, second, nil)
	assert.Equal(t, http.StatusOK, tr2.post(body, testSecret))
	time.Sleep(300 * time.Millisecond) // room for a wrong second run to show
	assert.EqualValues(t, 1, tr2.count(t, countProcessed, sha(body)))
}

func TestSameBodyAtOnceIsOneJob(t *testing.T) {
	t.Parallel()
	onBothDatabases(t,
		func(t *testing.T) { testSameBodyAtOnce(t, openSQLite(t)) },
		func(t *testing.T) { testSameBodyAtOnce(t, openPostgres(t)) })
}

func testSameBodyAtOnce[TTx any](t *testing.T, db *store[TTx]) {
	tr := startReceiver(t, db, nil)
	body := payload("Email.Bounced", "d@example.com")
	codes := make(chan int, 20)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() { defer wg.Done(); codes <- tr.post(body, testSecret) }()
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	assert.Equal(t, map[int]int{http.StatusAccepted: 1, http.StatusOK: 19}, count)
	tr.waitCount(t, 1, countProcessed, sha(body))
	time.Sleep(200 * time.Millisecond)
	assert.EqualValues(t, 1, tr.count(t, countProcessed, sha(body)))
}

func TestRefusedDeliveryIsLoggedWithItsReason(t *testing.T) {
	t.Parallel()
	tr := startReceiver(t, openSQLite(t), nil)
	body := payload("Email.Opened", "e@example.com")
	assert.Equal(t, http.StatusUnauthorized, tr.post(body, "not-the-secret"))
	w := httptest.NewRecorder()
	tr.h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/webhooks/cakemail", bytes.NewReader(body)))
	assert.Equal(t, http.StatusUnauthorized, w.Code)

	logs := tr.logs.String()
	assert.Contains(t, logs, `"msg":"delivery refused"`)
	assert.Contains(t, logs, webhooks.ErrSignatureMismatch.Error())
	assert.Contains(t, logs, webhooks.ErrMissingSignature.Error())
	assert.NotContains(t, logs, webhooks.Sign(body, "not-the-secret"), "the refused signature reached the logs")
	assert.EqualValues(t, 0, tr.count(t, `SELECT count(*) FROM river_job`))
}

func TestFailingHandlerIsRetriedThenKeptForAnOperator(t *testing.T) {
	t.Parallel()
	onBothDatabases(t,
		func(t *testing.T) { testRetriedThenKept(t, openSQLite(t)) },
		func(t *testing.T) { testRetriedThenKept(t, openPostgres(t)) })
}

func testRetriedThenKept[TTx any](t *testing.T, db *store[TTx]) {
	var fixed atomic.Bool
	var runs atomic.Int32
	router := webhooks.NewRouter()
	router.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
		runs.Add(1)
		// The effect is written first: a failure must roll it back.
		if err := recordEvent(ctx, e); err != nil {
			return err
		}
		if !fixed.Load() {
			return errors.New("downstream unavailable")
		}
		return nil
	})
	tr := startReceiver(t, db, router, func(c *river.Config) { c.MaxAttempts = 2 })
	body := payload("Email.Opened", "f@example.com")
	require.Equal(t, http.StatusAccepted, tr.post(body, testSecret))

	// Two attempts, a second apart (River's backoff), then discarded: kept
	// in river_job with its errors.
	tr.waitCount(t, 1, `SELECT count(*) FROM river_job WHERE state = 'discarded'`)
	assert.EqualValues(t, 2, runs.Load())
	assert.EqualValues(t, 0, tr.count(t, countProcessed, sha(body)), "a failed attempt's effect was kept")
	jobs, err := tr.rc.client.JobList(context.Background(), river.NewJobListParams().States(rivertype.JobStateDiscarded))
	require.NoError(t, err)
	require.Len(t, jobs.Jobs, 1)
	job := jobs.Jobs[0]
	assert.Len(t, job.Errors, 2)
	assert.Contains(t, job.Errors[1].Error, "downstream unavailable")

	// Cakemail's retry of the same delivery is acknowledged, not a new job.
	assert.Equal(t, http.StatusOK, tr.post(body, testSecret))

	// The operator fixes the cause and retries the job.
	fixed.Store(true)
	_, err = tr.rc.client.JobRetry(context.Background(), job.ID)
	require.NoError(t, err)
	tr.waitCount(t, 1, countProcessed, sha(body))
	tr.waitCount(t, 1, `SELECT count(*) FROM river_job WHERE state = 'completed'`)
}

func TestPanickingHandlerIsRetriedNotACrash(t *testing.T) {
	t.Parallel()
	var runs atomic.Int32
	router := webhooks.NewRouter()
	router.OnUnhandled(func(ctx context.Context, e *webhooks.Event) error {
		if runs.Add(1) == 1 {
			panic("handler bug")
		}
		return recordEvent(ctx, e)
	})
	tr := startReceiver(t, openSQLite(t), router)
	body := payload("Email.Opened", "g@example.com")
	require.Equal(t, http.StatusAccepted, tr.post(body, testSecret))
	tr.waitCount(t, 1, countProcessed, sha(body))
	assert.EqualValues(t, 2, runs.Load())
}

func TestHealthzChecksTheDatabase(t *testing.T) {
	t.Parallel()
	db := openSQLite(t)
	tr := startReceiver(t, db, nil)
	w := httptest.NewRecorder()
	tr.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	assert.Equal(t, http.StatusOK, w.Code)

	// Stop the receiver, then take the database away.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, tr.rc.stop(ctx))
	db.close()
	w = httptest.NewRecorder()
	tr.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Contains(t, tr.logs.String(), "database unreachable")
}

func TestDeliveryDuringShutdownIsRefusedForRetry(t *testing.T) {
	t.Parallel()
	tr := startReceiver(t, openSQLite(t), nil)
	tr.rc.stopAccepting()
	assert.Equal(t, http.StatusServiceUnavailable, tr.post(payload("Email.Opened", "late@example.com"), testSecret))
}

func TestDeliveryFromFakeCakemail(t *testing.T) {
	t.Parallel()
	fake := webhookstest.NewServer()
	defer fake.Close()
	ctx := context.Background()
	client, err := webhooks.NewClient(webhooks.WithBaseURL(fake.URL), webhooks.WithAccessToken(fake.Token()))
	require.NoError(t, err)

	db := openSQLite(t)
	// The receiver's URL must exist before the webhook, and its secret after: route through a swap.
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	defer srv.Close()
	hook, err := client.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailBounced, URL: srv.URL + "/webhooks/cakemail"})
	require.NoError(t, err)
	hook, err = client.Get(ctx, hook.ID)
	require.NoError(t, err)
	logs := &testutil.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	v, err := webhooks.NewVerifier([]string{hook.Secret})
	require.NoError(t, err)
	rc, err := newReceiver(ctx, db, newRouter(logger), logger)
	require.NoError(t, err)
	require.NoError(t, rc.start(ctx))
	defer rc.stop(ctx)
	handler = rc.routes(v)

	deliveries, err := fake.Trigger(ctx, webhooks.EventEmailBounced, map[string]string{"email": "gone@example.com"})
	require.NoError(t, err)
	require.Len(t, deliveries, 1)
	assert.Equal(t, http.StatusAccepted, deliveries[0].StatusCode)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := db.count(ctx, `SELECT count(*) FROM processed_events WHERE event_type = $1`, string(webhooks.EventEmailBounced))
		require.NoError(t, err)
		if n == 1 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the fake's delivery was not processed")
		time.Sleep(20 * time.Millisecond)
	}
	assert.NotContains(t, logs.String(), hook.Secret)
}

func TestParseDatabaseURL(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]databaseTarget{
		"":                                      {sqlitePath: "receiver.db"},
		"sqlite:///var/lib/rcv/events.db":       {sqlitePath: "/var/lib/rcv/events.db"},
		"sqlite://relative.db":                  {sqlitePath: "relative.db"},
		"postgres://u:pw@db:5432/app":           {postgresURL: "postgres://u:pw@db:5432/app"},
		"postgresql://u@db/app?sslmode=disable": {postgresURL: "postgresql://u@db/app?sslmode=disable"},
	} {
		got, err := parseDatabaseURL(raw)
		require.NoError(t, err, raw)
		assert.Equal(t, want, got, raw)
	}
	for _, raw := range []string{"mysql://u:hunter2@db/app", "sqlite://", "sqlite:///x.db?mode=ro", "hunter2"} {
		_, err := parseDatabaseURL(raw)
		require.Error(t, err, raw)
		assert.NotContains(t, err.Error(), "hunter2", "a password reached an error")
	}
}

func TestRunRefusesBadConfiguration(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, env := range map[string]map[string]string{
		"no secret":  {},
		"bad port":   {"CAKEMAIL_WEBHOOK_SECRET": testSecret, "PORT": "http"},
		"bad scheme": {"CAKEMAIL_WEBHOOK_SECRET": testSecret, "DATABASE_URL": "mysql://root:hunter2@x/y"},
		"bad postgres url": {"CAKEMAIL_WEBHOOK_SECRET": testSecret,
			"DATABASE_URL": "postgres://root:hunter2@x:notaport/y"},
		"sqlite dir missing": {"CAKEMAIL_WEBHOOK_SECRET": testSecret,
			"DATABASE_URL": "sqlite://" + filepath.Join(dir, "no", "such", "dir", "r.db")},
	} {
		var logs testutil.SyncBuffer
		err := run(context.Background(), func(k string) string { return env[k] }, slog.New(slog.NewJSONHandler(&logs, nil)))
		require.Error(t, err, name)
		assert.NotContains(t, err.Error()+logs.String(), "hunter2", name)
		assert.NotContains(t, err.Error()+logs.String(), testSecret, name)
	}
}

func TestSplitSecrets(t *testing.T) {
	t.Parallel()
	assert.Equal(t, []string{"old", "new"}, splitSecrets(" old , ,new "))
	assert.Empty(t, splitSecrets(" , "))
}

func TestSQLiteSettingsBehindTheDurabilityClaim(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "receiver.db")
	db, err := newSQLiteStore(path)
	require.NoError(t, err)
	defer db.close()
	ctx := context.Background()
	for query, want := range map[string]int64{
		`SELECT synchronous FROM pragma_synchronous()`:           2, // FULL: a commit survives a power cut
		`SELECT journal_mode = 'wal' FROM pragma_journal_mode()`: 1,
		`PRAGMA wal_autocheckpoint`:                              0, // checkpoints run beside, not inside, commits
		`SELECT timeout FROM pragma_busy_timeout()`:              10000,
	} {
		got, err := db.count(ctx, query)
		require.NoError(t, err, query)
		assert.Equal(t, want, got, query)
	}
	// A second opener of the same file is refused (the lock is per open
	// file, so this holds within one process too).
	_, err = newSQLiteStore(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "another receiver is using")
}
