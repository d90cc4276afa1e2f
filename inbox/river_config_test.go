package inbox_test

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
	"github.com/cakemail-go/webhooks/internal/testutil"
	"github.com/cakemail-go/webhooks/webhookstest"
)

func TestRiverConfigAppliesWhatTheInboxNeeds(t *testing.T) {
	t.Parallel()
	cfg := &river.Config{Queues: map[string]river.QueueConfig{"emails": {MaxWorkers: 5}}}
	require.NoError(t, inbox.RiverConfig(cfg, inbox.WithSubscriber("crm", webhooks.NewRouter()), inbox.WithWorkers(20), inbox.WithTracing()))
	assert.Equal(t, map[string]river.QueueConfig{
		"emails":             {MaxWorkers: 5},
		river.QueueDefault:   {MaxWorkers: 20},
		"cakemail_inbox_crm": {MaxWorkers: 20},
	}, cfg.Queues)
	assert.Equal(t, inbox.DefaultDuplicateWindow, cfg.CompletedJobRetentionPeriod)
	assert.Equal(t, inbox.DefaultDeadLetterRetention, cfg.DiscardedJobRetentionPeriod)
	assert.Equal(t, inbox.DefaultDeadLetterRetention, cfg.CancelledJobRetentionPeriod)
	assert.Len(t, cfg.Middleware, 2, "River's OpenTelemetry middleware and the accept span's link")

	kept := &river.Config{CompletedJobRetentionPeriod: -1, Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 3}}}
	require.NoError(t, inbox.RiverConfig(kept))
	assert.Equal(t, time.Duration(-1), kept.CompletedJobRetentionPeriod, "kept for ever is long enough")
	assert.Equal(t, 3, kept.Queues[river.QueueDefault].MaxWorkers, "the service's own queue settings stay")
}

func TestRiverConfigRefusesWhatWouldBreakTheInbox(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cfg  *river.Config
		opts []inbox.Option
		want string
	}{
		{&river.Config{CompletedJobRetentionPeriod: 24 * time.Hour}, nil, "CompletedJobRetentionPeriod is 24h0m0s, shorter than the inbox's 168h0m0s"},
		{&river.Config{CancelledJobRetentionPeriod: time.Hour}, nil, "CancelledJobRetentionPeriod"},
		{&river.Config{Queues: map[string]river.QueueConfig{river.QueueDefault: {}}}, nil, `queue "default" has no workers`},
		{&river.Config{}, []inbox.Option{inbox.WithDDL("CREATE TABLE t (x INT)")}, "WithDDL does not apply to RiverConfig"},
		{&river.Config{}, []inbox.Option{inbox.WithJobTimeout(time.Second)}, "WithJobTimeout does not apply to RiverConfig"},
		{nil, nil, "RiverConfig(nil)"},
	} {
		var before river.Config
		if c.cfg != nil {
			before = *c.cfg
		}
		err := inbox.RiverConfig(c.cfg, c.opts...)
		require.Error(t, err)
		assert.Contains(t, err.Error(), c.want)
		if c.cfg != nil {
			assert.Equal(t, before, *c.cfg, "a refused configuration is left as it was")
		}
	}
}

// An option that does not apply to the worker or the acceptor is a mistake
// told at once, not an option silently dropped.
func TestWorkerAndAcceptorRefuseOptionsThatDoNotApply(t *testing.T) {
	t.Parallel()
	assert.PanicsWithError(t, "inbox: WithDDL does not apply to NewWorker: the worker takes WithLogger, WithJobTimeout, WithTxTimeout, WithMaxBatch, WithDuplicateWindow, WithSubscriber and WithOrderKey", func() {
		inbox.NewWorker[*sql.Tx](webhooks.NewRouter(), inbox.WithDDL("CREATE TABLE t (x INT)"))
	})
	assert.Panics(t, func() { inbox.NewWorker[*sql.Tx](webhooks.NewRouter(), inbox.WithWorkers(3)) })
	assert.NotPanics(t, func() {
		inbox.NewWorker[*sql.Tx](webhooks.NewRouter(), inbox.WithOrderKey(func(*webhooks.Event) (string, bool) { return "", false }),
			inbox.WithSubscriber("crm", webhooks.NewRouter()), inbox.WithJobTimeout(time.Second))
	})
	assert.Panics(t, func() { inbox.NewWorker[string](webhooks.NewRouter()) }, "a driver the inbox does not know")

	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "x.db"))
	require.NoError(t, err)
	defer db.Close()
	client, err := river.NewClient(riversqlite.New(db), &river.Config{})
	require.NoError(t, err)
	assert.PanicsWithError(t, "inbox: WithOrderKey does not apply to NewAcceptor: the acceptor takes WithLogger, WithDuplicateWindow, WithMaxAttempts, WithAcknowledgeTimeout, WithSubscriber and WithTracing", func() {
		inbox.NewAcceptor(client, inbox.WithOrderKey(func(*webhooks.Event) (string, bool) { return "", false }))
	})
}

// A service whose client does not work the inbox's queue hears of it at the
// first delivery, instead of deliveries acknowledged and left waiting.
func TestAcceptorSaysWhenNoClientWorksItsQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "x.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	require.NoError(t, err)
	db.SetMaxOpenConns(1)
	defer db.Close()
	migrator, err := rivermigrate.New(riversqlite.New(db), nil)
	require.NoError(t, err)
	_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	require.NoError(t, err)
	workers := river.NewWorkers()
	river.AddWorker(workers, inbox.NewWorker[*sql.Tx](recordingRouter()))
	client, err := river.NewClient(riversqlite.New(db), &river.Config{
		Queues: map[string]river.QueueConfig{"emails": {MaxWorkers: 2}}, Workers: workers, Logger: discard()})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	defer client.Stop(ctx)

	logs := &testutil.SyncBuffer{}
	acceptor := inbox.NewAcceptor(client, inbox.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))
	defer acceptor.Close()
	v, err := webhooks.NewVerifier([]string{testSecret})
	require.NoError(t, err)
	w := httptest.NewRecorder()
	v.Middleware(acceptor).ServeHTTP(w, webhookstest.NewSignedRequest("/", payload("Email.Opened", "q@example.com"), testSecret))
	require.Equal(t, http.StatusAccepted, w.Code)
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), `"level":"ERROR","msg":"inbox: no River client has ever worked this subscriber's queue`)
	}, 10*time.Second, 10*time.Millisecond, "logs: %s", logs)
	assert.Contains(t, logs.String(), `"subscriber":"default","queue":"default"`)
}
