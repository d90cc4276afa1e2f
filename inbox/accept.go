package inbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/cakemail-go/webhooks"
)

const (
	// maxInsertBatch caps how many waiting deliveries share one commit.
	maxInsertBatch = 256
	// insertTimeout bounds one commit; past it Cakemail is asked to retry.
	insertTimeout = 4 * time.Second
	// retryAfter is what a 503 asks Cakemail to wait, in seconds.
	retryAfter = "5"
)

// errTooOld is why a delivery created longer ago than the duplicate window
// is refused: it can no longer be told from a replay.
var errTooOld = fmt.Errorf("%w: older than the duplicate window", webhooks.ErrTooOld)

// inserter is the part of a River client an Acceptor uses.
type inserter interface {
	InsertMany(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// Acceptor acknowledges verified deliveries once their jobs are committed.
// Mount it behind webhooks.Verifier.Middleware. It answers 202 for a new
// delivery, 200 for a duplicate, 400 for a delivery older than the duplicate
// window, and 503 with Retry-After when the delivery could not be stored.
// Deliveries that arrive while a commit runs share the next one, so one
// commit acknowledges many.
type Acceptor struct {
	client      inserter
	subscribers []subscriber // WithSubscriber's, beside the default
	maxAttempts int
	// queueGet reads a queue's River record, for the check at the first
	// delivery; nil where Open made the client, whose queues are right.
	queueGet      func(ctx context.Context, name string) (*rivertype.Queue, error)
	checkingQueue sync.Once
	log           *slog.Logger
	window        time.Duration
	metrics       *metrics
	now           func() time.Time

	inserts chan insertRequest // unbuffered: waiting senders form the next batch
	quit    chan struct{}      // closed when no more deliveries are accepted
	closing sync.Once
	wg      sync.WaitGroup // the committers

	lastFailure atomic.Pointer[failure] // the last commit's failure, nil once one succeeds
	accepting   atomic.Bool             // false before Start and after Close
	tracing     bool
}

type failure struct {
	at time.Time
}

type insertRequest struct {
	args DeliveryArgs // the default subscriber's job
	// subscribers are the added subscribers whose routers handle the
	// event: each gets a job of its own, in the same commit.
	subscribers []string
	done        chan insertResult // buffered, so a committer never waits on a caller
}

type insertResult struct {
	duplicate bool
	err       error
}

// NewAcceptor returns an Acceptor that inserts through client, for a service
// that runs its own River client, configured with RiverConfig, with the
// inbox's Worker registered. Of the options, WithLogger,
// WithDuplicateWindow, WithMaxAttempts, WithSubscriber and WithTracing
// apply. At the first delivery it logs an error for each subscriber's queue
// that no River client works. Close it before stopping the client. It panics
// on an option that is invalid or does not apply, and on a driver other than
// riverpgxv5 and riversqlite.
func NewAcceptor[TTx any](client *river.Client[TTx], opts ...Option) *Acceptor {
	cfg := mustConfig(forAcceptor, opts)
	d, err := dialectFor[TTx]()
	if err != nil {
		panic(err)
	}
	a := newAcceptor(client, d.tuning(), cfg, nil)
	a.queueGet = client.QueueGet
	return a
}

func newAcceptor(client inserter, t tuning, cfg *config, m *metrics) *Acceptor {
	a := &Acceptor{
		client:      client,
		subscribers: cfg.subscribers,
		maxAttempts: cfg.maxAttempts,
		log:         cfg.logger,
		window:      cfg.duplicateWindow,
		metrics:     m,
		now:         time.Now,
		inserts:     make(chan insertRequest),
		quit:        make(chan struct{}),
	}
	a.accepting.Store(true)
	a.wg.Add(t.committers)
	for range t.committers {
		go func() { defer a.wg.Done(); a.commitLoop() }()
	}
	return a
}

// Close stops accepting: later deliveries get 503, those already taken are
// answered once their commit is done. It returns when every committer has
// ended.
func (a *Acceptor) Close() {
	a.accepting.Store(false)
	a.closing.Do(func() { close(a.quit) })
	a.wg.Wait()
}

// ServeHTTP acknowledges a verified delivery once its job is committed:
// after that, nothing can lose it.
func (a *Acceptor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	event, ok := webhooks.EventFromContext(r.Context())
	if !ok {
		a.log.ErrorContext(r.Context(), "inbox: a request reached the inbox without a verified event; mount it behind Verifier.Middleware",
			"path", r.URL.Path)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if age := a.now().Sub(event.CreatedAt); !event.CreatedAt.IsZero() && age > a.window {
		a.log.WarnContext(r.Context(), "delivery refused: older than the duplicate window, it cannot be told from a replay",
			"event", event.Type, "age", age.Round(time.Second).String(), "window", a.window.String())
		a.metrics.refused(errTooOld)
		http.Error(w, "delivery too old", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	a.checkingQueue.Do(func() { go a.checkQueues(context.WithoutCancel(r.Context())) })
	args := NewDeliveryArgs(body, event)
	subscribers := a.subscribersFor(event.Type)
	var res insertResult
	if a.tracing {
		defer traceAccept(r, start, args, &res)()
	}
	res = a.insert(args, subscribers)
	switch {
	case res.err != nil:
		a.log.ErrorContext(r.Context(), "delivery not stored: asking Cakemail to retry", "event", event.Type, "err", res.err)
		a.metrics.delivered(outcomeUnavailable, start)
		w.Header().Set("Retry-After", retryAfter)
		http.Error(w, "not stored, retry later", http.StatusServiceUnavailable)
	case res.duplicate:
		// DEBUG: Cakemail retries in bursts, and the duplicates counter
		// already tells their rate.
		a.log.DebugContext(r.Context(), "duplicate acknowledged", "event", event.Type, "body_sha256", args.BodySHA256)
		a.metrics.delivered(outcomeDuplicate, start)
		w.WriteHeader(http.StatusOK)
	default:
		a.metrics.delivered(outcomeAccepted, start)
		w.WriteHeader(http.StatusAccepted)
	}
}

var (
	errStopping     = errors.New("inbox: shutting down")
	errNotAccepting = errors.New("inbox: not started, or stopping")
)

// open starts accepting; an Inbox opens its Acceptor in Start.
func (a *Acceptor) open() { a.accepting.Store(true) }

// insert waits for the delivery's commit. It does not give up when the
// caller does: the commit decides, and a delivery stored after Cakemail hung
// up is recognised as a duplicate when it comes again.
func (a *Acceptor) insert(args DeliveryArgs, subscribers []string) insertResult {
	req := insertRequest{args: args, subscribers: subscribers, done: make(chan insertResult, 1)}
	if !a.accepting.Load() {
		return insertResult{err: errNotAccepting}
	}
	select {
	case a.inserts <- req:
	case <-a.quit:
		return insertResult{err: errStopping}
	}
	return <-req.done
}

// commitLoop stores deliveries in batches: whatever arrived while the last
// commit ran goes in the next one.
func (a *Acceptor) commitLoop() {
	for {
		var first insertRequest
		select {
		case first = <-a.inserts:
		case <-a.quit:
			return
		}
		batch := []insertRequest{first}
	fill:
		for len(batch) < maxInsertBatch {
			select {
			case req := <-a.inserts:
				batch = append(batch, req)
			default:
				break fill
			}
		}
		a.commit(batch)
	}
}

func (a *Acceptor) commit(batch []insertRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), insertTimeout)
	defer cancel()
	results, err := a.insertMany(ctx, batch)
	if err != nil && len(batch) > 1 {
		// One delivery the database refuses must not fail its neighbours:
		// store each on its own.
		for _, req := range batch {
			a.commit([]insertRequest{req})
		}
		return
	}
	if err != nil {
		a.lastFailure.Store(&failure{at: time.Now()})
	} else {
		a.lastFailure.Store(nil)
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
			req.done <- insertResult{duplicate: results[req.args.BodySHA256]}
		}
	}
}

// insertMany inserts the jobs of each distinct body, one per subscriber, and
// reports, by body hash, which deliveries were already there: those none of
// whose jobs was new. The same body twice in one batch is one delivery: the
// unique index would refuse the second row of a single statement.
func (a *Acceptor) insertMany(ctx context.Context, batch []insertRequest) (map[string]bool, error) {
	params := make([]river.InsertManyParams, 0, len(batch))
	seen := make(map[string]bool, len(batch))
	for _, req := range batch {
		if !seen[req.args.BodySHA256] {
			seen[req.args.BodySHA256] = true
			// The attempts are the job's own, whatever the client's default.
			opts := &river.InsertOpts{MaxAttempts: a.maxAttempts}
			params = append(params, river.InsertManyParams{Args: req.args, InsertOpts: opts})
			for _, name := range req.subscribers {
				params = append(params, river.InsertManyParams{Args: req.args.forSubscriber(name), InsertOpts: opts})
			}
		}
	}
	results, err := a.client.InsertMany(ctx, params)
	if err != nil {
		return nil, err
	}
	if len(results) != len(params) {
		return nil, fmt.Errorf("river returned %d results for %d jobs", len(results), len(params))
	}
	duplicate := make(map[string]bool, len(seen))
	for i, p := range params {
		sha := p.Args.(DeliveryArgs).BodySHA256
		dup, known := duplicate[sha]
		duplicate[sha] = (dup || !known) && results[i].UniqueSkippedAsDuplicate
	}
	return duplicate, nil
}

// subscribersFor are the added subscribers whose routers handle t.
func (a *Acceptor) subscribersFor(t webhooks.EventType) []string {
	var names []string
	for _, s := range a.subscribers {
		if s.router.Handles(t) {
			names = append(names, s.name)
		}
	}
	return names
}
