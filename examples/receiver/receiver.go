package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/cakemail-go/webhooks"
)

const (
	// duplicateWindow is how long a completed delivery stays in River's
	// table, and so how long the same body again is taken for a duplicate.
	duplicateWindow = 7 * 24 * time.Hour
	// deadLetterRetention keeps discarded deliveries (every attempt failed)
	// for an operator to see and retry.
	deadLetterRetention = 30 * 24 * time.Hour
	// maxAttempts with River's backoff (attempt^4 seconds) spreads retries
	// over about 20 days before a delivery is discarded.
	maxAttempts = 25
	// jobTimeout bounds one handler run.
	jobTimeout = time.Minute
	// maxBatch caps how many waiting deliveries share one commit.
	maxBatch = 256
	// insertTimeout bounds one commit; past it Cakemail is asked to retry.
	insertTimeout = 4 * time.Second
	// rescueInterval is how often the receiver looks for jobs left running
	// by a process that died.
	rescueInterval = 2 * time.Second
)

// receiver acknowledges a verified delivery once its job is committed, and
// works the jobs through a webhooks.Router.
type receiver[TTx any] struct {
	db       *store[TTx]
	client   *river.Client[TTx]
	clientID string
	log      *slog.Logger

	inserts chan insertRequest // unbuffered: waiting senders form the next batch
	quit    chan struct{}      // closed when no more deliveries are accepted
	wg      sync.WaitGroup     // the committer and the rescuer
}

type insertRequest struct {
	args deliveryArgs
	done chan insertResult // buffered, so the committer never waits on a caller
}

type insertResult struct {
	duplicate bool
	err       error
}

// newReceiver migrates the database and prepares the River client; start
// runs it. configure, for tests, adjusts River's settings first.
func newReceiver[TTx any](ctx context.Context, db *store[TTx], router *webhooks.Router, logger *slog.Logger, configure ...func(*river.Config)) (*receiver[TTx], error) {
	if err := db.migrate(ctx); err != nil {
		return nil, fmt.Errorf("migrating the %s database: %w", db.name, err)
	}
	rc := &receiver[TTx]{
		db:       db,
		clientID: newClientID(),
		log:      logger,
		inserts:  make(chan insertRequest),
		quit:     make(chan struct{}),
	}
	registry := river.NewWorkers()
	river.AddWorker(registry, &deliveryWorker[TTx]{db: db, router: router})
	config := &river.Config{
		ID:                          rc.clientID,
		Logger:                      slog.New(minLevel{logger.Handler(), slog.LevelWarn}).With("component", "river"),
		Queues:                      map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: db.workers}},
		Workers:                     registry,
		MaxAttempts:                 maxAttempts,
		JobTimeout:                  jobTimeout,
		CompletedJobRetentionPeriod: duplicateWindow,
		DiscardedJobRetentionPeriod: deadLetterRetention,
		CancelledJobRetentionPeriod: deadLetterRetention,
		// New jobs are found by notification; these only bound the wait
		// when one is missed, and keep fetches from crowding out inserts.
		FetchCooldown:     50 * time.Millisecond,
		FetchPollInterval: 100 * time.Millisecond,
	}
	for _, fn := range configure {
		fn(config)
	}
	client, err := river.NewClient(db.driver, config)
	if err != nil {
		return nil, err
	}
	rc.client = client
	return rc, nil
}

// newClientID names this process in river_job.attempted_by; it is never
// reused, so a dead process's jobs can be told from a live one's.
func newClientID() string {
	host, _ := os.Hostname()
	var b [6]byte
	rand.Read(b[:])
	return fmt.Sprintf("receiver-%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// start claims this process's liveness, hands back jobs left running by dead
// processes, and starts the committer, the rescuer and River's workers.
func (rc *receiver[TTx]) start(ctx context.Context) error {
	if err := rc.db.claimLiveness(ctx, rc.clientID); err != nil {
		return err
	}
	if err := rc.rescueOrphans(ctx); err != nil {
		return fmt.Errorf("rescuing jobs of dead processes: %w", err)
	}
	// Stopping is stop's job: a cancelled ctx would cut running jobs short.
	if err := rc.client.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	rc.wg.Add(2)
	go func() { defer rc.wg.Done(); rc.commitLoop() }()
	go func() { defer rc.wg.Done(); rc.rescueLoop() }()
	return nil
}

// stopAccepting makes later deliveries answer 503 and ends the committer
// once it has answered every delivery it took.
func (rc *receiver[TTx]) stopAccepting() {
	select {
	case <-rc.quit:
	default:
		close(rc.quit)
	}
	rc.wg.Wait()
}

// stop lets running jobs finish within ctx, then cancels what is left; a
// cancelled job runs again on the next start.
func (rc *receiver[TTx]) stop(ctx context.Context) error {
	rc.stopAccepting()
	if err := rc.client.Stop(ctx); err != nil {
		rc.log.Warn("jobs still running at the shutdown deadline: cancelling them", "err", err)
		cancelCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return rc.client.StopAndCancel(cancelCtx)
	}
	return nil
}

// routes serves the webhook behind the verifier, and the health check.
func (rc *receiver[TTx]) routes(v *webhooks.Verifier) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/cakemail", v.Middleware(http.HandlerFunc(rc.accept)))
	mux.HandleFunc("GET /healthz", rc.healthz)
	return mux
}

func (rc *receiver[TTx]) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := rc.db.ping(ctx); err != nil {
		if r.Context().Err() != nil {
			return // the caller gave up; that says nothing about the database
		}
		rc.log.Error("health check: database unreachable", "database", rc.db.name, "err", err)
		http.Error(w, "database unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ok\n"))
}

