package inbox

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/riverqueue/river/riverdriver"
)

// Effects are committed in batches: a commit (an fsync) is what a delivery
// costs, so one commit for many deliveries is how processing keeps up with
// acknowledging. A batch is one transaction; each delivery in it gets a turn,
// in which it alone uses the transaction, behind a savepoint of its own. A
// turn that fails rolls back to its savepoint, so it never takes another
// delivery's effects with it.

const (
	// batchIdle is how long a batch goroutine waits for work before it ends;
	// the next delivery starts another.
	batchIdle = time.Second
)

// batcher forms the batches of one worker.
type batcher[TTx any] struct {
	maxBatch int
	// turnTimeout bounds a turn: past it, the delivery's Tx takes the turn
	// back from its handler (jobTx.expire).
	turnTimeout time.Duration
	tuning      tuning
	requests    chan *turnRequest[TTx]

	mu      sync.Mutex
	running int // batch goroutines
	waiting int // requests sent or about to be, not yet taken
}

type turnRequest[TTx any] struct {
	granted chan *turn[TTx] // buffered: the batch never waits on the job
}

// turn is one delivery's exclusive use of a batch's transaction.
type turn[TTx any] struct {
	batch    *batch
	tx       riverdriver.ExecutorTx
	released chan turnOutcome // buffered
	// savepointOpen is the batch's: the last turn that completed left its
	// savepoint open, for this one to release.
	savepointOpen *bool
}

type turnOutcome struct {
	completed bool // the delivery's effects and completion stay in the batch
	broken    bool // the transaction cannot be used any more
}

func (t *turn[TTx]) release(completed, broken bool) {
	t.released <- turnOutcome{completed, broken}
}

// batch is the outcome of one batch transaction.
type batch struct {
	done chan struct{} // closed once committed or rolled back
	err  error         // set before done is closed
}

// wait returns once the batch is committed, with its error. It does not give
// up when the job's context ends: the outcome decides whether the job
// completed.
func (b *batch) wait() error {
	<-b.done
	return b.err
}

func newBatcher[TTx any](maxBatch int, turnTimeout time.Duration, t tuning) *batcher[TTx] {
	return &batcher[TTx]{maxBatch: maxBatch, turnTimeout: turnTimeout, tuning: t, requests: make(chan *turnRequest[TTx])}
}

// join waits for a turn in a batch.
func (b *batcher[TTx]) join(ctx context.Context, driver riverdriver.Driver[TTx]) (*turn[TTx], error) {
	req := &turnRequest[TTx]{granted: make(chan *turn[TTx], 1)}
	b.mu.Lock()
	b.waiting++
	if b.running < min(b.waiting, b.tuning.batches) {
		b.running++
		go b.run(driver)
	}
	b.mu.Unlock()
	select {
	case b.requests <- req:
	case <-ctx.Done():
		b.mu.Lock()
		b.waiting--
		b.mu.Unlock()
		return nil, ctx.Err()
	}
	select {
	case t := <-req.granted:
		if t.tx == nil {
			return nil, t.batch.err
		}
		return t, nil
	case <-ctx.Done():
		// The batch will grant the turn all the same: give it straight back.
		go func() {
			if t := <-req.granted; t.tx != nil {
				t.release(false, false)
			}
		}()
		return nil, ctx.Err()
	}
}

// run forms batches until no delivery has asked for a turn for batchIdle.
func (b *batcher[TTx]) run(driver riverdriver.Driver[TTx]) {
	idle := time.NewTimer(batchIdle)
	defer idle.Stop()
	for {
		select {
		case req := <-b.requests:
			b.taken()
			b.commitBatch(driver, req)
			idle.Reset(batchIdle)
		case <-idle.C:
			b.mu.Lock()
			if b.waiting == 0 {
				b.running--
				b.mu.Unlock()
				return
			}
			b.mu.Unlock()
			idle.Reset(batchIdle)
		}
	}
}

func (b *batcher[TTx]) taken() {
	b.mu.Lock()
	b.waiting--
	b.mu.Unlock()
}

// commitBatch opens a transaction, grants turns in it to first and to every
// delivery that asks meanwhile, then commits them all at once.
func (b *batcher[TTx]) commitBatch(driver riverdriver.Driver[TTx], first *turnRequest[TTx]) {
	// The batch outlives any one job's context: a job that gives up must not
	// cancel its neighbours' commit.
	ctx := context.Background()
	result := &batch{done: make(chan struct{})}
	tx, err := driver.GetExecutor().Begin(ctx)
	if err == nil && b.tuning.batchSetup != "" {
		if err = tx.Exec(ctx, b.tuning.batchSetup); err != nil {
			tx.Rollback(ctx) //nolint:errcheck // the batch is given up either way
		}
	}
	if err != nil {
		result.err = err
		close(result.done)
		first.granted <- &turn[TTx]{batch: result}
		return
	}
	completed, broken, savepointOpen := 0, false, false
	serve := func(req *turnRequest[TTx]) {
		t := &turn[TTx]{batch: result, tx: tx, released: make(chan turnOutcome, 1), savepointOpen: &savepointOpen}
		req.granted <- t
		out := <-t.released
		if out.completed {
			completed++
		}
		broken = broken || out.broken
	}
	serve(first)
	start, hold := time.Now(), b.tuning.batchHold
fill:
	for !broken && completed < b.maxBatch && time.Since(start) < hold {
		select {
		case req := <-b.requests:
			b.taken()
			serve(req)
		default:
			break fill
		}
	}
	switch {
	case broken:
		tx.Rollback(ctx) //nolint:errcheck // the batch is lost either way; its jobs run again
		result.err = errBatchBroken
	case completed == 0:
		result.err = tx.Rollback(ctx)
	default:
		result.err = tx.Commit(ctx)
	}
	close(result.done)
}

// errBatchBroken fails the deliveries of a batch whose transaction a failed
// turn could not roll back: their effects were never committed, and River
// runs them again.
var errBatchBroken = errors.New("inbox: a delivery in the same batch left the transaction unusable; running it again")
