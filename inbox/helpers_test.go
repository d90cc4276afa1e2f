package inbox_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
	"github.com/cakemail-go/webhooks/internal/pgtest"
	"github.com/cakemail-go/webhooks/internal/testutil"
	"github.com/cakemail-go/webhooks/webhookstest"
)

func TestMain(m *testing.M) {
	if url := os.Getenv(servingProcessEnv); url != "" {
		serveForATest(url)
		return
	}
	// Example_bringYourOwnRiver reads its database from DATABASE_URL, as a
	// service would.
	if url, err := pgtest.DatabaseURL("example_bring_your_own_river"); err == nil {
		os.Setenv("DATABASE_URL", url)
	} else {
		fmt.Fprintln(os.Stderr, "no Postgres for Example_bringYourOwnRiver, which will fail:", err)
	}
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

const testSecret = "inbox-test-secret-0123456789abcdef"

// processedEvents is the tests' sample effect, as examples/receiver has it.
const processedEvents = `CREATE TABLE IF NOT EXISTS processed_events (
	body_sha256 TEXT NOT NULL,
	event_type TEXT NOT NULL,
	processed_at TIMESTAMPTZ NOT NULL
)`

// recordEvent writes the sample effect in the delivery's transaction.
func recordEvent(ctx context.Context, e *webhooks.Event) error {
	d, ok := inbox.DeliveryFromContext(ctx)
	if !ok {
		return errors.New("recordEvent runs only on the delivery worker")
	}
	_, err := d.Tx.Exec(ctx, `INSERT INTO processed_events (body_sha256, event_type, processed_at) VALUES ($1, $2, $3)`,
		d.BodySHA256, string(e.Type), time.Now().UTC())
	return err
}

func recordingRouter() *webhooks.Router {
	r := webhooks.NewRouter()
	r.OnUnhandled(recordEvent)
	return r
}

// testInbox is a started inbox behind a verifier, and a connection of the
// test's own to read its database.
type testInbox struct {
	ib   *inbox.Inbox
	h    http.Handler
	logs *testutil.SyncBuffer
	db   *sql.DB // SQLite: read-only; nil on Postgres
	pg   string  // Postgres URL
}

// database is where a test runs: a fresh SQLite file or Postgres database.
type database struct {
	name string
	url  func(t testing.TB) string
}

var databases = []database{
	{"sqlite", func(t testing.TB) string { return "sqlite://" + filepath.Join(t.TempDir(), "inbox.db") }},
	{"postgres", func(t testing.TB) string { return pgtest.URL(t) }},
}

// onBothDatabases runs a test on SQLite and on Postgres: the same code on each.
func onBothDatabases(t *testing.T, test func(t *testing.T, url string)) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			t.Parallel()
			test(t, db.url(t))
		})
	}
}

func startInbox(t testing.TB, url string, router *webhooks.Router, opts ...inbox.Option) *testInbox {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if router == nil {
		router = recordingRouter()
	}
	ctx := context.Background()
	opts = append([]inbox.Option{inbox.WithLogger(logger), inbox.WithDDL(processedEvents)}, opts...)
	ib, err := inbox.Open(ctx, url, router, opts...)
	require.NoError(t, err)
	v, err := webhooks.NewVerifier([]string{testSecret}, webhooks.WithOnReject(func(r *http.Request, err error) {
		logger.Warn("delivery refused", "err", err)
		ib.OnReject(r, err)
	}))
	require.NoError(t, err)
	require.NoError(t, ib.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		assert.NoError(t, ib.Stop(stopCtx))
		assert.NotContains(t, logs.String(), testSecret, "a secret reached the logs")
	})
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/cakemail", v.Middleware(ib))
	mux.Handle("GET /healthz", ib.HealthHandler())
	ti := &testInbox{ib: ib, h: mux, logs: logs}
	if path, ok := strings.CutPrefix(url, "sqlite://"); ok {
		ti.db, err = sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
		require.NoError(t, err)
		t.Cleanup(func() { ti.db.Close() })
	} else {
		ti.pg = url
	}
	return ti
}

func (ti *testInbox) post(body []byte, secret string) int {
	w := httptest.NewRecorder()
	ti.h.ServeHTTP(w, webhookstest.NewSignedRequest("/webhooks/cakemail", body, secret))
	return w.Code
}

func (ti *testInbox) postRecorder(body []byte) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	ti.h.ServeHTTP(w, webhookstest.NewSignedRequest("/webhooks/cakemail", body, testSecret))
	return w
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func (ti *testInbox) get(path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	ti.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w
}

func (ti *testInbox) count(t testing.TB, query string, args ...any) int64 {
	t.Helper()
	n, err := countRows(context.Background(), ti.db, ti.pg, query, args...)
	require.NoError(t, err)
	return n
}

func countRows(ctx context.Context, db *sql.DB, pgURL, query string, args ...any) (int64, error) {
	var n int64
	if db != nil {
		return n, db.QueryRowContext(ctx, query, args...).Scan(&n)
	}
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	return n, conn.QueryRow(ctx, query, args...).Scan(&n)
}

// waitCount waits until query returns want.
func (ti *testInbox) waitCount(t testing.TB, want int64, query string, args ...any) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		n, err := countRows(context.Background(), ti.db, ti.pg, query, args...)
		require.NoError(c, err)
		assert.Equal(c, want, n, query)
	}, 15*time.Second, 20*time.Millisecond)
}

func payload(event, email string) []byte {
	return []byte(fmt.Sprintf(`{"event":%q,"account_id":7,"created_on":%d,"data":{"email":%q}}`, event, time.Now().Unix(), email))
}

func sha(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

const countProcessed = `SELECT count(*) FROM processed_events WHERE body_sha256 = $1`