// accept runs only for verified deliveries. It answers 2xx only once the
// delivery's job is committed: after that, nothing can lose it.
func (rc *receiver[TTx]) accept(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	sum := sha256.Sum256(body)
	req := insertRequest{
		args: deliveryArgs{BodySHA256: hex.EncodeToString(sum[:]), Body: body},
		done: make(chan insertResult, 1),
	}
	select {
	case rc.inserts <- req:
	case <-rc.quit:
		w.Header().Set("Retry-After", "5")
		http.Error(w, "shutting down, retry later", http.StatusServiceUnavailable)
		return
	}
	res := <-req.done
	event, _ := webhooks.EventFromContext(r.Context())
	var eventType webhooks.EventType
	if event != nil {
		eventType = event.Type
	}
	switch {
	case res.err != nil:
		rc.log.Error("delivery not stored: asking Cakemail to retry", "event", eventType, "err", res.err)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "not stored, retry later", http.StatusServiceUnavailable)
	case res.duplicate:
		rc.log.Info("duplicate acknowledged", "event", eventType, "body_sha256", req.args.BodySHA256)
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}

// commitLoop stores deliveries in batches: whatever arrived while the last
// commit ran goes in the next one, so one fsync acknowledges many.
func (rc *receiver[TTx]) commitLoop() {
	for {
		var first insertRequest
		select {
		case first = <-rc.inserts:
		case <-rc.quit:
			return
		}
		batch := []insertRequest{first}
	fill:
		for len(batch) < maxBatch {
			select {
			case req := <-rc.inserts:
				batch = append(batch, req)
			default:
				break fill
			}
		}
		rc.commit(batch)
	}
}

func (rc *receiver[TTx]) commit(batch []insertRequest) {
	// The same body twice in one batch is one job: the unique index would
	// refuse the second row of a single statement.
	index := make(map[string]int, len(batch))
	params := make([]river.InsertManyParams, 0, len(batch))
	for _, req := range batch {
		if _, ok := index[req.args.BodySHA256]; !ok {
			index[req.args.BodySHA256] = len(params)
			params = append(params, river.InsertManyParams{Args: req.args})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), insertTimeout)
	defer cancel()
	results, err := rc.client.InsertMany(ctx, params)
	if err == nil && len(results) != len(params) {
		err = fmt.Errorf("river returned %d results for %d jobs", len(results), len(params))
	}
	answered := make(map[string]bool, len(batch))
	for _, req := range batch {
		switch {
		case err != nil:
			req.done <- insertResult{err: err}
		case answered[req.args.BodySHA256]:
			req.done <- insertResult{duplicate: true}
		default:
			answered[req.args.BodySHA256] = true
			req.done <- insertResult{duplicate: results[index[req.args.BodySHA256]].UniqueSkippedAsDuplicate}
		}
	}
}

// rescueLoop hands back, every rescueInterval, the running jobs of processes
// that died, so they run again in seconds rather than after River's stuck-job
// timeout.
func (rc *receiver[TTx]) rescueLoop() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-rc.quit; cancel() }()
	t := time.NewTicker(rescueInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := rc.rescueOrphans(ctx); err != nil && ctx.Err() == nil {
				rc.log.Warn("rescuing jobs of dead processes", "err", err)
			}
		}
	}
}

func (rc *receiver[TTx]) rescueOrphans(ctx context.Context) error {
	owners, err := rc.db.runningOwners(ctx)
	if err != nil {
		return err
	}
	for _, owner := range owners {
		if owner == rc.clientID {
			continue
		}
		dead, err := rc.db.isDead(ctx, owner)
		if err != nil {
			return err
		}
		if !dead {
			continue
		}
		n, err := rc.execTx(ctx, rc.db.rescueOwner, owner)
		if err != nil {
			return err
		}
		if n > 0 {
			rc.log.Warn("running again the jobs of a process that died", "client", owner, "jobs", n)
		}
	}
	return nil
}

func (rc *receiver[TTx]) execTx(ctx context.Context, query string, args ...any) (int64, error) {
	tx, err := rc.db.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer rc.db.rollback(ctx, tx) //nolint:errcheck // a no-op after commit
	n, err := rc.db.exec(ctx, tx, query, args...)
	if err != nil {
		return 0, err
	}
	return n, rc.db.commit(ctx, tx)
}

// minLevel keeps River's routine messages out of the log stream.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}
