package inbox

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cakemail-go/webhooks/inbox/internal/sqldb"
)

// A process proves it is alive with a heartbeat: a row it updates every
// heartbeatInterval. The running jobs of a process whose heartbeat is older
// than deadAfter are handed to a live one at once, instead of after River's
// stuck-job timeout. A row, unlike a session lock, survives a database
// restart: once the database is back, every live process beats again
// within a second, long before any of them is taken for dead.

const (
	heartbeatInterval = time.Second
	// deadAfter must stay well above heartbeatInterval plus a slow commit.
	deadAfter = 6 * time.Second
	// forgetAfter removes the rows of processes long gone.
	forgetAfter = 24 * time.Hour
)

// liveness beats for this process and rescues the jobs of dead ones, and
// its own that River lost track of.
type liveness struct {
	db       sqldb.Conn
	alone    bool // no other process can share the database
	clientID string
	queues   []string // the queues this process works
	log      *slog.Logger
	working  *inFlight

	lastBeat atomic.Int64 // Unix nanoseconds of the last committed heartbeat
	lastErr  atomic.Pointer[error]

	mu           sync.Mutex
	healthySince time.Time // zero while heartbeats fail

	// stop ends the running heartbeat, nil while none runs; start and
	// close run under the Inbox's lock.
	stop func()
}

func newLiveness(db sqldb.Conn, alone bool, clientID string, queues []string, working *inFlight, log *slog.Logger) *liveness {
	return &liveness{db: db, alone: alone, clientID: clientID, queues: queues, working: working, log: log}
}

// start beats once, hands back what dead processes left running, and keeps
// doing both in the background until close. It can be called again after a
// failed start or a close.
func (l *liveness) start(ctx context.Context) error {
	if l.stop != nil {
		return nil
	}
	if err := l.beat(ctx); err != nil {
		return fmt.Errorf("inbox: heartbeat: %w", err)
	}
	if err := advertiseQueues(ctx, l.db, l.clientID, l.queues); err != nil {
		return fmt.Errorf("inbox: recording the subscribers' queues: %w", err)
	}
	if err := l.rescue(ctx); err != nil {
		return fmt.Errorf("inbox: rescuing the jobs of dead processes: %w", err)
	}
	if l.steady() {
		l.deadLetterOrphans(ctx)
	}
	beats := 0
	l.stop = every(heartbeatInterval, func() bool {
		l.tick(beats)
		beats++
		return true
	})
	return nil
}

// tick is one heartbeat: beat, then rescue, and now and then the sweeps.
func (l *liveness) tick(beats int) {
	ctx, cancel := context.WithTimeout(context.Background(), heartbeatInterval)
	defer cancel()
	if err := l.beat(ctx); err != nil {
		l.log.Warn("inbox: heartbeat failed: the database is unreachable, full or read-only", "err", err)
	} else if err := l.rescue(ctx); err != nil {
		l.log.Warn("inbox: rescuing the jobs of dead processes", "err", err)
	} else if beats%orphanSweepBeats == 0 && l.steady() {
		l.deadLetterOrphans(ctx)
	}
	if (beats+1)%3600 == 0 {
		l.db.Exec(ctx, `DELETE FROM cakemail_inbox_client WHERE heartbeat_at < `+l.db.NowMillis()+` - $1`, //nolint:errcheck // tried again in an hour
			forgetAfter.Milliseconds())
	}
}

// close stops the heartbeat and removes this process's row, so that others
// need not wait to know it is gone.
func (l *liveness) close(ctx context.Context) {
	if l.stop == nil {
		return
	}
	l.stop()
	l.stop = nil
	l.db.Exec(ctx, `DELETE FROM cakemail_inbox_client WHERE id = $1`, l.clientID) //nolint:errcheck // a stale row only delays nothing: this process runs no job any more
	forgetQueues(ctx, l.db, l.clientID)                                           //nolint:errcheck // rows of a process without a heartbeat count for nothing
}

// beat commits this process's heartbeat. A heartbeat is a write, so it also
// proves the database can take one: it fails on a full disk.
func (l *liveness) beat(ctx context.Context) error {
	_, err := l.db.Exec(ctx, `INSERT INTO cakemail_inbox_client (id, heartbeat_at) VALUES ($1, `+l.db.NowMillis()+`)
		ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at`, l.clientID)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.healthySince = time.Time{}
		l.lastErr.Store(&err)
		return err
	}
	now := time.Now()
	if l.healthySince.IsZero() {
		l.healthySince = now
	}
	l.lastErr.Store(nil) // health names the failure of now, not one long past
	l.lastBeat.Store(now.UnixNano())
	return nil
}

// beatAge is how long ago the last heartbeat committed.
func (l *liveness) beatAge() time.Duration {
	last := l.lastBeat.Load()
	if last == 0 {
		return time.Duration(1<<63 - 1)
	}
	return time.Since(time.Unix(0, last))
}

// steady reports whether this process may judge others: alone on its
// database, or beating without a failure for deadAfter (after an outage,
// the others need as long as this one to beat again).
func (l *liveness) steady() bool {
	if l.alone {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.healthySince.IsZero() && time.Since(l.healthySince) >= deadAfter
}
