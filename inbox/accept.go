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
// window, and 503 with Retry-After when the delivery could not be stored
// within its acknowledge timeout. Deliveries that arrive while a commit runs
// share the next one, so one commit acknowledges many.
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
	// ackTimeout bounds a delivery's wait, from ServeHTTP to its answer.
	ackTimeout time.Duration

	lastFailure atomic.Pointer[failure] // the last commit's failure, nil once one succeeds
	accepting   atomic.Bool             // false before Start and after Close
	tracing     bool

	// refused is why no delivery may be stored any more (the database's
	// files are gone), nil while they may. A commit reads it under storing,
	// so refuse can wait for the commits already past it.
	refused atomic.Pointer[error]
	storing sync.RWMutex
}

type failure struct {
	at     time.Time
	reason string // what health says
}

type insertRequest struct {
	args DeliveryArgs // the default subscriber's job
	// subscribers are the added subscribers whose routers handle the
	// event: each gets a job of its own, in the same commit.
	subscribers []string
	// answerBy is when its sender stops waiting and answers 503: a commit
	// of it is of no use to anyone waiting past that.
	answerBy time.Time
	done     chan insertResult // buffered, so a committer never waits on a caller
}

type insertResult struct {
	duplicate bool
	err       error
}

// NewAcceptor returns an Acceptor that inserts through client, for a service
// that runs its own River client, configured with RiverConfig, with the
// inbox's Worker registered. Of the options, WithLogger, WithAcknowledgeTimeout,
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
		ackTimeout:  cfg.ackTimeout,
		tracing:     cfg.tracing,
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
// after that, nothing can lose it. A delivery not committed by the end of
// its acknowledge timeout is answered 503.
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
	res = a.insert(args, subscribers, a.answerBy(start))
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
	errNotInTime    = errors.New("inbox: the delivery's commit did not finish in time")
)

// open starts accepting; an Inbox opens its Acceptor in Start.
func (a *Acceptor) open() { a.accepting.Store(true) }

// answerBy is when a delivery that reached the inbox at start stops waiting
// for its commit: a little before its acknowledge timeout, so that the 503
// leaves in time even on a busy machine.
func (a *Acceptor) answerBy(start time.Time) time.Time {
	return start.Add(a.ackTimeout - a.ackTimeout/20)
}

// refuse makes every later delivery get 503 for reason, for good, and
// returns once the commits already under way have ended: after it, nothing
// more is acknowledged.
func (a *Acceptor) refuse(reason error) {
	a.refused.Store(&reason)
	a.storing.Lock()
	//lint:ignore SA2001 an empty critical section: taking the lock is waiting for the commits that hold it
	a.storing.Unlock()
}

// refusal is why no delivery may be stored any more, or nil.
func (a *Acceptor) refusal() error {
	if err := a.refused.Load(); err != nil {
		return *err
	}
	return nil
}

// insert waits for the delivery's commit until answerBy, and past it
// answers with errNotInTime. The commit may still finish after: a delivery
// stored after its 503 is recognised as a duplicate when it comes again.
func (a *Acceptor) insert(args DeliveryArgs, subscribers []string, answerBy time.Time) insertResult {
	if !a.accepting.Load() {
		return insertResult{err: errNotAccepting}
	}
	if err := a.refusal(); err != nil {
		return insertResult{err: err}
	}
	req := insertRequest{args: args, subscribers: subscribers, answerBy: answerBy, done: make(chan insertResult, 1)}
	late := time.NewTimer(time.Until(answerBy))
	defer late.Stop()
	select {
	case a.inserts <- req:
	case <-a.quit:
		return insertResult{err: errStopping}
	case <-late.C:
		return a.notInTime()
	}
	select {
	case res := <-req.done:
		return res
	case <-late.C:
		return a.notInTime()
	}
}

// notInTime records a delivery that waited its whole acknowledge timeout:
// the database is too slow to store deliveries, and health says so.
func (a *Acceptor) notInTime() insertResult {
	a.lastFailure.Store(&failure{at: time.Now(), reason: "a delivery could not be stored in time: the database is failing or stalled"})
	return insertResult{err: errNotInTime}
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

// commit stores a batch unless the acceptor refuses deliveries; refuse
// waits for it.
func (a *Acceptor) commit(batch []insertRequest) {
	a.storing.RLock()
	defer a.storing.RUnlock()
	if err := a.refusal(); err != nil {
		for _, req := range batch {
			req.done <- insertResult{err: err}
		}
		return
	}
	a.store(batch)
}

// store commits the deliveries whose senders still wait, within the time
// the last of them waits. When the database refuses the batch for what may
// be one delivery's fault, it stores each half on its own, so one bad
// delivery never fails its neighbours; any other failure (unreachable,
// stalled, full) is every delivery's, and is answered at once.
func (a *Acceptor) store(batch []insertRequest) {
	now := time.Now()
	waiting := make([]insertRequest, 0, len(batch))
	for _, req := range batch {
		if req.answerBy.After(now) {
			waiting = append(waiting, req)
		}
	}
	if len(waiting) == 0 {
		return
	}
	batch = waiting
	answerBy := batch[0].answerBy
	for _, req := range batch[1:] {
		if req.answerBy.After(answerBy) {
			answerBy = req.answerBy
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), answerBy)
	results, err := a.insertMany(ctx, batch)
	cancel()
	if err != nil && len(batch) > 1 && oneRowsFault(err) {
		a.store(batch[:len(batch)/2])
		a.store(batch[len(batch)/2:])
		return
	}
	switch {
	case err == nil:
		a.lastFailure.Store(nil)
	case !oneRowsFault(err):
		a.lastFailure.Store(&failure{at: time.Now(), reason: "the last delivery could not be stored: the database is failing"})
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

// oneRowsFault reports whether the database's error may be one row's doing
// (a value it refuses, a row too big), not the database's: only then is a
// batch worth splitting.
func oneRowsFault(err error) bool {
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		switch class := pg.SQLState()[:min(2, len(pg.SQLState()))]; class {
		case "22", "23", "54": // data exception, integrity constraint, program limit
			return true
		}
		return false
	}
	var lite interface{ Code() int }
	if errors.As(err, &lite) {
		switch lite.Code() & 0xff { // the primary result code
		case sqliteTooBig, sqliteConstraint, sqliteMismatch:
			return true
		}
	}
	return false
}

// SQLite's primary result codes for a row it refuses.
const (
	sqliteTooBig     = 18
	sqliteConstraint = 19
	sqliteMismatch   = 20
)

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
